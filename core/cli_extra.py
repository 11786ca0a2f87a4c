"""More ``python -m core`` subcommands: build a benchmark, audit leakage, compare with significance, report, sweep.

``core.cli`` calls ``register`` when this module exists. Each command is ``func(args, workspace)``
and reports user mistakes by raising a WorkbenchError (the CLI prints one line and exits 2).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import DatasetError, ProfileError
from core.workspace import Workspace


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _check_new_dataset_name(workspace: Workspace, name: str) -> str:
    """A dataset name that is valid and not taken (a new dataset would be hidden by, or replace, the old one)."""
    from core.catalog import list_datasets
    from core.datasets import validate_name

    validate_name(name)
    taken = {info.name: info for info in list_datasets(workspace)}
    if name in taken:
        raise DatasetError(f"A dataset named {name!r} already exists ({taken[name].path}): choose another name.")
    return name


def _evaluated(workspace: Workspace, dataset: str, profiles: str | None, metrics: list[str], depth: int, quiet: bool = True):
    """Runs and evaluations of the named profiles (all when none are named) on one dataset."""
    from core.cli import _engine, _profile_names
    from core.experiment import run_experiment

    engine = _engine(workspace, dataset, quiet=quiet)
    names = _profile_names(engine, profiles)
    result = run_experiment(engine, names, metrics, depth=depth, save=False)
    return engine, result


def cmd_build_benchmark(args, workspace: Workspace) -> None:
    from core.source_benchmark import build_from_tree, check_source_root

    root = check_source_root(args.root)
    name = _check_new_dataset_name(workspace, args.name)
    dataset = build_from_tree(root, name, args.direction, _names(args.languages) or None, args.queries, args.seed,
                              args.strip_docstring, out_dir=workspace.datasets_dir)
    languages = ", ".join(dataset.languages) or "none"
    print(f"built {name}: {len(dataset.queries)} queries, {len(dataset.documents)} documents ({languages}) "
          f"in {workspace.datasets_dir / name}")


def cmd_audit(args, workspace: Workspace) -> None:
    import pandas as pd

    from core.catalog import open_dataset
    from core.datasets import write_dataset
    from core.leakage import audit_many, filter_train

    eval_names = _names(args.eval)
    if not eval_names:
        raise DatasetError("Name at least one eval dataset with --eval NAME[,NAME].")
    if args.write_filtered:
        _check_new_dataset_name(workspace, args.write_filtered)
    train = open_dataset(workspace, args.train)
    evals = [open_dataset(workspace, name) for name in eval_names]
    reports = audit_many(train, evals, args.threshold)
    counts = pd.DataFrame({report.eval: report.counts() for report in reports}).T
    counts["leaked eval queries"] = [len(report.leaked_eval_ids()) for report in reports]
    counts["eval queries"] = [report.eval_pairs for report in reports]
    print(f"train {train.name}: {reports[0].train_pairs} pairs audited\n")
    print(counts.to_string())
    overlaps = pd.concat([report.to_frame() for report in reports], ignore_index=True)
    if len(overlaps):
        shown = overlaps[["eval", "kind", "train_query_id", "eval_query_id", "similarity"]].head(args.show)
        print(f"\nfirst {len(shown)} of {len(overlaps)} overlaps\n{shown.to_string(index=False)}")
    if args.write_filtered:
        filtered = filter_train(train, reports, args.write_filtered)
        meta = {"filtered_from": train.name, "audited_against": eval_names, "jaccard_threshold": args.threshold,
                "removed_queries": len(train.queries) - len(filtered.queries)}
        folder = write_dataset(filtered, workspace.datasets_dir / filtered.name, meta)
        print(f"\nwrote {filtered.name}: {len(filtered.queries)} queries, {len(filtered.documents)} documents in {folder}")


def cmd_compare(args, workspace: Workspace) -> None:
    import pandas as pd

    from core.significance import compare_all, marked_leaderboard

    _, result = _evaluated(workspace, args.dataset, args.profiles, [args.metric], args.depth)
    table = compare_all(result.evaluations, args.metric, args.baseline, args.test, args.correction, args.alpha)
    board = marked_leaderboard(table)
    family = f"against baseline {table.baseline}" if table.baseline else "all pairs"
    print(f"{result.dataset}: {table.queries} queries, {table.metric}, {table.test} test, {family}, "
          f"{table.correction} correction, alpha {table.alpha}\n")
    print(board[["letter", "shown"]].rename(columns={"shown": table.metric}).to_string())
    frame = table.to_frame()
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print("\n" + frame.to_string(index=False))


def cmd_report(args, workspace: Workspace) -> None:
    from core.metrics import DEFAULT_METRICS
    from core.report import build_report

    metrics = _names(args.metrics) or list(DEFAULT_METRICS)
    engine, result = _evaluated(workspace, args.dataset, args.profiles, metrics, args.depth)
    files = build_report(engine.dataset, result.evaluations, result.runs, metrics, args.baseline, Path(args.out),
                         failures_top_n=args.failures, test=args.test, correction=args.correction, alpha=args.alpha)
    print(f"wrote {files.html}\nwrote {files.markdown} (+ {len(files.images)} images in {files.markdown.parent / 'images'})")


def cmd_sweep(args, workspace: Workspace) -> None:
    import pandas as pd

    from core.cli import _engine
    from core.profiles import HybridProfile, RerankProfile
    from core.sweep import DEFAULT_POOL_DEPTHS, DEFAULT_WEIGHTS, sweep_frame, sweep_hybrid_weight, sweep_rerank_pool

    engine = _engine(workspace, args.dataset, quiet=True)
    kind = RerankProfile if args.what == "pool" else HybridProfile
    default = "rerank-fusion" if args.what == "pool" else "hybrid-weighted"
    name = args.profile or default
    base = engine.profile(name)
    if not isinstance(base, kind):
        raise ProfileError(f"{name!r} is a {base.kind} profile: --what {args.what} needs a {kind.kind} profile.")
    try:
        values = [float(v) for v in _names(args.values)]
    except ValueError:
        raise ProfileError(f"--values {args.values!r} must be comma-separated numbers.") from None
    if args.what == "pool":
        points = sweep_rerank_pool(engine, base, [int(v) for v in values] or DEFAULT_POOL_DEPTHS, args.metric, args.depth)
    else:
        points = sweep_hybrid_weight(engine, base, values or DEFAULT_WEIGHTS, args.metric, args.depth)
    frame = sweep_frame(points)[["value", "metric_value", "ms_per_query"]]
    frame.columns = ["pool_depth" if args.what == "pool" else f"weight of {base.members[0]}", args.metric, "ms/query"]
    with pd.option_context("display.float_format", "{:.4f}".format):
        print(f"{engine.dataset.name}: sweep of {name}\n")
        print(frame.to_string(index=False))


def _add_significance_options(parser: argparse.ArgumentParser) -> None:
    from core.significance import CORRECTIONS, TESTS

    parser.add_argument("--baseline", help="compare each profile with this one (default: every pair)")
    parser.add_argument("--test", choices=TESTS, default="randomization")
    parser.add_argument("--correction", choices=CORRECTIONS, default="holm")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--depth", type=int, default=100)


def register(subparsers) -> None:
    """Add build-benchmark, audit, compare, report, sweep and finetune to the ``python -m core`` parser."""
    from core.leakage import DEFAULT_JACCARD
    from core.source_benchmark import DEFAULT_SEED, DIRECTIONS

    build = subparsers.add_parser("build-benchmark", help="build a code <-> docstring benchmark from a source tree")
    build.add_argument("--root", required=True, help="source folder on this machine")
    build.add_argument("--name", required=True, help="name of the new dataset")
    build.add_argument("--direction", choices=DIRECTIONS, default="code2doc")
    build.add_argument("--languages", help="comma-separated, e.g. python,go (default: all supported)")
    build.add_argument("--queries", type=int, default=200)
    build.add_argument("--seed", type=int, default=DEFAULT_SEED)
    build.add_argument("--strip-docstring", action="store_true", help="code2doc: cut the docstring out of each query")
    build.set_defaults(func=cmd_build_benchmark)

    audit = subparsers.add_parser("audit", help="find eval pairs a training set already holds")
    audit.add_argument("--train", required=True)
    audit.add_argument("--eval", required=True, help="comma-separated eval dataset names")
    audit.add_argument("--threshold", type=float, default=DEFAULT_JACCARD, help="Jaccard similarity of near duplicates")
    audit.add_argument("--show", type=int, default=20, help="overlaps to print")
    audit.add_argument("--write-filtered", metavar="NAME", help="write the train set without leaked queries as NAME")
    audit.set_defaults(func=cmd_audit)

    compare = subparsers.add_parser("compare", help="paired significance tests between profiles")
    compare.add_argument("--dataset", required=True)
    compare.add_argument("--profiles", help="comma-separated profile names (default: all)")
    compare.add_argument("--metric", default="ndcg@10")
    _add_significance_options(compare)
    compare.set_defaults(func=cmd_compare)

    report = subparsers.add_parser("report", help="write an HTML and a Markdown report")
    report.add_argument("--dataset", required=True)
    report.add_argument("--profiles", help="comma-separated profile names (default: all)")
    report.add_argument("--metrics", help="comma-separated; the first picks the best profile (default: ndcg@10,...)")
    report.add_argument("--out", required=True, help="folder to write report.html, report.md and images/ into")
    report.add_argument("--failures", type=int, default=10, help="failure cases to show")
    _add_significance_options(report)
    report.set_defaults(func=cmd_report)

    sweep = subparsers.add_parser("sweep", help="quality against latency over a rerank pool depth or a hybrid weight")
    sweep.add_argument("--dataset", required=True)
    sweep.add_argument("--what", choices=("pool", "weight"), required=True)
    sweep.add_argument("--profile", help="rerank (pool) or two-member hybrid (weight) profile to vary")
    sweep.add_argument("--values", help="comma-separated pool depths or weights (default: 5,10,20,50,100 or 0,0.1,...,1)")
    sweep.add_argument("--metric", default="ndcg@10")
    sweep.add_argument("--depth", type=int, default=100)
    sweep.set_defaults(func=cmd_sweep)

    from core.finetune import register_finetune_cli

    register_finetune_cli(subparsers)

