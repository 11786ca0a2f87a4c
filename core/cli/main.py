"""``python -m core``: the workbench from a terminal.

Every subcommand takes ``--workspace`` and ``--data-dir``; errors a user can cause print one line
and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import importlib

from core.cli.common import TerminalSafeStream, terminal_safe
from core.errors import WorkbenchError
from core.retrieval.limits import check_number
from core.workspace import Workspace

# Numeric options (argparse dest -> kind of number in core.retrieval.limits), checked before any command runs.
NUMERIC_OPTIONS = {"depth": "depth", "k": "k", "queries": "count", "show": "count", "failures": "non-negative count",
                   "alpha": "alpha", "threshold": "fraction", "epochs": "count", "max_examples": "count",
                   "negatives": "non-negative count", "skip_top": "non-negative count", "batch_size": "count",
                   "max_seq_length": "count", "threads": "count", "learning_rate": "rate", "seed": "seed",
                   "base_weight": "base weight", "resamples": "resamples", "actors": "actors", "cpus_per_actor": "cpus",
                   "gpus_per_actor": "gpus", "queries_per_task": "count", "validate_k": "validate k",
                   "mini_batch_size": "count", "checkpoint_every": "count"}


class _Parser(argparse.ArgumentParser):
    """argparse with its error line cleaned: it echoes unrecognized arguments raw, ESC sequences included."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {terminal_safe(message)}\n")


# Which module of core.cli registers each command. A command imports only its own group: the training group alone
# pulls in torch, pandas and the leakage audit, a second or more of every start (search-corpus answers in milliseconds).
COMMAND_GROUPS = {
    "data": ("datasets", "import-zip", "download", "build-stdlib", "build-benchmark", "grow-corpus"),
    "retrieval": ("profiles", "index", "import-vectors", "search", "store-corpus", "search-corpus", "runs", "export",
                  "import-run"),
    "evaluation": ("evaluate", "compare", "report", "reproduce", "manifest", "sweep"),
    "training": ("audit", "finetune"),
}


def _groups_for(argv: Sequence[str] | None) -> list[str]:
    """The command groups to register: the named command's own, or all of them (help, a typo, no command)."""
    words = list(sys.argv[1:] if argv is None else argv)
    while words and words[0] in ("--workspace", "--data-dir"):  # the only options before the command take a value
        words = words[2:]
    command = words[0] if words else ""
    return [group for group, commands in COMMAND_GROUPS.items() if command in commands] or list(COMMAND_GROUPS)


def build_parser(argv: Sequence[str] | None = None, every_command: bool = True) -> argparse.ArgumentParser:
    """The ``python -m core`` parser; ``every_command`` False registers only the group of the command in ``argv``."""
    parser = _Parser(prog="python -m core", description="codeir workbench: evaluate code retrieval from the terminal.")
    parser.add_argument("--workspace", help="workspace folder (default: $CODEIR_WORKSPACE or ./workspace)")
    parser.add_argument("--data-dir", help="folder of BEIR datasets (default: $CODEIR_DATA_DIR or ../shared/datasets)")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (list(COMMAND_GROUPS) if every_command else _groups_for(argv)):
        importlib.import_module(f"core.cli.{group}").register(sub)
    return parser


def check_numeric_options(args: argparse.Namespace) -> None:
    """Refuse a numeric option outside its bounds (``--depth -5``) before anything runs."""
    for dest, kind in NUMERIC_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is not None:
            setattr(args, dest, check_number(kind, value, "-k" if dest == "k" else f"--{dest.replace('_', '-')}"))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv, every_command=False).parse_args(argv)
    stdout = sys.stdout
    sys.stdout = TerminalSafeStream(stdout)  # document text, ids and names come from data: no terminal control through them
    try:
        check_numeric_options(args)
        workspace = Workspace.open(args.workspace, args.data_dir)
        code = args.func(args, workspace) or 0  # a command may answer non-zero itself (reproduce: metrics differ)
    except WorkbenchError as exc:
        print(f"error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave that cannot be read or written
        print(f"error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; indexes already built are kept", file=sys.stderr)
        return 130
    finally:
        sys.stdout = stdout
    return code
