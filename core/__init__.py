"""codeir workbench core: datasets, indexes, retriever profiles, runs and metrics (no UI)."""
import os

# Lance logs a warning for every table it creates; keep the terminal and the app log readable.
os.environ.setdefault("LANCE_LOG", "error")  # pylance
os.environ.setdefault("LANCEDB_LOG", "error")  # lancedb's own Rust logger ("No existing dataset ... will be created")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
