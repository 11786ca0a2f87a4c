"""``python -m core``: the workbench from a terminal.

Every subcommand takes ``--workspace`` and ``--data-dir``; errors a user can cause print one line
and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.errors import WorkbenchError
from core.workspace import Workspace


def _progress_bars():
    """An Engine progress callback drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def report(stage: str, fraction: float) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=100, desc=stage, unit="%", file=sys.stderr, leave=True)
        bar.n = int(round(fraction * 100))
        bar.refresh()
        if fraction >= 1.0:
            bar.close()

    return report


def _engine(workspace: Workspace, dataset_name: str, quiet: bool = False):
    from core.catalog import open_dataset
    from core.profiles import load_profiles
    from core.retrieval import Engine

    dataset = open_dataset(workspace, dataset_name)
    for problem in dataset.problems[:10]:
        print(f"warning: skipped {problem}", file=sys.stderr)
    profiles = load_profiles(workspace.profiles_file)
    return Engine(workspace, dataset, profiles, progress=None if quiet else _progress_bars())


def _profile_names(engine, requested: str | None) -> list[str]:
    names = [n.strip() for n in requested.split(",") if n.strip()] if requested else list(engine.profiles)
    for name in names:
        engine.profile(name)  # raises a clear ProfileError for unknown names
    return names


def cmd_datasets(args, workspace: Workspace) -> None:
    from core.catalog import list_datasets

    print(f"{'name':32s} {'origin':10s} path")
    for info in list_datasets(workspace):
        print(f"{info.name:32s} {info.origin:10s} {info.path}")


def cmd_profiles(args, workspace: Workspace) -> None:
    from core.profiles import load_profiles, profile_to_dict

    for name, profile in load_profiles(workspace.profiles_file).items():
        params = {k: v for k, v in profile_to_dict(profile).items() if k not in ("name", "kind")}
        print(f"{name:20s} {profile.kind:7s} {params}")


def cmd_index(args, workspace: Workspace) -> None:
    engine = _engine(workspace, args.dataset)
    names = _profile_names(engine, args.profiles)
    if args.rebuild:
        from core.lexical import open_lexical_index
        from core.profiles import Bm25Profile

        for name in names:
            profile = engine.profile(name)
            if isinstance(profile, Bm25Profile):
                engine.reports.append(open_lexical_index(workspace, engine.dataset, profile.analyzer, rebuild=True)[1])
    engine.warm(names)
    for report in engine.reports:
        print(report)


def cmd_evaluate(args, workspace: Workspace) -> None:
    import pandas as pd

    from core.experiment import run_experiment
    from core.metrics import DEFAULT_METRICS, language_groups, slice_means

    engine = _engine(workspace, args.dataset, quiet=args.quiet)
    names = _profile_names(engine, args.profiles)
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else list(DEFAULT_METRICS)
    started = time.perf_counter()
    result = run_experiment(engine, names, metrics, depth=args.depth, save=not args.no_save)
    elapsed = time.perf_counter() - started
    for report in engine.reports:
        print(report)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(f"\n{engine.dataset.name}: {len(engine.dataset.judged_queries)} queries, {len(engine.dataset.documents)} documents\n")
        print(result.table().to_string())
        if args.by_language:
            groups = language_groups(engine.dataset)
            for evaluation in result.evaluations:
                print(f"\n{evaluation.run_name} by language")
                print(slice_means(evaluation, groups).to_string())
    if not args.no_save:
        print("\nsaved runs: " + ", ".join(run.run_id for run in result.runs))
    print(f"done in {elapsed:.1f}s")


def cmd_search(args, workspace: Workspace) -> None:
    engine = _engine(workspace, args.dataset, quiet=True)
    text = sys.stdin.read() if args.query == "-" else args.query
    engine.warm([args.profile])
    result = engine.search(args.profile, text, depth=args.k)
    if result.truncated:
        print("note: the query was cut to its first 100,000 characters", file=sys.stderr)
    print(f"{args.profile}: {len(result.ranking)} results in {result.seconds * 1000:.1f} ms")
    for rank, (doc_id, score) in enumerate(zip(result.ranking.doc_ids, result.ranking.scores), start=1):
        text = engine.dataset.document(doc_id).text.replace("\n", " ")
        print(f"{rank:3d}  {score:9.4f}  {doc_id:12s}  {text[:100]}")


def cmd_runs(args, workspace: Workspace) -> None:
    from core.runs import list_runs

    for saved in list_runs(workspace.runs_dir, args.dataset):
        summary = f"{saved.meta.get('queries', '?')} queries, {saved.meta.get('ms_per_query', float('nan')):.2f} ms/query"
        print(f"{saved.run_id:26s} {saved.name:20s} {saved.dataset:24s} {saved.created}  {summary}")


def cmd_export(args, workspace: Workspace) -> None:
    from core.runs import load_run, write_trec

    run = load_run(workspace.runs_dir, args.run)
    path = write_trec(run, Path(args.out))
    print(f"wrote {path} ({sum(len(r) for r in run.rankings.values())} lines)")


def cmd_import_run(args, workspace: Workspace) -> None:
    from core.runs import read_trec, save_run

    run = save_run(read_trec(Path(args.file), name=args.name, dataset=args.dataset), workspace.runs_dir)
    print(f"imported {args.file} as run {run.run_id} ({len(run.rankings)} queries)")


def cmd_import_zip(args, workspace: Workspace) -> None:
    from core.archives import import_zip

    folder = import_zip(Path(args.file), workspace.datasets_dir, name=args.name, overwrite=args.overwrite)
    print(f"imported dataset into {folder}")


def cmd_download(args, workspace: Workspace) -> None:
    from core.hub import download_nano_dataset

    folder = download_nano_dataset(args.repo, args.subset, workspace.datasets_dir, name=args.name)
    print(f"downloaded into {folder}")


def cmd_build_stdlib(args, workspace: Workspace) -> None:
    from core.stdlib_benchmark import ensure_stdlib_benchmark

    print(f"built-in benchmark at {ensure_stdlib_benchmark(workspace.datasets_dir)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="codeir workbench: evaluate code retrieval from the terminal.")
    parser.add_argument("--workspace", help="workspace folder (default: $CODEIR_WORKSPACE or ./workspace)")
    parser.add_argument("--data-dir", help="folder of BEIR datasets (default: $CODEIR_DATA_DIR or ../shared/datasets)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("datasets", help="list datasets").set_defaults(func=cmd_datasets)
    sub.add_parser("profiles", help="list retriever profiles").set_defaults(func=cmd_profiles)

    index = sub.add_parser("index", help="build (or reuse) the indexes profiles need")
    index.add_argument("--dataset", required=True)
    index.add_argument("--profiles", help="comma-separated profile names (default: all)")
    index.add_argument("--rebuild", action="store_true", help="rebuild BM25 indexes even when they are current")
    index.set_defaults(func=cmd_index)

    evaluate = sub.add_parser("evaluate", help="evaluate profiles on a dataset and print a metrics table")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--profiles", help="comma-separated profile names (default: all)")
    evaluate.add_argument("--metrics", help="comma-separated, e.g. ndcg@10,hit@10,recall@100,mrr@10")
    evaluate.add_argument("--depth", type=int, default=100)
    evaluate.add_argument("--by-language", action="store_true", help="also print means per language")
    evaluate.add_argument("--no-save", action="store_true", help="do not save the runs")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.set_defaults(func=cmd_evaluate)

    search = sub.add_parser("search", help="search one query ('-' reads it from stdin)")
    search.add_argument("--dataset", required=True)
    search.add_argument("--profile", default="hybrid-rrf")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("query")
    search.set_defaults(func=cmd_search)

    runs = sub.add_parser("runs", help="list saved runs")
    runs.add_argument("--dataset")
    runs.set_defaults(func=cmd_runs)

    export = sub.add_parser("export", help="export a saved run as a TREC run file")
    export.add_argument("--run", required=True)
    export.add_argument("--out", required=True)
    export.set_defaults(func=cmd_export)

    imported = sub.add_parser("import-run", help="import a TREC run file")
    imported.add_argument("file")
    imported.add_argument("--dataset", required=True)
    imported.add_argument("--name")
    imported.set_defaults(func=cmd_import_run)

    archive = sub.add_parser("import-zip", help="import a BEIR dataset from a .zip")
    archive.add_argument("file")
    archive.add_argument("--name")
    archive.add_argument("--overwrite", action="store_true")
    archive.set_defaults(func=cmd_import_zip)

    download = sub.add_parser("download", help="download NanoCoIR / NanoCodeSearchNet from the Hugging Face hub")
    download.add_argument("--repo", default="hakari-bench/NanoCoIR")
    download.add_argument("--subset", default="NanoCodeSearchNet")
    download.add_argument("--name")
    download.set_defaults(func=cmd_download)

    sub.add_parser("build-stdlib", help="build the built-in standard-library benchmark").set_defaults(func=cmd_build_stdlib)
    _add_extensions(sub)
    return parser


def _add_extensions(sub) -> None:
    """Subcommands of optional modules (benchmark building, audit, fine-tuning) register here."""
    try:
        from core import cli_extra
    except ImportError:
        return
    cli_extra.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        workspace = Workspace.open(args.workspace, args.data_dir)
        args.func(args, workspace)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; indexes already built are kept", file=sys.stderr)
        return 130
    return 0
