"""Subcommands that score runs: evaluate, compare (significance), report, sweep."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from core.cli.common import add_ray_options, evaluated, open_engine, ray_options, requested_profiles, split_names
from core.errors import ProfileError
from core.retrieval.limits import MAX_RESAMPLES, check_number, numpy_seed
from core.workspace import Workspace

def _resamples(text: str) -> int:
    """--resamples as argparse reads it, so that '1e20' is refused with the range rather than as 'invalid int'."""
    from core.errors import OptionError

    try:
        return check_number("resamples", text, "--resamples")
    except OptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
        from core.progress import fraction_reporter
        from core.retrieval.scale import run_with_ray

        def runner(name: str, depth: int):
            report = fraction_reporter(engine.progress, f"run {name} on Ray", len(engine.dataset.judged_queries), "queries")
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
            intervals = confidence_intervals(result.evaluations, keys, resamples=args.resamples, seed=numpy_seed(args.seed))
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


def with_saved_runs(workspace: Workspace, result, run_ids: str | None, metrics: list[str]):
    """The experiment's runs and evaluations plus the named saved runs (imported TREC runs among them)."""
    from core.evaluation.experiment import ExperimentResult
    from core.evaluation.leaderboard import saved_run_label
    from core.evaluation.metrics import evaluate
    from core.evaluation.run_diff import check_comparable
    from core.retrieval.runs import load_run

    runs, evaluations = list(result.runs), list(result.evaluations)
    ids = split_names(run_ids)
    if not ids:
        return result
    from core.data.catalog import open_dataset

    dataset = open_dataset(workspace, result.dataset)
    for run_id in ids:
        run = load_run(workspace.runs_dir, run_id)
        run = replace(run, name=saved_run_label(run.run_id, run.name))
        for warning in check_comparable(run, run, dataset):
            print(f"warning: {warning}", file=sys.stderr)
        runs.append(run)
        evaluations.append(evaluate(dataset.qrels, run, metrics))
    return ExperimentResult(result.dataset, tuple(runs), tuple(evaluations))


def cmd_compare(args, workspace: Workspace) -> None:
    import pandas as pd

    from core.evaluation.significance import compare_all, marked_leaderboard

    _, result = evaluated(workspace, args.dataset, args.profiles, [args.metric], args.depth)
    result = with_saved_runs(workspace, result, args.runs, [args.metric])
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
    result = with_saved_runs(workspace, result, args.runs, metrics)
    runs = with_saved_ids(result.runs, engine.dataset, engine.profiles, list_runs(workspace.runs_dir, engine.dataset.name))
    mapped = next((e for e in result.evaluations if has_vectors(engine.profiles, e.run_name)), None)
    points = None
    if mapped is not None:  # the first profile with dense vectors colours the map
        points = map_points(embedding_map(engine, *dense_model(engine.profiles, mapped.run_name)), engine.dataset, mapped)
    files = build_report(engine.dataset, result.evaluations, runs, metrics, args.baseline, Path(args.out),
                         failures_top_n=args.failures, test=args.test, correction=args.correction, alpha=args.alpha,
                         map_points=points)
    print(f"wrote {files.html}\nwrote {files.markdown} (+ {len(files.images)} images in {files.markdown.parent / 'images'})")


def cmd_reproduce(args, workspace: Workspace) -> int:
    from core.evaluation.manifest import load_manifest, reproduce

    manifest = load_manifest(Path(args.manifest))
    result = reproduce(workspace, manifest)
    width = max(len(c.metric) for c in result.checks) if result.checks else 6
    print(f"{manifest['run'].get('name')} on {manifest['dataset'].get('name')}: saved {manifest.get('time', '?')}\n")
    for check in result.checks:
        verdict = "match" if check.matches else f"DIFFERS by {check.now - check.saved:+.6g}"
        print(f"{check.metric:<{width}}  saved {check.saved:.6f}  now {check.now:.6f}  {verdict}")
    if result.differences:
        print("\nwhat differs from when it was saved:")
        for line in result.differences:
            print(f"  {line}")
    if result.matches:
        print(f"\nreproduced: all {len(result.checks)} metrics match (to 1e-9)")
    else:
        failed = [c.metric for c in result.checks if not c.matches]
        print(f"\nnot reproduced: {', '.join(failed)} differ", file=sys.stderr)
        return 1
    return 0


def cmd_manifest(args, workspace: Workspace) -> None:
    from core.evaluation.manifest import ManifestError, manifest_json, run_manifest
    from core.retrieval.runs import load_run

    manifest = run_manifest(load_run(workspace.runs_dir, args.run))
    if manifest is None:
        raise ManifestError(f"Run {args.run} was saved without a manifest (before manifests existed): evaluate its profile again.")
    text = manifest_json(manifest)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)


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
    evaluate.add_argument("--resamples", type=_resamples, default=10_000,
                          help=f"bootstrap resamples for --ci (default 10000, at most {MAX_RESAMPLES:,})")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="bootstrap seed for --ci, any 64-bit integer; a negative one draws as seed + 2**64 (default 0)")
    evaluate.add_argument("--no-save", action="store_true", help="do not save the runs")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    add_ray_options(evaluate, "split each run into tasks")
    evaluate.add_argument("--queries-per-task", type=int, default=1000, help="with --engine ray: queries per Ray task (default 1000)")
    evaluate.set_defaults(func=cmd_evaluate)

    compare = sub.add_parser("compare", help="paired significance tests between profiles")
    compare.add_argument("--dataset", required=True)
    compare.add_argument("--profiles", help="comma-separated profile names (default: all)")
    compare.add_argument("--metric", default="ndcg@10")
    compare.add_argument("--runs", help="comma-separated saved run ids (imported TREC runs too) to compare as well")
    add_significance_options(compare)
    compare.set_defaults(func=cmd_compare)

    report = sub.add_parser("report", help="write an HTML and a Markdown report")
    report.add_argument("--dataset", required=True)
    report.add_argument("--profiles", help="comma-separated profile names (default: all)")
    report.add_argument("--metrics", help="comma-separated; the first picks the best profile (default: ndcg@10,...)")
    report.add_argument("--out", required=True, help="folder to write report.html, report.md and images/ into")
    report.add_argument("--failures", type=int, default=10, help="failure cases to show")
    report.add_argument("--runs", help="comma-separated saved run ids (imported TREC runs too) to report as well")
    add_significance_options(report)
    report.set_defaults(func=cmd_report)

    again = sub.add_parser("reproduce", help="re-run a saved run's manifest and check that every metric matches")
    again.add_argument("manifest", help="manifest JSON (downloaded from the leaderboard, or written by `manifest --run <id>`)")
    again.set_defaults(func=cmd_reproduce)

    manifest = sub.add_parser("manifest", help="print or write the manifest saved with a run")
    manifest.add_argument("--run", required=True, help="saved run id (see `runs`)")
    manifest.add_argument("--out", help="file to write (default: print)")
    manifest.set_defaults(func=cmd_manifest)

    sweep = sub.add_parser("sweep", help="quality against latency over a rerank pool depth or a hybrid weight")
    sweep.add_argument("--dataset", required=True)
    sweep.add_argument("--what", choices=("pool", "weight"), required=True)
    sweep.add_argument("--profile", help="rerank (pool) or two-member hybrid (weight) profile to vary")
    sweep.add_argument("--values", help="comma-separated pool depths or weights (default: 5,10,20,50,100 or 0,0.1,...,1)")
    sweep.add_argument("--metric", default="ndcg@10")
    sweep.add_argument("--depth", type=int, default=100)
    sweep.set_defaults(func=cmd_sweep)
