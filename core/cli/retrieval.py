"""Subcommands for indexes and runs: profiles, index, import-vectors, search, store-corpus, search-corpus, runs, export,
import-run."""
from __future__ import annotations

import sys
from pathlib import Path

from core.cli.common import MAX_WARNINGS, add_ray_options, open_engine, ray_options, requested_profiles, terminal_safe
from core.errors import QueryError
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
    if args.ann:
        for line in build_ann_indexes(engine, names, args.ann, rebuild=args.rebuild):
            print(line)


def build_ann_indexes(engine, names: list[str], kind: str, rebuild: bool = False) -> list[str]:
    """Build (or reuse) an ANN index of ``kind`` on the table of each dense profile named, and measure its recall@100
    against exact search on the dataset's judged queries (kept beside the table; every ANN run then shows it)."""
    from dataclasses import replace

    from core.errors import ProfileError
    from core.index.ann import measure_ann
    from core.retrieval.profiles import DenseProfile

    dense = [name for name in names if isinstance(engine.profile(name), DenseProfile)]
    if not dense:
        raise ProfileError(f"--ann builds an index for dense profiles, and none of {', '.join(names)} is one: "
                           f"name one with --profiles (e.g. dense-minilm).")
    judged = list(engine.dataset.judged_queries)
    lines, done = [], set()
    for name in dense:
        profile = engine.profile(name)
        settings = replace(profile.ann_settings(always=True), kind=kind)
        if (profile.model, profile.backend, settings) in done:
            continue
        done.add((profile.model, profile.backend, settings))
        index = engine.vectors(profile.model, profile.backend)
        measured = measure_ann(engine.workspace, index, settings, engine.query_vectors(profile.model, profile.backend, judged),
                               rebuild=rebuild)
        lines += [str(measured.index), f"{name}: {measured}"]
        rebuild = False  # one rebuild per table, not one per profile sharing it
    return lines


def cmd_import_vectors(args, workspace: Workspace) -> None:
    from core.data.catalog import open_dataset
    from core.index.imported_vectors import import_vectors

    dataset = open_dataset(workspace, args.dataset)
    _, report = import_vectors(workspace, dataset, args.model, Path(args.file), args.backend,
                               Path(args.ids) if args.ids else None)
    print(report)
    if not report.unit_length:
        print(f"note: the vectors' norms run from {report.min_norm:.4f} to {report.max_norm:.4f}, not 1: dense scores "
              f"will be dot products, not cosines, and the model embeds queries normalised", file=sys.stderr)


def cmd_search(args, workspace: Workspace) -> None:
    text = read_stdin() if args.query == "-" else args.query
    engine = open_engine(workspace, args.dataset, quiet=True)
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

    text = read_stdin() if args.query == "-" else args.query
    corpus = _open_stored(args, workspace, quiet=True)
    result = search_stored(corpus, text, args.k)
    if result.truncated:
        print("note: the query was cut to its first 100,000 characters", file=sys.stderr)
    print(f"bm25 ({args.analyzer}) over the stored corpus of {args.dataset}: {len(result.hits)} results in "
          f"{result.seconds * 1000:.1f} ms")
    for hit in result.hits:
        text = hit.document.full_text.replace("\n", " ")
        print(f"{hit.rank:3d}  {hit.score:9.4f}  {hit.document.id:12s}  {text[:100]}")


def read_stdin() -> str:
    """The query on standard input as text whatever its bytes: invalid UTF-8 becomes U+FFFD, as in any pasted query.

    At most MAX_QUERY_CHARS characters are needed, so at most 4 bytes each (UTF-8's longest) and 4 more are read:
    enough for the search to see the query was longer and say it was cut, while ``- < /dev/zero`` stays bounded.
    """
    from core.data.datasets import read_at_most
    from core.retrieval.engine import MAX_QUERY_CHARS

    if sys.stdin is None:  # started with standard input closed (``<&-``)
        raise QueryError("Standard input is closed: give the query as an argument, or pipe it in with '-'.")
    limit = MAX_QUERY_CHARS * 4 + 4
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a text stream without bytes underneath (an embedding program's StringIO)
        return sys.stdin.read(limit)
    return read_at_most(buffer, limit)[0].decode("utf-8", "replace")


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
    index.add_argument("--ann", choices=("ivf_pq", "hnsw", "ivf_flat"),
                       help="also build this ANN index on each dense profile's table and measure its recall@100 against "
                            "exact search on the judged queries (runs stay exact unless a profile says search = \"ann\")")
    index.set_defaults(func=cmd_index)

    vectors = sub.add_parser("import-vectors", help="store corpus vectors computed elsewhere (parquet: id, vector; or .npy) "
                                                    "as the dense table of (dataset, model), after checking them")
    vectors.add_argument("--dataset", required=True)
    vectors.add_argument("--model", required=True, help="the model that made the vectors (queries are embedded with it)")
    vectors.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    vectors.add_argument("--ids", help=".npy only: a text file of one document id per line, line i naming row i "
                                       "(default: the rows are the corpus's rows in order)")
    vectors.add_argument("file", help="a .parquet file with columns id and vector (list<float32>), or a .npy float matrix")
    vectors.set_defaults(func=cmd_import_vectors)

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
