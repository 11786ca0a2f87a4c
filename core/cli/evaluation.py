"""Subcommands that score runs: evaluate, compare (significance), report, sweep."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from core.cli.common import add_ray_options, evaluated, open_engine, ray_options, requested_profiles, split_names
from core.errors import ProfileError
from core.retrieval.limits import check_number
from core.workspace import Workspace

def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def add_significance_options(parser: argparse.ArgumentParser) -> None:
    from core.evaluation.significance import CORRECTIONS, TESTS

    parser.add_argument("--baseline", help="compare each profile with this one (default: every pair)")
    parser.add_argument("--test", choices=TESTS, default="randomization")
    parser.add_argument("--correction", choices=CORRECTIONS, default="holm")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--depth", type=int, default=100)


def cmd_evaluate(args, workspace: Workspace) -> None:
    import pandas as pd

    from core.evaluation.experiment import run_experiment
    from core.evaluation.metrics import DEFAULT_METRICS, language_groups, slice_means

    options = ray_options(args)
    engine = open_engine(workspace, args.dataset, quiet=args.quiet)
    names = requested_profiles(engine, args.profiles)
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else list(DEFAULT_METRICS)
    runner = None
    if options is not None:  # each profile's queries split into Ray tasks (progress per profile)
        from core.retrieval.scale import run_with_ray

        def runner(name: str, depth: int):
            report = (lambda fraction: engine.progress(f"run {name} on Ray", fraction)) if engine.progress else None
            return run_with_ray(engine, name, options, depth=depth, queries_per_task=args.queries_per_task, progress=report)
    started = time.perf_counter()
    result = run_experiment(engine, names, metrics, depth=args.depth, save=not args.no_save, runner=runner)
    elapsed = time.perf_counter() - started
    for report in engine.reports:
        print(report)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(f"\n{engine.dataset.name}: {len(engine.dataset.judged_queries)} queries, {len(engine.dataset.documents)} documents\n")
        print(result.table().to_string())
        if args.ci:
            from core.evaluation.bootstrap import confidence_intervals, interval_frame

            keys = list(result.evaluations[0].metrics)
            intervals = confidence_intervals(result.evaluations, keys, resamples=args.resamples, seed=args.seed)
            print(f"\n95% percentile bootstrap intervals over queries ({args.resamples} resamples, seed {args.seed}): "
                  "mean ± half width [low, high]")
            print(interval_frame(intervals, digits=4, bracket=True).to_string())
        if args.by_language:
            groups = language_groups(engine.dataset)
            for evaluation in result.evaluations:
                print(f"\n{evaluation.run_name} by language")
                print(slice_means(evaluation, groups).to_string())
    if not args.no_save:
        print("\nsaved runs: " + ", ".join(run.run_id for run in result.runs))
    print(f"done in {elapsed:.1f}s")


def cmd_compare(args, workspace: Workspace) -> None:
    import pandas as pd

    from core.evaluation.significance import compare_all, marked_leaderboard

    _, result = evaluated(workspace, args.dataset, args.profiles, [args.metric], args.depth)
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
    from core.evaluation.embedding_map import dense_model, embedding_map, has_vectors, map_points
    from core.evaluation.leaderboard import with_saved_ids
    from core.evaluation.metrics import DEFAULT_METRICS
    from core.evaluation.report import build_report
    from core.retrieval.runs import list_runs

    metrics = split_names(args.metrics) or list(DEFAULT_METRICS)
    engine, result = evaluated(workspace, args.dataset, args.profiles, metrics, args.depth)
    runs = with_saved_ids(result.runs, engine.dataset, engine.profiles, list_runs(workspace.runs_dir, engine.dataset.name))
    mapped = next((e for e in result.evaluations if has_vectors(engine.profiles, e.run_name)), None)
    points = None
    if mapped is not None:  # the first profile with dense vectors colours the map
        points = map_points(embedding_map(engine, *dense_model(engine.profiles, mapped.run_name)), engine.dataset, mapped)
    files = build_report(engine.dataset, result.evaluations, runs, metrics, args.baseline, Path(args.out),
                         failures_top_n=args.failures, test=args.test, correction=args.correction, alpha=args.alpha,
                         map_points=points)
    print(f"wrote {files.html}\nwrote {files.markdown} (+ {len(files.images)} images in {files.markdown.parent / 'images'})")


def cmd_sweep(args, workspace: Workspace) -> None:
    import pandas as pd

    from core.retrieval.profiles import HybridProfile, RerankProfile
    from core.evaluation.sweep import DEFAULT_POOL_DEPTHS, DEFAULT_WEIGHTS, sweep_frame, sweep_hybrid_weight, sweep_rerank_pool

    engine = open_engine(workspace, args.dataset, quiet=True)
    kind = RerankProfile if args.what == "pool" else HybridProfile
    default = "rerank-fusion" if args.what == "pool" else "hybrid-weighted"
    name = args.profile or default
    base = engine.profile(name)
    if not isinstance(base, kind):
        raise ProfileError(f"{name!r} is a {base.kind} profile: --what {args.what} needs a {kind.kind} profile.")
    number_kind = "pool" if args.what == "pool" else "weight"
    values = [check_number(number_kind, v, f"--values ({'pool depth' if args.what == 'pool' else 'weight'})")
              for v in split_names(args.values)]
    if args.what == "pool":
        points = sweep_rerank_pool(engine, base, [int(v) for v in values] or DEFAULT_POOL_DEPTHS, args.metric, args.depth)
    else:
        points = sweep_hybrid_weight(engine, base, values or DEFAULT_WEIGHTS, args.metric, args.depth)
    frame = sweep_frame(points)[["value", "metric_value", "ms_per_query"]]
    frame.columns = ["pool_depth" if args.what == "pool" else f"weight of {base.members[0]}", args.metric, "ms/query"]
    with pd.option_context("display.float_format", "{:.4f}".format):
        print(f"{engine.dataset.name}: sweep of {name}\n")
        print(frame.to_string(index=False))


def register(sub) -> None:
    """Add this group's subcommands to the ``python -m core`` parser."""
    evaluate = sub.add_parser("evaluate", help="evaluate profiles on a dataset and print a metrics table")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--profiles", help="comma-separated profile names (default: all)")
    evaluate.add_argument("--metrics", help="comma-separated, e.g. ndcg@10,hit@10,recall@100,mrr@10")
    evaluate.add_argument("--depth", type=int, default=100)
    evaluate.add_argument("--by-language", action="store_true", help="also print means per language")
    evaluate.add_argument("--ci", action="store_true", help="also print 95%% bootstrap confidence intervals of each mean")
    evaluate.add_argument("--resamples", type=_positive, default=10_000, help="bootstrap resamples for --ci (default 10000)")
    evaluate.add_argument("--seed", type=int, default=0, help="bootstrap seed for --ci (default 0)")
    evaluate.add_argument("--no-save", action="store_true", help="do not save the runs")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    add_ray_options(evaluate, "split each run into tasks")
    evaluate.add_argument("--queries-per-task", type=int, default=1000, help="with --engine ray: queries per Ray task (default 1000)")
    evaluate.set_defaults(func=cmd_evaluate)

    compare = sub.add_parser("compare", help="paired significance tests between profiles")
    compare.add_argument("--dataset", required=True)
    compare.add_argument("--profiles", help="comma-separated profile names (default: all)")
    compare.add_argument("--metric", default="ndcg@10")
    add_significance_options(compare)
    compare.set_defaults(func=cmd_compare)

    report = sub.add_parser("report", help="write an HTML and a Markdown report")
    report.add_argument("--dataset", required=True)
    report.add_argument("--profiles", help="comma-separated profile names (default: all)")
    report.add_argument("--metrics", help="comma-separated; the first picks the best profile (default: ndcg@10,...)")
    report.add_argument("--out", required=True, help="folder to write report.html, report.md and images/ into")
    report.add_argument("--failures", type=int, default=10, help="failure cases to show")
    add_significance_options(report)
    report.set_defaults(func=cmd_report)

    sweep = sub.add_parser("sweep", help="quality against latency over a rerank pool depth or a hybrid weight")
    sweep.add_argument("--dataset", required=True)
    sweep.add_argument("--what", choices=("pool", "weight"), required=True)
    sweep.add_argument("--profile", help="rerank (pool) or two-member hybrid (weight) profile to vary")
    sweep.add_argument("--values", help="comma-separated pool depths or weights (default: 5,10,20,50,100 or 0,0.1,...,1)")
    sweep.add_argument("--metric", default="ndcg@10")
    sweep.add_argument("--depth", type=int, default=100)
    sweep.set_defaults(func=cmd_sweep)
