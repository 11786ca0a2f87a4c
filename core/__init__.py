"""codeir workbench core: datasets, indexes, retriever profiles, runs and metrics (no UI)."""
import os

# Lance logs a warning for every table it creates; keep the terminal and the app log readable.
os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
