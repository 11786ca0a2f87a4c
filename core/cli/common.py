"""What the subcommands share: opening an engine, reading name lists, checking a new dataset name."""
from __future__ import annotations

import sys
import unicodedata
from typing import TextIO

from core.errors import DatasetError
from core.progress import tqdm_progress
from core.workspace import Workspace


MAX_WARNINGS = 10


def terminal_safe(text: str, keep: str = "\n\t") -> str:
    """``text`` with control characters (ESC, OSC, C1, bidi overrides, lone surrogates) shown as escapes, not obeyed.

    Everything the CLI prints from data goes through this: a docstring holding ``\\x1b]0;title\\x07`` must
    not retitle the terminal or clear the screen. Characters in ``keep`` pass as they are.
    """
    if text.isascii() and text.isprintable():
        return text
    out = []
    for char in text:
        category = unicodedata.category(char)
        if char in keep or not (category in ("Cc", "Cs") or char in _BIDI_CONTROLS):
            out.append(char)
        else:
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii") if category != "Cs" else f"\\u{ord(char):04x}")
    return "".join(out)


_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class TerminalSafeStream:
    """A text stream that writes through ``terminal_safe`` (stdout while a CLI command runs).

    Text the terminal's encoding cannot hold (CJK on a latin-1 terminal) is written as ``\\uXXXX`` escapes
    instead of raising UnicodeEncodeError halfway through a listing.
    """

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        safe = terminal_safe(text)
        encoding = getattr(self._stream, "encoding", None) or "utf-8"
        try:
            safe.encode(encoding)
        except UnicodeEncodeError:  # a latin-1 or ASCII terminal: what it cannot show, as escapes
            safe = safe.encode(encoding, "backslashreplace").decode(encoding)
        except LookupError:
            safe = safe.encode("ascii", "backslashreplace").decode("ascii")
        self._stream.write(safe)
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def open_engine(workspace: Workspace, dataset_name: str, quiet: bool = False):
    from core.data.catalog import open_dataset
    from core.retrieval.profiles import load_profiles
    from core.retrieval.engine import Engine

    from core.progress import staged

    store_progress = None if quiet else staged(tqdm_progress(), {"store": "corpus store: parsing and writing"})
    dataset = open_dataset(workspace, dataset_name, progress=store_progress)
    if dataset.is_stored:
        print(f"note: {dataset.name} opened from its corpus store ({len(dataset.documents):,} documents, read by row; "
              f"$CODEIR_STORED_MIN_DOCS sets the size from which a corpus is stored)", file=sys.stderr)
    for problem in dataset.problems[:MAX_WARNINGS]:
        print(f"warning: skipped {terminal_safe(str(problem))}", file=sys.stderr)
    if len(dataset.problems) > MAX_WARNINGS:
        print(f"warning: ... and {len(dataset.problems) - MAX_WARNINGS:,} more: {len(dataset.problems):,} rows skipped "
              f"in all (the Datasets page lists every one)", file=sys.stderr)
    profiles = load_profiles(workspace.profiles_file)
    return Engine(workspace, dataset, profiles, progress=None if quiet else tqdm_progress())


def requested_profiles(engine, requested: str | None) -> list[str]:
    names = [n.strip() for n in requested.split(",") if n.strip()] if requested else list(engine.profiles)
    for name in names:
        engine.profile(name)  # raises a clear ProfileError for unknown names
    return names


def add_ray_options(parser, what: str) -> None:
    """--engine and the Ray options (docs/scale.md) on a subcommand; ``what`` says what Ray does there."""
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help=f"run in this process (local) or {what} on Ray (ray); see docs/scale.md")
    parser.add_argument("--address", help="with --engine ray: 'auto', 'host:port' or 'ray://host:port' (default: a local Ray)")
    parser.add_argument("--actors", type=int, default=1, help="with --engine ray: embedding actors (default 1)")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0, help="with --engine ray: CPUs each actor or task reserves (default 1)")
    parser.add_argument("--gpus-per-actor", type=float, default=0.0, help="with --engine ray: GPUs each actor reserves (default 0)")


def ray_options(args):
    """The RayOptions the arguments ask for, or None for --engine local (Ray options without it are an error)."""
    from core.errors import ClusterError
    from core.index.distributed import RayOptions, check_address, import_ray

    if args.engine != "ray":
        if args.address or args.actors != 1 or args.cpus_per_actor != 1.0 or args.gpus_per_actor:
            raise ClusterError("--address, --actors, --cpus-per-actor and --gpus-per-actor apply only with --engine ray.")
        return None
    options = RayOptions(address=args.address, actors=args.actors, cpus_per_actor=args.cpus_per_actor,
                         gpus_per_actor=args.gpus_per_actor)
    options.check()
    import_ray()
    check_address(options.address)  # before any work: nothing to build would otherwise hide a wrong address
    return options


def split_names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def check_new_dataset_name(workspace: Workspace, name: str) -> str:
    """A dataset name that is valid and not taken (a new dataset would be hidden by, or replace, the old one)."""
    from core.data.catalog import list_datasets
    from core.data.datasets import validate_name

    validate_name(name)
    taken = {info.name: info for info in list_datasets(workspace)}
    if name in taken:
        raise DatasetError(f"A dataset named {name!r} already exists ({taken[name].path}): choose another name.")
    return name


def evaluated(workspace: Workspace, dataset: str, profiles: str | None, metrics: list[str], depth: int, quiet: bool = True):
    """Runs and evaluations of the named profiles (all when none are named) on one dataset."""
    from core.evaluation.experiment import run_experiment

    engine = open_engine(workspace, dataset, quiet=quiet)
    names = requested_profiles(engine, profiles)
    result = run_experiment(engine, names, metrics, depth=depth, save=False)
    return engine, result
