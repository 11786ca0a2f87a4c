"""What the subcommands share: opening an engine, reading name lists, checking a new dataset name."""
from __future__ import annotations

import sys

from core.errors import DatasetError
from core.progress import tqdm_progress
from core.workspace import Workspace


def open_engine(workspace: Workspace, dataset_name: str, quiet: bool = False):
    from core.data.catalog import open_dataset
    from core.retrieval.profiles import load_profiles
    from core.retrieval.engine import Engine

    dataset = open_dataset(workspace, dataset_name)
    for problem in dataset.problems[:10]:
        print(f"warning: skipped {problem}", file=sys.stderr)
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
