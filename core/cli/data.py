"""Subcommands for datasets: list, import a zip, download from the hub, build benchmarks."""
from __future__ import annotations

from pathlib import Path

from core.cli.common import check_new_dataset_name, split_names
from core.workspace import Workspace

def cmd_datasets(args, workspace: Workspace) -> None:
    from core.data.catalog import list_datasets

    print(f"{'name':32s} {'origin':10s} path")
    for info in list_datasets(workspace):
        print(f"{info.name:32s} {info.origin:10s} {info.path}")


def cmd_import_zip(args, workspace: Workspace) -> None:
    from core.data.archives import import_zip
    from core.data.catalog import names_held_elsewhere

    folder = import_zip(Path(args.file), workspace.datasets_dir, name=args.name, overwrite=args.overwrite,
                        reserved=names_held_elsewhere(workspace))
    print(f"imported dataset into {folder}")


def cmd_download(args, workspace: Workspace) -> None:
    from core.data.hub import download_nano_dataset

    from core.data.catalog import names_held_elsewhere

    folder = download_nano_dataset(args.repo, args.subset, workspace.datasets_dir, name=args.name,
                                   reserved=names_held_elsewhere(workspace))
    print(f"downloaded into {folder}")


def cmd_build_stdlib(args, workspace: Workspace) -> None:
    from core.data.stdlib_benchmark import ensure_stdlib_benchmark

    print(f"built-in benchmark at {ensure_stdlib_benchmark(workspace.datasets_dir)}")


def cmd_build_benchmark(args, workspace: Workspace) -> None:
    from core.data.source_benchmark import build_from_trees, check_source_root
    from core.data.source_trees import machine_source_trees
    from core.errors import DatasetError

    roots = [check_source_root(root) for root in args.root or ()]
    if args.all_sources:
        found, missing = machine_source_trees(workspace)
        for folder, origin in found:
            print(f"source tree: {folder} ({origin})")
        for tree in missing:
            print(f"not on this machine: {tree.pattern} ({tree.origin})")
        roots += [folder for folder, _ in found if folder not in roots]
    if not roots:
        raise DatasetError("Give a source folder with --root (repeat it to pool several), or --all-sources.")
    name = check_new_dataset_name(workspace, args.name)
    dataset = build_from_trees(roots, name, args.direction, split_names(args.languages) or None, args.queries, args.seed,
                               args.strip_docstring, out_dir=workspace.datasets_dir)
    languages = ", ".join(dataset.languages) or "none"
    print(f"built {name}: {len(dataset.queries)} queries, {len(dataset.documents)} documents ({languages}) "
          f"in {workspace.datasets_dir / name}")
    if len(dataset.queries) < args.queries:
        print(f"note: asked for {args.queries} queries, but {', '.join(str(root) for root in roots)} hold only {len(dataset.documents)} documented functions "
              f"that qualify, so every one of them is a query ({len(dataset.queries)}).")


def cmd_grow_corpus(args, workspace: Workspace) -> None:
    from core.data.catalog import open_dataset
    from core.data.distractors import grow_corpus
    from core.progress import staged, tqdm_progress

    name = check_new_dataset_name(workspace, args.name)
    source = open_dataset(workspace, args.dataset)
    grown = grow_corpus(source, workspace.datasets_dir / name, args.documents, name, args.seed,
                        progress=staged(tqdm_progress(), {"distractors": "writing the corpus"}))
    print(f"built {name}: {source.name}'s {len(source.queries):,} queries and {grown.real_documents:,} documents, plus "
          f"{grown.synthetic_documents:,} synthetic distractors ({grown.corpus_bytes / 1e6:,.0f} MB of corpus.jsonl) "
          f"in {grown.folder}")


def register(sub) -> None:
    """Add this group's subcommands to the ``python -m core`` parser."""
    from core.data.source_benchmark import DEFAULT_SEED, DIRECTIONS

    sub.add_parser("datasets", help="list datasets").set_defaults(func=cmd_datasets)

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

    build = sub.add_parser("build-benchmark", help="build a code <-> docstring benchmark from one or more source trees")
    build.add_argument("--root", action="append",
                       help="source folder on this machine; repeat it to pool several trees into one benchmark")
    build.add_argument("--all-sources", action="store_true",
                       help="pool every installed Python package and Debian's Go, JavaScript, Ruby, PHP and Java "
                            "source trees found here (core/data/source_trees.py), with any --root given")
    build.add_argument("--name", required=True, help="name of the new dataset")
    build.add_argument("--direction", choices=DIRECTIONS, default="code2doc")
    build.add_argument("--languages", help="comma-separated, e.g. python,go (default: all supported)")
    build.add_argument("--queries", type=int, default=200)
    build.add_argument("--seed", type=int, default=DEFAULT_SEED)
    build.add_argument("--strip-docstring", action="store_true", help="code2doc: cut the docstring out of each query")
    build.set_defaults(func=cmd_build_benchmark)

    grow = sub.add_parser("grow-corpus", help="a copy of a dataset whose corpus is padded with synthetic distractors to N "
                                              "documents (queries and qrels unchanged): a benchmark at the size you care about")
    grow.add_argument("--dataset", required=True, help="the dataset to grow")
    grow.add_argument("--documents", type=int, required=True, help="documents in the new corpus, real ones included")
    grow.add_argument("--name", required=True, help="name of the new dataset (in the workspace)")
    grow.add_argument("--seed", type=int, default=20261122)
    grow.set_defaults(func=cmd_grow_corpus)
