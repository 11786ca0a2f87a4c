"""The command line, ``python -m core``: one module per group of subcommands, joined in ``main``."""
