"""Subcommands for training: the leakage audit and fine-tuning."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from core.cli.common import check_new_dataset_name, split_names
from core.data.datasets import Dataset
from core.errors import DatasetError
from core.progress import tqdm_progress
from core.training.finetune import (DEFAULT_MAX_EXAMPLES, DEFAULT_MINI_BATCH, DEFAULT_PACKAGES,
                                    MINING_METHODS, TrainingData, TrainingStep, add_dense_profile, check_model_name,
                                    check_prepared_target, finetune, open_prepared, read_finetune_info, remove_leakage,
                                    save_prepared)
from core.training.preparation import TrainingSources, build_from_sources, check_queries_fit_direction, mine_examples
from core.training.queries import QUERY_GENERATORS
from core.training.recipes import PLAIN_DEFAULTS, RECIPES, get_recipe, recipe_settings
from core.index.encoders import DEFAULT_MODEL
from core.workspace import Workspace, slug


def cmd_audit(args, workspace: Workspace) -> None:
    """``python -m core audit``: the judged-pair checks and the every-text audit, and optionally the train set without both."""
    import pandas as pd

    from core.data.catalog import open_dataset
    from core.data.datasets import write_dataset
    from core.training.leakage import audit_many, audit_texts, filter_leaked

    eval_names = split_names(args.eval)
    if not eval_names:
        raise DatasetError("Name at least one eval dataset with --eval NAME[,NAME].")
    if args.train in eval_names:
        raise DatasetError(f"--eval names the train set {args.train!r} itself: every text of it would leak. Name other datasets.")
    if args.write_filtered:
        check_new_dataset_name(workspace, args.write_filtered)
    train = open_dataset(workspace, args.train)
    evals = [open_dataset(workspace, name) for name in eval_names]
    reports = audit_many(train, evals, args.threshold)
    counts = pd.DataFrame({report.eval: report.counts() for report in reports}).T
    counts["leaked eval queries"] = [len(report.leaked_eval_ids()) for report in reports]
    counts["eval queries"] = [report.eval_pairs for report in reports]
    print(f"train {train.name}: {reports[0].train_pairs} pairs audited\n")
    print("judged-pair checks (eval queries found by each)")
    print(counts.to_string())
    text_reports = [] if args.pair_checks_only else audit_texts(train, evals, args.threshold)
    if text_reports:
        # Categories as rows: their names are long, and one column per eval set stays readable.
        text_counts = pd.DataFrame({report.eval: report.counts() for report in text_reports})
        print(f"\nevery text: {len(train.queries)} training queries and {len(train.documents)} corpus documents against "
              f"each eval set's queries and corpus (training texts found in each category)")
        print(text_counts.to_string())
    overlaps = pd.concat([report.to_frame() for report in reports], ignore_index=True)
    if len(overlaps):
        shown = overlaps[["eval", "kind", "train_query_id", "eval_query_id", "similarity"]].head(args.show)
        print(f"\nfirst {len(shown)} of {len(overlaps)} pair overlaps\n{shown.to_string(index=False)}")
    if args.write_filtered:
        filtered = filter_leaked(train, [*reports, *text_reports], args.write_filtered)
        meta = {"filtered_from": train.name, "audited_against": eval_names, "jaccard_threshold": args.threshold,
                "audits": ["judged pairs"] + ([] if args.pair_checks_only else ["every text"]),
                "removed_queries": len(train.queries) - len(filtered.queries),
                "removed_documents": len(train.documents) - len(filtered.documents)}
        folder = write_dataset(filtered, workspace.datasets_dir / filtered.name, meta)
        print(f"\nwrote {filtered.name}: {len(filtered.queries)} queries, {len(filtered.documents)} documents in {folder} "
              f"({meta['removed_queries']} queries and {meta['removed_documents']} documents removed)")


def eval_datasets(workspace: Workspace, requested: str | None, exclude: str) -> list[Dataset]:
    from core.data.catalog import list_datasets, open_dataset

    if requested:
        names = [n.strip() for n in requested.split(",") if n.strip()]
    else:  # every dataset already on disk; the built-in one is not built just for this
        names = [info.name for info in list_datasets(workspace) if info.origin != "builtin" and info.path.is_dir()]
    return [open_dataset(workspace, name) for name in names if name != exclude]


def resolved_settings(args, recipe_name: str | None = None) -> dict[str, object]:
    """Each recipe-level setting: the command line's when given, else the recipe's (``recipe_name``, by default
    ``--recipe``), else the plain default."""
    recipe_name = recipe_name or args.recipe
    settings = recipe_settings(get_recipe(recipe_name) if recipe_name else None)
    for key in PLAIN_DEFAULTS:
        given = getattr(args, "query_generator" if key == "queries" else key)  # options given win over the recipe
        if given is not None:
            settings[key] = given
    return settings


def sources_from_args(args, workspace: Workspace) -> TrainingSources:
    """The source trees a command line names: the recipe's, ``--from-tree`` folders, or ``--packages``."""
    if args.recipe and not args.from_tree:
        return TrainingSources.of_recipe(get_recipe(args.recipe), workspace)
    if args.from_tree:
        return TrainingSources.of_folders(args.from_tree)
    return TrainingSources.of_packages(p.strip() for p in args.packages.split(",") if p.strip())


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def training_data_from_args(args, workspace: Workspace, settings: dict[str, object],
                            progress=None) -> TrainingData:
    """The leakage-free training set a ``finetune`` command line asks for."""
    from core.data.catalog import open_dataset
    from core.training.queries import make_generator

    evals = eval_datasets(workspace, args.audit_against, args.train or "")
    if args.train:
        dataset, summaries = remove_leakage(open_dataset(workspace, args.train), evals)
        return TrainingData(dataset, (args.train,), "as-is", len(dataset.queries), summaries)
    generator = make_generator(str(settings["queries"]), endpoint=args.query_endpoint, model=args.query_model,
                               api_key=os.environ.get("CODEIR_QUERY_API_KEY", ""))
    return build_from_sources(sources_from_args(args, workspace), evals, workspace, name=f"{slug(args.output, 60)}-train",
                              direction=str(settings["direction"]), generator=generator, validate_k=args.validate_k,
                              seed=args.seed, report=_to_stderr, progress=progress)


def prepared_examples(args, workspace: Workspace, settings: dict[str, object], progress=None):
    """Build, audit and mine the training examples a command line asks for, printing what each step found."""
    training = training_data_from_args(args, workspace, settings, progress)
    if not training.leakage:
        print("warning: no eval dataset to audit against; name them with --audit-against", file=sys.stderr)
    return mine_examples(training, workspace, settings["max_examples"], settings["negatives"], args.mining, args.skip_top,
                         seed=args.seed, model=args.base_model, report=print, progress=progress)


def cmd_finetune(args, workspace: Workspace) -> None:
    """``python -m core finetune``: build or open the pairs, audit, mine, train, save, report."""

    started = time.perf_counter()
    if args.examples and args.save_examples:
        raise DatasetError("--examples trains on prepared examples and --save-examples writes them: give one of the two.")
    if args.save_examples:
        check_prepared_target(Path(args.save_examples))  # nothing is trained, so the model name is not checked
    else:
        check_model_name(workspace, args.output, args.overwrite)
    if args.save_examples and args.base_weight is not None:
        print("note: --base-weight applies when the examples are trained; give it to `finetune --examples` "
              "(the file keeps the recipe, whose base weight applies otherwise)", file=sys.stderr)
    progress = None if args.quiet else tqdm_progress()
    if args.examples:
        examples, data = open_prepared(Path(args.examples))
        # The recipe the examples were prepared with sets the training settings unless --recipe names another;
        # every example of the file is trained on unless --max-examples says fewer.
        recipe_name = args.recipe or (data.get("recipe") if data.get("recipe") in RECIPES else None)
        settings = resolved_settings(args, recipe_name) | {"max_examples": args.max_examples}
        print(f"read {len(examples)} prepared examples ({sum(len(e.negatives) for e in examples)} mined negatives) from {args.examples}"
              + (f"; training with recipe {recipe_name}'s settings" if recipe_name else ""))
    else:
        recipe_name = args.recipe
        settings = resolved_settings(args)
        if not args.train:
            check_queries_fit_direction(str(settings["direction"]), str(settings["queries"]))
        examples, data = prepared_examples(args, workspace, settings, progress)
    if recipe_name:  # a file's claims about another recipe do not carry over to this one
        data = {k: v for k, v in data.items() if k not in ("recipe", "recipe_chosen_on")} | get_recipe(recipe_name).record()
    if args.save_examples:
        path = save_prepared(Path(args.save_examples), examples, data)
        print(f"wrote {len(examples)} examples to {path}; train them here or elsewhere with "
              f"`finetune --examples {path} --output {args.output}`" + (f" (recipe {recipe_name}'s settings come with them)" if recipe_name else ""))
        return

    def report(step: TrainingStep) -> None:  # the tqdm bar shows steps, loss and ETA; this says where a resumed run began
        if step.resumed_from and step.step == step.resumed_from + 1:
            print(f"resumed from the checkpoint at step {step.resumed_from} of {step.total_steps}", file=sys.stderr)

    folder = finetune(examples, workspace, args.base_model, args.output, epochs=settings["epochs"], batch_size=settings["batch_size"],
                      learning_rate=settings["learning_rate"], max_examples=settings["max_examples"],
                      max_seq_length=settings["max_seq_length"], seed=args.seed, symmetric=not args.asymmetric,
                      progress=not args.quiet, threads=args.threads, data=data, overwrite=args.overwrite,
                      mini_batch_size=settings["mini_batch_size"], checkpoint_every=settings["checkpoint_every"],
                      resume=not args.restart, on_step=report, base_weight=settings["base_weight"],
                      report=_to_stderr)
    info = read_finetune_info(folder)
    print(f"trained {info['examples_trained']} of {info['examples']} examples in {info['steps']} steps on {info['machine']['device']}, "
          f"loss {info['loss_first']:.3f} -> {info['loss_last']:.3f}; peak memory {info['peak_rss_mb']:.0f} MB")
    print(f"saved {args.output} to {folder} in {time.perf_counter() - started:.0f}s")
    if args.add_profile:
        print(f"added dense profile {add_dense_profile(workspace, args.output)!r} to {workspace.profiles_file}")


def register(sub) -> None:
    """Add this group's subcommands to the ``python -m core`` parser."""
    from core.training.leakage import DEFAULT_JACCARD

    audit = sub.add_parser("audit", help="find the eval pairs and texts a training set already holds")
    audit.add_argument("--train", required=True)
    audit.add_argument("--eval", required=True, help="comma-separated eval dataset names")
    audit.add_argument("--threshold", type=float, default=DEFAULT_JACCARD, help="Jaccard similarity of near duplicates")
    audit.add_argument("--show", type=int, default=20, help="overlaps to print")
    audit.add_argument("--write-filtered", metavar="NAME",
                       help="write the train set as NAME without what the audits found (as fine-tuning filters it)")
    audit.add_argument("--pair-checks-only", action="store_true",
                       help="run only the judged-pair checks (exact code, docstring, function name, near-duplicate code), "
                            "not the every-text audit, and filter by them alone")
    audit.set_defaults(func=cmd_audit)

    parser = sub.add_parser("finetune", help="fine-tune a bi-encoder on code/docstring pairs with mined hard negatives")
    source = parser.add_mutually_exclusive_group()  # none given: the installed DEFAULT_PACKAGES
    source.add_argument("--train", metavar="NAME", help="a dataset of the catalog whose queries and positives are the pairs")
    source.add_argument("--from-tree", metavar="DIR", action="append", help="a source tree to build pairs from (repeatable)")
    source.add_argument("--examples", metavar="FILE", help="train on examples a `--save-examples` run prepared (here or on another machine)")
    source.add_argument("--packages", metavar="A,B", default=",".join(DEFAULT_PACKAGES),
                        help="installed packages to build pairs from (default: %(default)s)")
    parser.add_argument("--output", required=True, metavar="NAME", help="name of the fine-tuned model (then usable as a dense model)")
    parser.add_argument("--base-model", default=DEFAULT_MODEL)
    parser.add_argument("--direction", choices=("doc2code", "code2doc"),
                        help="pairs built from trees: query side (default doc2code, or the recipe's)")
    parser.add_argument("--audit-against", metavar="A,B", help="eval datasets to remove leaked pairs for (default: every dataset on disk)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), help="a named recipe: its sources and settings (options below override the settings)")
    # dest is not "queries": that name is a count in other commands (build-benchmark), checked as a number by main
    parser.add_argument("--queries", dest="query_generator", choices=QUERY_GENERATORS, help="training queries: the docstring, template search queries, "
                        "or an OpenAI-compatible endpoint (key in $CODEIR_QUERY_API_KEY); default: docstring, or the recipe's")
    parser.add_argument("--query-endpoint", metavar="URL", help="API root of the endpoint, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--query-model", metavar="NAME", help="model name to ask the endpoint for")
    parser.add_argument("--validate-k", type=int, default=10, help="keep a generated query when BM25 ranks its function in the top k (0: keep all)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-examples", type=int, help=f"training examples (default {DEFAULT_MAX_EXAMPLES}, or the recipe's)")
    parser.add_argument("--negatives", type=int, help="hard negatives per example (default 3)")
    parser.add_argument("--mining", choices=MINING_METHODS, default="bm25")
    parser.add_argument("--skip-top", type=int, default=0, help="pass over this many top-ranked non-answers when mining")
    parser.add_argument("--batch-size", type=int, help="default 32, or the recipe's")
    parser.add_argument("--mini-batch-size", type=int, help=f"rows embedded at once inside a batch; bounds memory (default {DEFAULT_MINI_BATCH})")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--max-seq-length", type=int)
    parser.add_argument("--checkpoint-every", type=int, metavar="STEPS", help="save a checkpoint every STEPS steps; a rerun resumes from it")
    parser.add_argument("--restart", action="store_true", help="ignore a checkpoint left by an interrupted run")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, help="CPU threads for training (default: all cores; 1 is often faster on a busy machine)")
    parser.add_argument("--base-weight", type=float, metavar="W", help="save the trained weights averaged with the base model's, "
                        "W of the base (WiSE-FT: keeps what the base did well outside the training data; default 0, or the recipe's)")
    parser.add_argument("--asymmetric", action="store_true", help="train the query -> answer direction only")
    parser.add_argument("--add-profile", action="store_true", help="add a dense profile for the new model to profiles.toml")
    parser.add_argument("--overwrite", action="store_true", help="replace a fine-tuned model of the same name")
    parser.add_argument("--save-examples", metavar="FILE", help="build, audit and mine the examples, write them to FILE and stop "
                        "before training (train them with --examples FILE, on a GPU machine, say)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=cmd_finetune)
