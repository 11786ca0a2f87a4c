"""Subcommands for indexes and runs: profiles, index, search, store-corpus, search-corpus, runs, export, import-run."""
from __future__ import annotations

import sys
from pathlib import Path

from core.cli.common import MAX_WARNINGS, add_ray_options, open_engine, ray_options, requested_profiles, terminal_safe
from core.workspace import Workspace

def cmd_profiles(args, workspace: Workspace) -> None:
    from core.retrieval.profiles import load_profiles, profile_to_dict

    for name, profile in load_profiles(workspace.profiles_file).items():
        params = {k: v for k, v in profile_to_dict(profile).items() if k not in ("name", "kind")}
        print(f"{name:20s} {profile.kind:7s} {params}")


def cmd_index(args, workspace: Workspace) -> None:
    options = ray_options(args)
    engine = open_engine(workspace, args.dataset)
    names = requested_profiles(engine, args.profiles)
    if options is not None:  # corpus embeddings on Ray first; warm() below then opens them like any table it built
        from core.retrieval.scale import embed_with_ray

        engine.reports.extend(embed_with_ray(engine, names, options, rebuild=args.rebuild))
    if args.rebuild:
        from core.index.lexical import open_lexical_index
        from core.retrieval.profiles import Bm25Profile

        for name in names:
            profile = engine.profile(name)
            if isinstance(profile, Bm25Profile):
                engine.reports.append(open_lexical_index(workspace, engine.dataset, profile.analyzer, rebuild=True)[1])
    engine.warm(names)
    for report in engine.reports:
        print(report)


def cmd_search(args, workspace: Workspace) -> None:
    engine = open_engine(workspace, args.dataset, quiet=True)
    text = read_stdin() if args.query == "-" else args.query
    engine.warm([args.profile])
    result = engine.search(args.profile, text, depth=args.k)
    if result.truncated:
        print("note: the query was cut to its first 100,000 characters", file=sys.stderr)
    print(f"{args.profile}: {len(result.ranking)} results in {result.seconds * 1000:.1f} ms")
    for rank, (doc_id, score) in enumerate(zip(result.ranking.doc_ids, result.ranking.scores), start=1):
        text = engine.dataset.document(doc_id).text.replace("\n", " ")
        print(f"{rank:3d}  {score:9.4f}  {doc_id:12s}  {text[:100]}")


def _open_stored(args, workspace: Workspace, quiet: bool):
    from core.data.catalog import dataset_path
    from core.progress import staged, tqdm_progress
    from core.retrieval.stored_search import open_stored_corpus, stage_names

    corpus = open_stored_corpus(workspace, args.dataset, dataset_path(workspace, args.dataset), args.analyzer,
                                rebuild=getattr(args, "rebuild", False), on_problem="raise" if getattr(args, "strict", False) else "skip",
                                progress=None if quiet else staged(tqdm_progress(), stage_names(args.analyzer)))
    problems = corpus.store.problems
    for problem in problems[:MAX_WARNINGS]:
        print(f"warning: skipped {terminal_safe(problem)}", file=sys.stderr)
    skipped = corpus.store.stamp.get("problem_count", 0)
    if skipped > MAX_WARNINGS:
        print(f"warning: ... {skipped:,} corpus lines skipped in all", file=sys.stderr)
    return corpus


def cmd_store_corpus(args, workspace: Workspace) -> None:
    corpus = _open_stored(args, workspace, quiet=False)
    for report in corpus.reports:
        print(report)
    print(f"{corpus.store.num_docs:,} documents stored in {corpus.store.folder}")


def cmd_search_corpus(args, workspace: Workspace) -> None:
    from core.retrieval.stored_search import search_stored

    corpus = _open_stored(args, workspace, quiet=True)
    result = search_stored(corpus, read_stdin() if args.query == "-" else args.query, args.k)
    if result.truncated:
        print("note: the query was cut to its first 100,000 characters", file=sys.stderr)
    print(f"bm25 ({args.analyzer}) over the stored corpus of {args.dataset}: {len(result.hits)} results in "
          f"{result.seconds * 1000:.1f} ms")
    for hit in result.hits:
        text = hit.document.full_text.replace("\n", " ")
        print(f"{hit.rank:3d}  {hit.score:9.4f}  {hit.document.id:12s}  {text[:100]}")


def read_stdin() -> str:
    """Standard input as text whatever its bytes: invalid UTF-8 becomes U+FFFD, as in any pasted query."""
    buffer = getattr(sys.stdin, "buffer", None)
    return buffer.read().decode("utf-8", "replace") if buffer is not None else sys.stdin.read()


def cmd_runs(args, workspace: Workspace) -> None:
    from core.retrieval.runs import list_runs

    for saved in list_runs(workspace.runs_dir, args.dataset):
        if saved.damaged:
            print(f"{saved.run_id:26s} DAMAGED: {saved.damage}")
            continue
        summary = f"{saved.meta.get('queries', '?')} queries, {saved.meta.get('ms_per_query', float('nan')):.2f} ms/query"
        print(f"{saved.run_id:26s} {saved.name:20s} {saved.dataset:24s} {saved.created}  {summary}")


def cmd_export(args, workspace: Workspace) -> None:
    from core.retrieval.runs import load_run, write_trec

    run = load_run(workspace.runs_dir, args.run)
    path = write_trec(run, Path(args.out))
    print(f"wrote {path} ({sum(len(r) for r in run.rankings.values())} lines)")


def cmd_import_run(args, workspace: Workspace) -> None:
    from core.data.catalog import open_dataset
    from core.evaluation.manifest import import_trec_run

    run = import_trec_run(workspace, Path(args.file), open_dataset(workspace, args.dataset), name=args.name)
    print(f"imported {args.file} as run {run.run_id} ({len(run.rankings)} queries)")


def register(sub) -> None:
    """Add this group's subcommands to the ``python -m core`` parser."""
    sub.add_parser("profiles", help="list retriever profiles").set_defaults(func=cmd_profiles)

    index = sub.add_parser("index", help="build (or reuse) the indexes profiles need")
    index.add_argument("--dataset", required=True)
    index.add_argument("--profiles", help="comma-separated profile names (default: all)")
    index.add_argument("--rebuild", action="store_true",
                       help="rebuild BM25 indexes (and, with --engine ray, corpus embeddings) even when they are current")
    add_ray_options(index, "embed the corpus")
    index.set_defaults(func=cmd_index)

    search = sub.add_parser("search", help="search one query ('-' reads it from stdin)")
    search.add_argument("--dataset", required=True)
    search.add_argument("--profile", default="hybrid-rrf")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("query")
    search.set_defaults(func=cmd_search)

    store = sub.add_parser("store-corpus", help="store a dataset's corpus as a Lance dataset and build its BM25 index "
                                                "by streaming (bounded memory, for corpora of millions)")
    store.add_argument("--dataset", required=True)
    store.add_argument("--analyzer", choices=("code", "plain"), default="code")
    store.add_argument("--rebuild", action="store_true", help="rewrite the store and the index even when they are current")
    store.add_argument("--strict", action="store_true", help="refuse a corpus with any defective line instead of skipping it")
    store.set_defaults(func=cmd_store_corpus)

    stored = sub.add_parser("search-corpus", help="BM25 search over a stored corpus, documents read by row "
                                                  "('-' reads the query from stdin)")
    stored.add_argument("--dataset", required=True)
    stored.add_argument("--analyzer", choices=("code", "plain"), default="code")
    stored.add_argument("-k", type=int, default=10)
    stored.add_argument("query")
    stored.set_defaults(func=cmd_search_corpus)

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
