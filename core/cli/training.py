"""Subcommands for training: the leakage audit and fine-tuning."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from core.cli.common import check_new_dataset_name, split_names
from core.data.datasets import Dataset
from core.errors import DatasetError
from core.progress import tqdm_progress
from core.training.finetune import (DEFAULT_MAX_EXAMPLES, DEFAULT_MAX_SEQ_LENGTH, DEFAULT_PACKAGES, MINING_METHODS, TrainingData,
                                    add_dense_profile, build_training_set, check_model_name, finetune, package_roots,
                                    remove_leakage, sample_and_mine)
from core.index.encoders import DEFAULT_MODEL
from core.workspace import Workspace, slug


def cmd_audit(args, workspace: Workspace) -> None:
    import pandas as pd

    from core.data.catalog import open_dataset
    from core.data.datasets import write_dataset
    from core.training.leakage import audit_many, filter_train

    eval_names = split_names(args.eval)
    if not eval_names:
        raise DatasetError("Name at least one eval dataset with --eval NAME[,NAME].")
    if args.write_filtered:
        check_new_dataset_name(workspace, args.write_filtered)
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


def eval_datasets(workspace: Workspace, requested: str | None, exclude: str) -> list[Dataset]:
    from core.data.catalog import list_datasets, open_dataset

    if requested:
        names = [n.strip() for n in requested.split(",") if n.strip()]
    else:  # every dataset already on disk; the built-in one is not built just for this
        names = [info.name for info in list_datasets(workspace) if info.origin != "builtin" and info.path.is_dir()]
    return [open_dataset(workspace, name) for name in names if name != exclude]


def training_data_from_args(args, workspace: Workspace) -> TrainingData:
    """The leakage-free training set a ``finetune`` command line asks for."""
    from core.data.catalog import open_dataset

    evals = eval_datasets(workspace, args.audit_against, args.train or "")
    if args.train:
        dataset, summaries = remove_leakage(open_dataset(workspace, args.train), evals)
        return TrainingData(dataset, (args.train,), "as-is", len(dataset.queries), summaries)
    roots = [Path(p) for p in args.from_tree] if args.from_tree else package_roots(p.strip() for p in args.packages.split(",") if p.strip())
    return build_training_set(roots, evals, name=f"{slug(args.output, 60)}-train", direction=args.direction, seed=args.seed)


def cmd_finetune(args, workspace: Workspace) -> None:
    """``python -m core finetune``: build or open the pairs, audit, mine, train, save, report."""

    started = time.perf_counter()
    check_model_name(workspace, args.output, args.overwrite)
    training = training_data_from_args(args, workspace)
    if not training.leakage:
        print("warning: no eval dataset to audit against; name them with --audit-against", file=sys.stderr)
    for summary in training.leakage:
        found = ", ".join(f"{kind} {count}" for kind, count in summary.counts.items())
        print(f"leakage vs {summary.eval}: {found}; dropped {summary.dropped_train_queries} training queries")
    print(f"training set {training.dataset.name}: {len(training.dataset.judged_queries)} queries, "
          f"{len(training.dataset.documents)} documents")
    examples, data = sample_and_mine(training, workspace, args.max_examples, args.negatives, args.mining, args.skip_top,
                                     seed=args.seed, model=args.base_model, progress=None if args.quiet else tqdm_progress())
    print(f"mined {data['mining']['mined']} hard negatives for {len(examples)} examples ({args.mining})")
    folder = finetune(examples, workspace, args.base_model, args.output, epochs=args.epochs, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, max_examples=args.max_examples, max_seq_length=args.max_seq_length,
                      seed=args.seed, symmetric=not args.asymmetric, progress=not args.quiet, threads=args.threads,
                      data=data, overwrite=args.overwrite)
    print(f"saved {args.output} to {folder} in {time.perf_counter() - started:.0f}s")
    if args.add_profile:
        print(f"added dense profile {add_dense_profile(workspace, args.output)!r} to {workspace.profiles_file}")


def register(sub) -> None:
    """Add this group's subcommands to the ``python -m core`` parser."""
    from core.training.leakage import DEFAULT_JACCARD

    audit = sub.add_parser("audit", help="find eval pairs a training set already holds")
    audit.add_argument("--train", required=True)
    audit.add_argument("--eval", required=True, help="comma-separated eval dataset names")
    audit.add_argument("--threshold", type=float, default=DEFAULT_JACCARD, help="Jaccard similarity of near duplicates")
    audit.add_argument("--show", type=int, default=20, help="overlaps to print")
    audit.add_argument("--write-filtered", metavar="NAME", help="write the train set without leaked queries as NAME")
    audit.set_defaults(func=cmd_audit)

    parser = sub.add_parser("finetune", help="fine-tune a bi-encoder on code/docstring pairs with mined hard negatives")
    source = parser.add_mutually_exclusive_group()  # none given: the installed DEFAULT_PACKAGES
    source.add_argument("--train", metavar="NAME", help="a dataset of the catalog whose queries and positives are the pairs")
    source.add_argument("--from-tree", metavar="DIR", action="append", help="a source tree to build pairs from (repeatable)")
    source.add_argument("--packages", metavar="A,B", default=",".join(DEFAULT_PACKAGES),
                        help="installed packages to build pairs from (default: %(default)s)")
    parser.add_argument("--output", required=True, metavar="NAME", help="name of the fine-tuned model (then usable as a dense model)")
    parser.add_argument("--base-model", default=DEFAULT_MODEL)
    parser.add_argument("--direction", choices=("doc2code", "code2doc"), default="doc2code", help="pairs built from trees: query side")
    parser.add_argument("--audit-against", metavar="A,B", help="eval datasets to remove leaked pairs for (default: every dataset on disk)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES)
    parser.add_argument("--negatives", type=int, default=3, help="hard negatives per example")
    parser.add_argument("--mining", choices=MINING_METHODS, default="bm25")
    parser.add_argument("--skip-top", type=int, default=0, help="pass over this many top-ranked non-answers when mining")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--max-seq-length", type=int, default=DEFAULT_MAX_SEQ_LENGTH)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, help="CPU threads for training (default: all cores; 1 is often faster on a busy machine)")
    parser.add_argument("--asymmetric", action="store_true", help="train the query -> answer direction only")
    parser.add_argument("--add-profile", action="store_true", help="add a dense profile for the new model to profiles.toml")
    parser.add_argument("--overwrite", action="store_true", help="replace a fine-tuned model of the same name")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=cmd_finetune)
