"""``python -m core``: the workbench from a terminal.

Every subcommand takes ``--workspace`` and ``--data-dir``; errors a user can cause print one line
and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.cli import data, evaluation, retrieval, training
from core.errors import WorkbenchError
from core.workspace import Workspace


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="codeir workbench: evaluate code retrieval from the terminal.")
    parser.add_argument("--workspace", help="workspace folder (default: $CODEIR_WORKSPACE or ./workspace)")
    parser.add_argument("--data-dir", help="folder of BEIR datasets (default: $CODEIR_DATA_DIR or ../shared/datasets)")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (data, retrieval, evaluation, training):
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        workspace = Workspace.open(args.workspace, args.data_dir)
        code = args.func(args, workspace) or 0  # a command may answer non-zero itself (reproduce: metrics differ)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; indexes already built are kept", file=sys.stderr)
        return 130
    return code
