"""Fine-tune a bi-encoder on code <-> docstring pairs with mined hard negatives, on a CPU.

The recipe, in three steps a notebook can run one by one:

1. ``build_training_set``: documented functions of source trees (installed packages, say) become a
   BEIR dataset, audited with ``core.training.leakage`` against the eval sets and stripped of every pair that
   leaks into them;
2. ``mine_hard_negatives``: each training query is searched in its own corpus with our Engine (BM25,
   dense or their RRF); the top non-answers that are not near-copies of the answer become its hard
   negatives (consistency filtering as in CoRNStack);
3. ``finetune``: MultipleNegativesRankingLoss (in-batch negatives plus the hard negatives) in a plain
   PyTorch loop, saved atomically to ``<workspace>/models/<name>`` with ``codeir-finetune.json``.

The saved model is then usable everywhere by its name, as a dense profile's ``model``.
The Trainer API of sentence-transformers needs the ``datasets`` and ``accelerate`` packages, which
the workbench does not install; the loop here computes the same loss with the library's loss module.
"""
from __future__ import annotations

import importlib.util
import gzip
import json
import lzma
import math
import os
import platform
import random
import shutil
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from core.data.datasets import Dataset
from core.index.encoders import DEFAULT_MODEL, load_encoder, resolve_model, torch_threads
from core.errors import DatasetError, ModelUnavailableError, WorkbenchError
from core.progress import Progress, StageCounter
from core.training.leakage import audit_many, audit_texts, filter_leaked, normalise_docstring
from core.retrieval.profiles import Bm25Profile, DenseProfile, HybridProfile, Profile
from core.data.source_benchmark import DEFAULT_EXCLUDED_DIRS, DEFAULT_SEED, CodeFunction, Direction, build_benchmark, extract_functions
from core.workspace import Workspace, replace_folder, slug

if TYPE_CHECKING:
    from core.training.queries import QueryGenerator

MiningMethod = Literal["bm25", "dense", "both"]
MINING_METHODS: tuple[str, ...] = ("bm25", "dense", "both")
INFO_FILE = "codeir-finetune.json"
EXAMPLES_FILE = "codeir-train-examples.jsonl"  # the exact rows trained on, for audits after the fact
DEFAULT_OUTPUT = "minilm-code-ft"
DEFAULT_TRAIN_NAME = "finetune-train"
# Sized for two CPU cores: about four minutes for the whole command on quiet cores, 9-25 minutes on shared ones (docs/finetuning.md).
DEFAULT_MAX_EXAMPLES = 256
DEFAULT_MAX_SEQ_LENGTH = 128
# Rows embedded at once inside a batch (GradCache): bounds the activations held, not the loss.
DEFAULT_MINI_BATCH = 8
MAX_JACCARD = 0.7
MAX_COSINE = 0.95
# Installed packages whose documented functions make the default training set: broad, well documented,
# and none of them the standard library (the built-in benchmark evaluates on it).
DEFAULT_PACKAGES = ("sklearn", "numpy", "networkx", "scipy", "pandas", "matplotlib", "jinja2", "click", "werkzeug")
# Test suites hold helpers and fixtures, not the documented API a user searches for.
TRAINING_EXCLUDED_DIRS = DEFAULT_EXCLUDED_DIRS | {"test", "tests", "testing", "_vendor", "vendored", "externals"}
_RESERVED_NAMES = frozenset({"minilm", "mpnet"})  # aliases win over workspace models in core.index.encoders


@dataclass(frozen=True)
class TrainingExample:
    """One training row: a query, its one right answer, and texts that look right but are not."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeakageSummary:
    """What the audits against one eval set found, and how many training queries and documents it cost.

    ``counts`` holds the judged-pair checks (eval queries found by each); ``text_counts`` the
    all-text checks (training texts found in each category, e.g. ``train query = eval document (exact)``).
    """

    eval: str
    eval_pairs: int
    counts: Mapping[str, int]
    dropped_train_queries: int
    text_counts: Mapping[str, int] = field(default_factory=dict)
    dropped_train_documents: int = 0


@dataclass(frozen=True)
class TrainingData:
    """A training benchmark cleared of eval leakage, with where it came from and what the audit dropped."""

    dataset: Dataset
    sources: tuple[str, ...]
    direction: str
    functions: int
    leakage: tuple[LeakageSummary, ...]
    languages: Mapping[str, int] = field(default_factory=dict)  # functions extracted per language
    queries: Mapping[str, object] = field(default_factory=dict)  # how the queries were made (core.training.queries)

    def describe(self) -> dict[str, object]:
        """What ``codeir-finetune.json`` records about the data."""
        return {"dataset": self.dataset.name, "sources": list(self.sources), "direction": self.direction,
                "functions": self.functions, "languages": dict(self.languages), "queries": dict(self.queries),
                "train_queries": len(self.dataset.judged_queries),
                "corpus_documents": len(self.dataset.documents),
                "leakage": [asdict(summary) | {"counts": dict(summary.counts), "text_counts": dict(summary.text_counts)}
                            for summary in self.leakage]}


def package_roots(names: Iterable[str]) -> list[Path]:
    """The source folders of installed packages, found without importing them."""
    roots = []
    for name in names:
        spec = importlib.util.find_spec(name)
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise DatasetError(f"No installed package {name!r} with a source folder: install it, or give a folder with --from-tree.")
        roots.append(Path(locations[0]))
    return roots


def remove_leakage(train: Dataset, evals: Sequence[Dataset]) -> tuple[Dataset, tuple[LeakageSummary, ...]]:
    """The train set without anything an eval set holds, judged or not.

    Two audits: the judged-pair checks of ``audit_many`` (code, docstring, function name, near-duplicate
    code), and ``audit_texts``, every training query and corpus document against every eval query
    and corpus document; ``filter_leaked`` drops what either finds (a leaking query with its judgments, a
    leaking document from the corpus, so it is neither a positive nor a mined negative, and a query left
    without its positive).
    """
    evals = [e for e in evals if e.name != train.name]
    if not evals:
        return train, ()
    pair_reports = audit_many(train, evals)
    text_reports = audit_texts(train, evals)
    filtered = filter_leaked(train, [*pair_reports, *text_reports], name=train.name)
    summaries = []
    for pair_report, text_report in zip(pair_reports, text_reports):
        queries = pair_report.leaked_train_ids() | text_report.leaked_train_ids("query")
        summaries.append(LeakageSummary(pair_report.eval, pair_report.eval_pairs, pair_report.counts(), len(queries),
                                        text_report.counts(), len(text_report.leaked_train_ids("document"))))
    return filtered, tuple(summaries)


def build_training_set(roots: Sequence[Path], evals: Sequence[Dataset] = (), name: str = DEFAULT_TRAIN_NAME,
                       direction: Direction = "doc2code", seed: int = DEFAULT_SEED,
                       exclude_dirs: Collection[str] = TRAINING_EXCLUDED_DIRS, *, languages: Sequence[str] = ("python",),
                       queries: "QueryGenerator | None" = None, workspace: Workspace | None = None, validate_k: int = 10,
                       progress: Progress | None = None) -> TrainingData:
    """Every documented function under ``roots`` as a training pair, minus those leaking into ``evals``.

    ``doc2code`` pairs a docstring (query) with its function without the docstring (answer), the
    shape of CoSQA; the corpus holds all functions, so the other ones are the negatives to mine.
    ``code2doc`` pairs the function, its docstring cut out, with the docstring: left in, each query
    would hold its answer verbatim and the model would learn to copy text (measured: the -nodoc set
    did not improve and cosqa fell by 0.18 nDCG@10, docs/finetuning.md). With
    a query generator (``core.training.queries``; doc2code only, needs ``workspace``) each docstring is
    replaced by a generated search-style query that the base retriever validates in its top
    ``validate_k``. The audit runs last, on the queries actually trained on and on every function,
    as a query and as a corpus document: no eval text stays, not even as a negative. Sample queries
    for training afterwards (``Dataset.subset``), never before the audit. ``progress`` takes a
    ``core.progress.Step`` (``tqdm_progress``) or the older ``(stage, fraction)``.
    """
    functions: list[CodeFunction] = []
    extracting = StageCounter(progress, "extracting functions", len(roots), "source trees")
    for position, root in enumerate(roots):
        found = extract_functions(Path(root), list(languages), exclude_dirs=exclude_dirs)
        # Paths are relative to their root: prefixing the root's name keeps ids unique across trees.
        functions += [replace(f, path=f"{Path(root).name}/{f.path}") for f in found]
        extracting(position + 1)
    if not functions:
        raise DatasetError("No documented functions under " + ", ".join(map(str, roots)) + ": pick source trees with docstrings.")
    dataset = build_benchmark(functions, name, direction, n_queries=len(functions), seed=seed,
                              strip_docstring_from_query=True, source=", ".join(map(str, roots)))
    generated = None
    if queries is not None:
        from core.training.queries import generate_queries

        if direction != "doc2code" or workspace is None:
            raise WorkbenchError("Generated queries need the doc2code direction and a workspace to validate them in.")
        generated = generate_queries(dataset, queries, workspace, k=validate_k, progress=progress)
        dataset = generated.dataset
    auditing = StageCounter(progress, "auditing for leakage", len(evals), "eval sets")
    auditing(0)
    dataset, summaries = remove_leakage(dataset, evals)
    auditing(len(evals))
    languages_found = dict(sorted(Counter(f.language for f in functions).items()))
    return TrainingData(dataset, tuple(str(r) for r in roots), direction, len(functions), summaries,
                        languages_found, generated.describe() if generated else {"generator": "docstring"})


# ---- mining ------------------------------------------------------------------------------------------

def _words(text: str) -> set[str]:
    return set(normalise_docstring(text).split())


def is_near_duplicate(candidate: str, positive: str, max_jaccard: float = MAX_JACCARD) -> bool:
    """True when two texts are the same once normalised, or share ``max_jaccard`` of their word tokens."""
    if normalise_docstring(candidate) == normalise_docstring(positive):
        return True
    a, b = _words(candidate), _words(positive)
    return bool(a | b) and len(a & b) / len(a | b) >= max_jaccard


def _mining_profiles(model: str, depth: int) -> dict[str, Profile]:
    return {"bm25": Bm25Profile("mine-bm25", analyzer="code"),
            "dense": DenseProfile("mine-dense", model=model),
            "both": HybridProfile("mine-both", members=("mine-bm25", "mine-dense"), method="rrf", candidate_depth=depth)}


def mine_hard_negatives(train: Dataset, workspace: Workspace, n_negatives: int = 3, method: MiningMethod = "bm25",
                        skip_top: int = 0, *, model: str = DEFAULT_MODEL, depth: int | None = None,
                        max_jaccard: float = MAX_JACCARD, max_cosine: float = MAX_COSINE,
                        progress: Progress | None = None) -> list[TrainingExample]:
    """For each judged query, its first positive and up to ``n_negatives`` hard negatives from the same corpus.

    Candidates are the query's ranking under BM25 (code analyzer), dense cosine (``model``) or their
    RRF; the query's judged positives and the first ``skip_top`` other candidates (likely unlabelled
    answers) are passed over. A candidate is dropped as a false negative when its text equals the
    positive once normalised, shares ``max_jaccard`` of its words with it, or, when dense vectors
    were computed (``dense``, ``both``), has a cosine to the positive of ``max_cosine`` or more.
    A query may end with fewer negatives than asked; ``finetune`` fills the gap with random ones.
    """
    from core.retrieval.engine import Engine

    if method not in MINING_METHODS:
        raise WorkbenchError(f"Unknown mining method {method!r}: choose one of {', '.join(MINING_METHODS)}.")
    if n_negatives < 0 or skip_top < 0:
        raise WorkbenchError("n_negatives and skip_top must be 0 or more.")
    if n_negatives == 0:
        return [TrainingExample(q.text, train.document(p).full_text) for q, p in _judged_positives(train)]
    depth = depth or skip_top + 4 * n_negatives + 20
    profiles = _mining_profiles(model, depth)
    engine = Engine(workspace, train, {p.name: p for p in profiles.values()}, progress=progress)
    run = engine.run(profiles[method].name, depth=depth)
    vectors = engine.vectors(model).vectors if method in ("dense", "both") else None
    examples = []
    for query, positive_id in _judged_positives(train):
        positive_row = train.doc_index[positive_id]
        positive = train.documents[positive_row].full_text
        answers = set(train.qrels.positives(query.id))
        ranked = [doc_id for doc_id in run.ranking(query.id).doc_ids if doc_id not in answers][skip_top:]
        negatives: list[str] = []
        for doc_id in ranked:
            row = train.doc_index[doc_id]
            text = train.documents[row].full_text
            if text in negatives or is_near_duplicate(text, positive, max_jaccard):
                continue
            if vectors is not None and float(vectors[row] @ vectors[positive_row]) >= max_cosine:
                continue
            negatives.append(text)
            if len(negatives) == n_negatives:
                break
        examples.append(TrainingExample(query.text, positive, tuple(negatives)))
    return examples


def _judged_positives(dataset: Dataset):
    """(query, first positive id) for each judged query whose positive is in the corpus."""
    for query in dataset.judged_queries:
        positive = next((d for d in dataset.qrels.positives(query.id) if d in dataset.doc_index), None)
        if positive is not None:
            yield query, positive


def sample_and_mine(training: TrainingData, workspace: Workspace, max_examples: int | None, n_negatives: int = 3,
                    method: MiningMethod = "bm25", skip_top: int = 0, *, seed: int = 42, model: str = DEFAULT_MODEL,
                    progress: Progress | None = None) -> tuple[list[TrainingExample], dict[str, object]]:
    """Up to ``max_examples`` training queries (seeded sample) with mined hard negatives, and the record of the data.

    The record (sources, leakage audit, mining settings and counts) is what ``finetune`` stores in
    ``codeir-finetune.json``; the command line and the page both go through here.
    """
    queries = [q.id for q in training.dataset.judged_queries]
    to_mine = training.dataset
    if max_examples and len(queries) > max_examples:
        to_mine = training.dataset.subset(random.Random(seed).sample(queries, max_examples))
    examples = mine_hard_negatives(to_mine, workspace, n_negatives, method, skip_top, model=model, progress=progress)
    mined = sum(len(e.negatives) for e in examples)
    data = training.describe() | {"mining": {"method": method, "negatives": n_negatives, "skip_top": skip_top,
                                             "max_jaccard": MAX_JACCARD, "max_cosine": MAX_COSINE, "mined": mined}}
    return examples, data


PREPARED_FORMAT = "codeir-prepared-examples/1"
# What reading a prepared file raises when it is cut short, damaged, or not compressed as its name says.
_UNREADABLE = (OSError, EOFError, lzma.LZMAError, zlib.error)


def save_prepared(path: Path, examples: Sequence[TrainingExample], data: Mapping[str, object]) -> Path:
    """Write mined examples and their record (sources, leakage audit, mining) to one JSON-lines file.

    Preparing needs the source trees, BM25 and the eval sets; training needs only this file and the base
    model. So the pairs can be made where the sources are installed and trained on another machine (a GPU
    server), with ``finetune --examples FILE``, and the saved model records the same data either way.
    A name ending in ``.gz`` is gzip-compressed, ``.xz`` xz-compressed: 23 MB and 6.6 MB for code-v1's 35,147
    examples, 118 MB plain (negatives repeat other examples' code; xz's larger window finds the repeats).
    The file is written to a temporary name and renamed: a killed write leaves no half file behind.
    """
    if not examples:
        raise WorkbenchError("No training examples to save.")
    path = Path(path)
    check_prepared_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")  # the suffix chooses the compression
    try:
        with _open_text(tmp, "w") as out:
            # ASCII JSON: a lone surrogate in mined code is escaped and read back as it was, never replaced
            out.write(json.dumps({"format": PREPARED_FORMAT, "examples": len(examples), "data": dict(data)}) + "\n")
            for example in examples:
                out.write(json.dumps(asdict(example)) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # written and renamed, or failed: no temporary file stays behind
    return path


def check_prepared_target(path: Path) -> None:
    """Refuse a destination that is a folder before minutes of preparation, not after."""
    if Path(path).is_dir():
        raise DatasetError(f"{path} is a folder: give a file name for the prepared examples, e.g. {Path(path) / 'examples.jsonl.xz'}.")


def _open_text(path: Path, mode: str):
    """Plain, gzip (``.gz``) or xz (``.xz``) text, chosen by the file's suffix."""
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8", errors="replace")
    if path.suffix == ".xz":  # preset 9: a 64 MB window, wide enough to see the same code mined for other examples
        preset = 9 if mode == "w" else None
        return lzma.open(path, mode + "t", preset=preset, encoding="utf-8", errors="replace")
    return path.open(mode, encoding="utf-8", errors="replace")


def load_prepared(path: Path) -> tuple[list[TrainingExample], dict[str, object]]:
    """The examples and record ``save_prepared`` wrote; a clear error for a missing, foreign, malformed or cut file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"No prepared examples at {path}: write them with `finetune --save-examples {path.name}`.")
    examples: list[TrainingExample] = []
    try:
        with _open_text(path, "r") as lines:
            try:
                header = json.loads(next(lines, "") or "null")
            except (json.JSONDecodeError, *_UNREADABLE):  # at the first line: not a prepared file at all
                header = None
            if not isinstance(header, dict) or header.get("format") != PREPARED_FORMAT:
                raise DatasetError(f"{path} is not a file of prepared examples (its first line should name {PREPARED_FORMAT}).")
            for number, line in enumerate(lines, start=2):
                try:
                    row = json.loads(line)
                    example = TrainingExample(str(row["query"]), str(row["positive"]), tuple(str(n) for n in row["negatives"]))
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise DatasetError(f"{path}, line {number}: not a training example ({exc.__class__.__name__}).") from None
                examples.append(example)
    except _UNREADABLE as exc:
        raise DatasetError(f"{path} could not be read to its end ({exc}); prepare it again.") from None
    if len(examples) != header.get("examples") or not examples:
        raise DatasetError(f"{path} holds {len(examples)} examples where its first line says {header.get('examples')}: "
                           f"the file was cut short or edited; prepare it again.")
    return examples, dict(header.get("data") or {})


def open_prepared(path: Path) -> tuple[list[TrainingExample], dict[str, object]]:
    """``load_prepared``'s examples, and the record a model trained on them keeps: the file's, plus which file it was."""
    examples, data = load_prepared(path)
    return examples, data | {"prepared_examples": {"file": Path(path).name, "examples": len(examples)}}


def leakage_summaries(data: Mapping[str, object]) -> tuple[LeakageSummary, ...]:
    """The leakage audit a training record (``TrainingData.describe``, a prepared file's) holds, as summaries again."""
    return tuple(LeakageSummary(**entry) for entry in data.get("leakage", ()))  # type: ignore[arg-type]


# ---- training ----------------------------------------------------------------------------------------

# How batches and their random negatives are drawn from a seed; a checkpoint of another version is not resumed.
SCHEDULE_VERSION = 2


def _filled(batch: Sequence[TrainingExample], n_negatives: int, positives: Sequence[str],
            rng: random.Random) -> list[TrainingExample]:
    """The batch's rows with ``n_negatives`` negatives each, topped up with positives of examples *outside* the batch.

    ``positives`` are the positives of every example, in a fixed order (so a seed repeats the draws).
    A random negative taken from inside the batch would be another row's positive, scored as a negative
    against itself. When there is nothing outside to draw from (every example fits in one batch), the rows
    keep as many negatives as the shortest row has: a batch's columns must be equally long. Draws are
    rejection-sampled, not drawn from a list of everything outside: that list cost a sort of every positive
    per batch (0.1 s at 35,000 examples, minutes over a recipe's 1,600 batches).
    """
    inside = {e.positive for e in batch} | {e.query for e in batch}
    if len(set(positives).difference(inside)) < n_negatives:  # distinct texts: the draws below end only if there are enough
        shortest = min(len(e.negatives) for e in batch)
        return [replace(e, negatives=e.negatives[:shortest]) for e in batch]
    out = []
    for example in batch:
        negatives = list(example.negatives[:n_negatives])
        while len(negatives) < n_negatives:  # ends: at least n_negatives distinct positives lie outside the batch
            candidate = positives[rng.randrange(len(positives))]
            if candidate not in inside and candidate not in negatives:
                negatives.append(candidate)
        out.append(replace(example, negatives=tuple(negatives)))
    return out


def example_batches(examples: Sequence[TrainingExample], batch_size: int) -> list[list[TrainingExample]]:
    """Full batches in which no row's positive or query appears anywhere else, in the order given.

    A row's positive repeated as another row's negative would be scored as a negative against
    itself (a false negative the loss cannot fix), as ``NoDuplicatesBatchSampler`` avoids in
    sentence-transformers; the same negative mined for two rows is harmless and allowed. An example
    that collides waits for a later batch; what cannot fill a last full batch is left out, since a
    smaller batch has fewer in-batch negatives.
    """
    pending = list(examples)
    batches = []
    while len(pending) >= batch_size:
        batch, positives, negatives, queries, waiting = [], set(), set(), set(), []
        for index, example in enumerate(pending):
            if len(batch) == batch_size:  # full: the rest waits as it is, unread (a pass over all of it per batch was slow)
                waiting += pending[index:]
                break
            clash = (example.positive in positives or example.positive in negatives or example.query in queries
                     or any(text in positives or text == example.positive for text in example.negatives))
            if not clash:
                batch.append(example)
                positives.add(example.positive)
                negatives.update(example.negatives)
                queries.add(example.query)
            else:
                waiting.append(example)
        if len(batch) < batch_size:
            break
        batches.append(batch)
        pending = waiting
    return batches


def check_model_name(workspace: Workspace, output_name: str, overwrite: bool = False) -> Path:
    """Where a model of that name would be saved; refuses alias names and, unless ``overwrite``, existing models.

    Callers check before mining and auditing, so a bad name costs nothing.
    """
    if not output_name.strip() or output_name.strip().lower() in _RESERVED_NAMES:
        raise WorkbenchError(f"{output_name!r} cannot name a fine-tuned model: pick another name, such as {DEFAULT_OUTPUT!r}.")
    target = workspace.models_dir / slug(output_name)
    if target.exists() and not overwrite:
        raise WorkbenchError(f"A model named {output_name!r} already exists at {target}: choose another name or overwrite it.")
    return target


def _check_training_args(examples: Sequence[TrainingExample], epochs: int, batch_size: int, learning_rate: float,
                         max_seq_length: int, threads: int | None) -> None:
    if len(examples) < 2:
        raise WorkbenchError(f"Fine-tuning needs at least two training examples, got {len(examples)}.")
    if epochs < 1 or batch_size < 2 or learning_rate <= 0 or max_seq_length < 8 or (threads is not None and threads < 1):
        raise WorkbenchError("Use epochs >= 1, batch_size >= 2 (in-batch negatives need company), learning_rate > 0, "
                             "max_seq_length >= 8 and threads >= 1.")


def average_with_base(tuned: Mapping[str, object], base: Mapping[str, object], base_weight: float) -> dict[str, object]:
    """Weights ``(1 - base_weight) * tuned + base_weight * base``, tensor by tensor (WiSE-FT, Wortsman et al. 2022).

    Averaging a fine-tuned model with the model it started from keeps much of what fine-tuning gained
    on its own kind of data and much of what the base model did well elsewhere (here: web-style queries
    that the training docstrings do not resemble). Tensors that are not floating point (position ids)
    are taken from ``tuned``; entries only the base holds (a saved file may keep buffers the model
    does not) are left out. Works on torch tensors and numpy arrays alike.
    """
    if not 0.0 <= base_weight <= 1.0:
        raise WorkbenchError(f"The base model's weight must lie between 0 and 1, got {base_weight}.")
    averaged = {}
    for name, value in tuned.items():
        is_float = getattr(value, "is_floating_point", None)
        floating = is_float() if callable(is_float) else getattr(getattr(value, "dtype", None), "kind", "") == "f"
        if floating and (name not in base or tuple(base[name].shape) != tuple(value.shape)):
            raise WorkbenchError(f"The fine-tuned and base models have different layers ({name}): they cannot be averaged.")
        averaged[name] = (1.0 - base_weight) * value + base_weight * base[name] if floating else value
    return averaged


def _linear_schedule(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up, then linear decay to zero (the sentence-transformers default)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return factor


@dataclass(frozen=True)
class TrainingStep:
    """Where a training run stands after one optimizer step: what a progress bar or a page shows."""

    step: int
    total_steps: int
    loss: float
    seconds: float  # since this run (or its resumption) started
    resumed_from: int = 0

    @property
    def eta_seconds(self) -> float:
        """Time left at the pace of the steps done in this run."""
        done = self.step - self.resumed_from
        return self.seconds / done * (self.total_steps - self.step) if done else float("nan")


class TrainingInterrupted(WorkbenchError):
    """Raised by a step callback to stop training; the last checkpoint stays for a resume."""


def training_device() -> str:
    """``cuda`` when PyTorch sees a GPU, else ``cpu``: the same command uses whichever the machine has."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (``ru_maxrss``, KB on Linux)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _run_key(examples: Sequence[TrainingExample], params: Mapping[str, object], base_fingerprint: str) -> str:
    """What a checkpoint must match to be resumed: the same examples, settings and base model."""
    import hashlib

    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode() + base_fingerprint.encode())
    for example in examples:
        digest.update(json.dumps(asdict(example), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:20]


def checkpoint_dir(workspace: Workspace, output_name: str) -> Path:
    """Where a run of ``output_name`` keeps its last checkpoint (removed once the model is saved)."""
    return workspace.models_dir / f".{slug(output_name)}.checkpoint"


# A checkpoint is a folder of plain data: nothing in it is unpickled, so a file planted in the workspace cannot run code.
CHECKPOINT_FORMAT = "codeir-checkpoint/2"
CHECKPOINT_STATE = "state.json"  # format, run key, step, losses, scheduler, optimizer settings, random state
CHECKPOINT_MODEL = "model.safetensors"
CHECKPOINT_OPTIMIZER = "optimizer.safetensors"  # the optimizer's tensors, keyed "<parameter index>.<name>"
OLD_CHECKPOINT = "state.pt"  # the pickled format of earlier versions: never loaded, only set aside
# state.json holds the loss curve: 8 MB covers some 400,000 steps, and bounds what is parsed before the run key is known.
MAX_CHECKPOINT_STATE_BYTES = 8 * 2**20


class TrainingDiverged(WorkbenchError):
    """A loss, gradient or weight became NaN or infinite: training stops and saves nothing (a NaN model breaks every index)."""


class _RejectedCheckpoint(Exception):
    """Why a checkpoint cannot be resumed; the checkpoint is set aside and the run starts over."""


def _say_to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _first_non_finite(tensors: Mapping[str, object]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, else None."""
    import torch

    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def _diverged(step: int, total_steps: int, what: str) -> TrainingDiverged:
    return TrainingDiverged(f"Training diverged at step {step} of {total_steps}: {what}. Nothing was saved (a checkpoint of "
                            f"earlier steps is kept). Lower the learning rate, or check the base model and the examples, "
                            f"then run again.")


def _save_checkpoint(folder: Path, run_key: str, step: int, losses: Sequence[float], model, optimizer, scheduler,
                     device: str) -> None:
    """Write the checkpoint beside the last one, then rename it into place: a kill during the write keeps the previous one.

    Tensors go to safetensors files, everything else (counters, the loss curve, the scheduler, the optimizer's
    settings, the random state) to ``state.json``.
    """
    import torch
    from safetensors.torch import save_file

    optimizer_state = optimizer.state_dict()
    tensors, values = {}, {}
    for index, entries in optimizer_state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                values[f"{index}.{name}"] = value
    state = {"format": CHECKPOINT_FORMAT, "run_key": run_key, "step": step, "schedule": SCHEDULE_VERSION,
             "losses": list(losses), "scheduler": scheduler.state_dict(),
             "optimizer": {"param_groups": optimizer_state["param_groups"], "values": values},
             "rng": torch.get_rng_state().tolist(), "cuda_rng": torch.cuda.get_rng_state().tolist() if device == "cuda" else None}
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        # copies, not views: tied weights share storage, which safetensors refuses to write
        save_file({k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()},
                  str(tmp / CHECKPOINT_MODEL))
        save_file(tensors, str(tmp / CHECKPOINT_OPTIMIZER))
        (tmp / CHECKPOINT_STATE).write_text(json.dumps(state), encoding="utf-8")
        replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _checked_state(folder: Path, run_key: str, total_steps: int) -> dict:
    """``state.json`` when it belongs to this very run; read before any tensor, its size bounded."""
    if (folder / OLD_CHECKPOINT).exists() and not (folder / CHECKPOINT_STATE).exists():
        raise _RejectedCheckpoint(f"it has the old pickled format ({OLD_CHECKPOINT}), which is never loaded since unpickling can run code")
    path = folder / CHECKPOINT_STATE
    try:
        if path.stat().st_size > MAX_CHECKPOINT_STATE_BYTES:
            raise _RejectedCheckpoint(f"its {CHECKPOINT_STATE} is larger than {MAX_CHECKPOINT_STATE_BYTES // 2**20} MB")
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _RejectedCheckpoint(f"its {CHECKPOINT_STATE} cannot be read ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise _RejectedCheckpoint(f"its {CHECKPOINT_STATE} is not a {CHECKPOINT_FORMAT} checkpoint")
    if state.get("run_key") != run_key or state.get("schedule") != SCHEDULE_VERSION:
        raise _RejectedCheckpoint("it belongs to a run with other examples, settings or base model")
    step, losses = state.get("step"), state.get("losses")
    if (not isinstance(step, int) or not 0 < step < total_steps or not isinstance(losses, list) or len(losses) != step
            or not all(isinstance(v, (int, float)) for v in losses)):
        raise _RejectedCheckpoint("its step counter or loss curve is damaged")
    if not all(isinstance(state.get(key), dict) for key in ("scheduler", "optimizer")) or not isinstance(state.get("rng"), list):
        raise _RejectedCheckpoint(f"its {CHECKPOINT_STATE} lacks the scheduler, optimizer or random state")
    return state


def _checked_tensors(folder: Path, model) -> tuple[dict, dict]:
    """The model's and the optimizer's tensors, read with safetensors (no code runs) and matched against the live model."""
    from safetensors.torch import load_file

    try:
        weights = load_file(str(folder / CHECKPOINT_MODEL))
        optimizer_tensors = load_file(str(folder / CHECKPOINT_OPTIMIZER))
    except Exception as exc:  # missing, cut short, a bad header: safetensors raises several kinds
        raise _RejectedCheckpoint(f"its tensors cannot be read ({type(exc).__name__})") from None
    live = model.state_dict()
    if weights.keys() != live.keys() or any(weights[k].shape != live[k].shape or weights[k].dtype != live[k].dtype for k in live):
        raise _RejectedCheckpoint("its weights do not fit the base model's layers")
    return weights, optimizer_tensors


def _optimizer_state(state: dict, tensors: Mapping[str, object], optimizer) -> dict:
    """The optimizer's state dict put back together from ``state.json`` and its tensors."""
    saved = state["optimizer"]
    groups, live_groups = saved.get("param_groups"), optimizer.state_dict()["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(live_groups) or not all(isinstance(g, dict) for g in groups):
        raise _RejectedCheckpoint("its optimizer state does not fit the model")
    # JSON turned tuples (Adam's betas) into lists
    groups = [{k: tuple(v) if isinstance(live.get(k), tuple) and isinstance(v, list) else v for k, v in group.items()}
              for group, live in zip(groups, live_groups)]
    entries: dict[int, dict[str, object]] = {}
    for key, value in [*tensors.items(), *dict(saved.get("values") or {}).items()]:
        index, _, name = key.partition(".")
        if not index.isdigit() or not name:
            raise _RejectedCheckpoint("its optimizer state is damaged")
        entries.setdefault(int(index), {})[name] = value
    return {"state": entries, "param_groups": groups}


def _set_aside(folder: Path) -> Path:
    """Rename a rejected checkpoint out of the way (kept for a look, never read again)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder.with_name(f"{folder.name}.rejected-{stamp}")
    number = 1
    while aside.exists():
        number += 1
        aside = folder.with_name(f"{folder.name}.rejected-{stamp}-{number}")
    folder.rename(aside)
    return aside


def _resume(folder: Path, run_key: str, total_steps: int, model, optimizer, scheduler, device: str,
            report: Callable[[str], None]) -> tuple[int, list[float]] | None:
    """Restore this run's checkpoint into the model, optimizer, scheduler and random state: the step and losses so far.

    ``state.json`` is checked first (size, format, run key, counters); only a checkpoint of this very run has its
    tensors read. One that fails a check is moved aside with a line through ``report``, and training starts over
    (None). Weights holding a NaN raise ``TrainingDiverged``: training on from them would save a NaN model.
    """
    import torch

    if not folder.exists():
        return None
    try:
        state = _checked_state(folder, run_key, total_steps)
        weights, optimizer_tensors = _checked_tensors(folder, model)
        broken = _first_non_finite(weights)
        if broken is not None:
            aside = _set_aside(folder)
            raise TrainingDiverged(f"The checkpoint at step {state['step']} holds non-finite weights (NaN or infinity in "
                                   f"{broken}): training on from it would save a broken model. Nothing was trained or saved; "
                                   f"the checkpoint was set aside as {aside.name}, so a new run starts from the base model.")
        rng = torch.tensor(state["rng"], dtype=torch.uint8) if all(isinstance(b, int) and 0 <= b < 256 for b in state["rng"]) else None
        if rng is None or rng.shape != torch.get_rng_state().shape:
            raise _RejectedCheckpoint("its random state is damaged")
        cuda_rng = None
        if device == "cuda":
            saved = state.get("cuda_rng")
            cuda_rng = torch.tensor(saved, dtype=torch.uint8) if isinstance(saved, list) and all(
                isinstance(b, int) and 0 <= b < 256 for b in saved) else None
            if cuda_rng is None or cuda_rng.shape != torch.cuda.get_rng_state().shape:
                raise _RejectedCheckpoint("its GPU random state is missing or damaged")
        if not state["scheduler"].keys() <= scheduler.state_dict().keys():
            raise _RejectedCheckpoint("its learning-rate schedule does not fit this run")
        try:  # validates every group before it changes anything
            optimizer.load_state_dict(_optimizer_state(state, optimizer_tensors, optimizer))
        except (ValueError, KeyError, TypeError) as exc:
            raise _RejectedCheckpoint(f"its optimizer state does not fit the model ({exc})") from None
    except _RejectedCheckpoint as why:
        aside = _set_aside(folder)
        report(f"checkpoint {folder.name} set aside as {aside.name}: {why}; training starts from the base model")
        return None
    scheduler.load_state_dict(state["scheduler"])
    model.load_state_dict(weights)
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng)
    return int(state["step"]), [float(v) for v in state["losses"]]


@contextmanager
def _tf32_matmuls(enabled: bool):
    """TF32 matrix products on a GPU's tensor cores while training (as GPU training recipes commonly use); the
    process's previous setting is restored afterwards, so encoding elsewhere in the process is not changed."""
    import torch

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if enabled:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def finetune(train_examples: Sequence[TrainingExample], workspace: Workspace, base_model: str = DEFAULT_MODEL,
             output_name: str = DEFAULT_OUTPUT, *, epochs: int = 1, batch_size: int = 32, learning_rate: float = 2e-5,
             max_examples: int | None = DEFAULT_MAX_EXAMPLES, max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
             seed: int = 42, warmup_ratio: float = 0.1, symmetric: bool = True, progress: bool = True,
             threads: int | None = None, data: Mapping[str, object] | None = None, overwrite: bool = False,
             mini_batch_size: int = DEFAULT_MINI_BATCH, checkpoint_every: int | None = None, resume: bool = True,
             device: str | None = None, on_step: Callable[[TrainingStep], None] | None = None,
             base_weight: float = 0.0, report: Callable[[str], None] = _say_to_stderr) -> Path:
    """Train ``base_model`` with MultipleNegativesRankingLoss and save it as ``<workspace>/models/<output_name>``.

    Each batch scores every query against all positives and hard negatives of the batch;
    ``symmetric`` adds the answer-to-query direction (the model then serves code -> text as well as
    text -> code). The loss is computed GradCache-style (``CachedMultipleNegativesRankingLoss``):
    texts go through the model ``mini_batch_size`` rows at a time, so memory holds the activations
    of one mini-batch, not of the whole batch (the default 32 x 5 texts x 128 tokens needed ~9 GB),
    while the loss and gradients stay those of the full batch. Texts are cut to ``max_seq_length``
    tokens while training only: the saved model keeps the base model's window, so before/after
    comparisons read the same input. ``threads`` defaults to every core; ``device`` to a GPU when
    there is one. With ``checkpoint_every``, the weights, optimizer and random state are saved every
    that many steps and a later call with the same examples and settings resumes from there
    (``resume``); a checkpoint of another run, or one that fails its checks, is set aside with a line through
    ``report``. ``on_step`` sees every step (raise ``TrainingInterrupted`` there to stop). A NaN or infinite
    loss, gradient or weight raises ``TrainingDiverged`` and saves nothing.
    ``data`` is recorded in ``codeir-finetune.json`` (what the examples are, the leakage audit).
    ``base_weight`` > 0 saves the trained weights averaged with the base model's (``average_with_base``).
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
    from tqdm import tqdm

    target = check_model_name(workspace, output_name, overwrite)
    _check_training_args(train_examples, epochs, batch_size, learning_rate, max_seq_length, threads)
    if mini_batch_size < 1 or (checkpoint_every is not None and checkpoint_every < 1):
        raise WorkbenchError("Use mini_batch_size >= 1 and checkpoint_every >= 1.")
    if not 0.0 <= base_weight < 1.0:
        raise WorkbenchError(f"Use a base weight from 0 (the trained weights) up to, not including, 1 (the base model); got {base_weight}.")
    source = resolve_model(base_model, workspace)
    if isinstance(source, str):
        raise ModelUnavailableError(f"Fine-tuning needs a local base model; {base_model!r} would come from the hub. "
                                    f"Save it to a folder first and give that folder.")
    started = time.perf_counter()
    rng = random.Random(seed)
    examples = list(train_examples)
    if max_examples is not None and len(examples) > max_examples:
        examples = rng.sample(examples, max_examples)
    n_negatives = max(len(e.negatives) for e in examples)
    mined = sum(len(e.negatives) for e in examples)
    positives = sorted({e.positive for e in examples})
    schedule = []
    for _ in range(epochs):  # batches are formed on the mined negatives, then topped up from outside each batch
        order = examples[:]
        rng.shuffle(order)
        schedule += [_filled(batch, n_negatives, positives, rng) for batch in example_batches(order, min(batch_size, len(examples)))]
    if not schedule:
        raise WorkbenchError("No batch without repeated texts could be formed: give more distinct examples or a smaller batch size.")
    total_steps = len(schedule)
    trained = list({(e.query, e.positive): e for batch in schedule for e in batch}.values())
    mined_for = {(e.query, e.positive): set(e.negatives) for e in examples}
    random_negatives = sum(n not in mined_for[(e.query, e.positive)] for batch in schedule for e in batch for n in e.negatives)

    device = device or training_device()
    n_threads = threads or max(1, os.cpu_count() or 1)
    params = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "max_examples": max_examples,
              "max_seq_length": max_seq_length, "seed": seed, "warmup_ratio": warmup_ratio, "threads": n_threads,
              "mini_batch_size": mini_batch_size, "checkpoint_every": checkpoint_every, "base_weight": base_weight}
    base_fingerprint = load_encoder(base_model, workspace).fingerprint
    directions = ("query_to_doc", "doc_to_query") if symmetric else ("query_to_doc",)
    # Threads, mini-batch and checkpoint spacing change neither the batches nor the loss, and the averaging comes after
    # the last step: a run may resume with others.
    run_key = _run_key(examples, {k: v for k, v in params.items() if k not in ("threads", "mini_batch_size", "checkpoint_every", "base_weight")}
                       | {"directions": directions, "schedule": SCHEDULE_VERSION}, base_fingerprint)
    checkpoints = checkpoint_dir(workspace, output_name)
    if not resume:
        shutil.rmtree(checkpoints, ignore_errors=True)
    torch.manual_seed(seed)
    gpu = device.startswith("cuda")
    if gpu:
        torch.cuda.reset_peak_memory_stats(device)  # this run's peak, not the process's (the dashboard's server lives on)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = SentenceTransformer(str(source), device=device, local_files_only=True)
    window = model.max_seq_length
    model.max_seq_length = max_seq_length
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()} if base_weight else None
    loss_fn = CachedMultipleNegativesRankingLoss(model, mini_batch_size=mini_batch_size, directions=directions)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_schedule(total_steps, max(1, int(warmup_ratio * total_steps))))
    losses: list[float] = []
    first_step = 0
    resumed = _resume(checkpoints, run_key, total_steps, model, optimizer, scheduler, device, report) if resume else None
    if resumed is not None:
        first_step, losses = resumed
    model.train()
    run_started, run_cpu = time.perf_counter(), time.process_time()
    with torch_threads(n_threads), _tf32_matmuls(gpu):
        with tqdm(total=total_steps, initial=first_step, desc=f"fine-tuning {output_name}", unit="step", file=sys.stderr,
                  disable=not progress) as bar:
            for step in range(first_step, total_steps):
                batch = schedule[step]
                columns = [[e.query for e in batch], [e.positive for e in batch]]
                columns += [[e.negatives[k] for e in batch] for k in range(len(batch[0].negatives))]
                features = [{k: v.to(device) if hasattr(v, "to") else v for k, v in model.preprocess(column).items()} for column in columns]
                loss = loss_fn(features, None)
                value = float(loss.detach())
                if not math.isfinite(value):  # checked before the step: the weights stay as they were
                    raise _diverged(step + 1, total_steps, f"the loss is {value}")
                loss.backward()
                norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
                if not math.isfinite(norm):  # clipping an infinite gradient makes NaNs: the optimizer must not apply it
                    raise _diverged(step + 1, total_steps, f"the gradient norm is {norm}")
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                losses.append(value)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                bar.update(1)
                if checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < total_steps:
                    broken = _first_non_finite(model.state_dict())
                    if broken is not None:
                        raise _diverged(step + 1, total_steps, f"the weights of {broken} are not finite")
                    _save_checkpoint(checkpoints, run_key, step + 1, losses, model, optimizer, scheduler, device)
                if on_step is not None:
                    on_step(TrainingStep(step + 1, total_steps, losses[-1], time.perf_counter() - run_started, first_step))
    training_seconds, training_cpu = time.perf_counter() - run_started, time.process_time() - run_cpu
    model.eval()
    model.max_seq_length = window
    if base_state is not None:
        with torch.no_grad():
            model.load_state_dict(average_with_base(model.state_dict(), base_state, base_weight))
    broken = _first_non_finite(model.state_dict())
    if broken is not None:
        raise _diverged(total_steps, total_steps, f"the weights of {broken} are not finite")
    info = {
        "name": output_name, "base_model": base_model, "base_fingerprint": base_fingerprint,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": round(time.perf_counter() - started, 1),
        "loss": "MultipleNegativesRankingLoss (GradCache)", "directions": list(directions),
        "params": params,
        "examples": len(examples), "examples_trained": len(trained), "negatives_per_example": n_negatives, "mined_negatives": mined,
        "random_negatives": random_negatives, "steps": total_steps, "resumed_from_step": first_step,
        "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
        "loss_curve": [round(v, 4) for v in losses],
        "data": dict(data or {}),
        "versions": _versions(), "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "device": device,
                                         "gpu": torch.cuda.get_device_name(device) if gpu else None, "matmul": "tf32" if gpu else "fp32"},
        "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20) if gpu else None,
        # The steps of this call only (a resumed run counts from its checkpoint); CPU time adds up every thread.
        "training_seconds": round(training_seconds, 1), "training_cpu_seconds": round(training_cpu, 1),
    }
    folder = _save_atomically(model, target, info, trained, workspace)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return folder


def _versions() -> dict[str, str]:
    import sentence_transformers
    import torch
    import transformers

    return {"torch": torch.__version__, "sentence-transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


def _save_atomically(model, target: Path, info: dict, examples: Sequence[TrainingExample], workspace: Workspace) -> Path:
    """Write the model to a temporary folder, then rename it into place: a killed save leaves nothing half-written."""
    with workspace.lock(f"model-{target.name}"):
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save(str(tmp), create_model_card=False)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        with (tmp / EXAMPLES_FILE).open("w", encoding="utf-8") as out:
            for example in examples:
                out.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")
        replace_folder(tmp, target)
    return target


def leakage_table(summaries: Sequence[LeakageSummary]):
    """One row per eval set, one column per kind of overlap (judged-pair checks, then every-text categories)."""
    import pandas as pd

    rows = {}
    for summary in summaries:
        row = {f"pair: {kind}": count for kind, count in summary.counts.items()}
        row |= dict(summary.text_counts)
        row |= {"training queries dropped": summary.dropped_train_queries,
                "corpus documents dropped": summary.dropped_train_documents}
        rows[summary.eval] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "eval set"
    return frame


def describe_training(info: Mapping[str, object]) -> str:
    """What a saved run actually trained on, in one sentence (examples left out of full batches included)."""
    trained, examples, steps = info.get("examples_trained", 0), info.get("examples", 0), info.get("steps", 0)
    batch = info.get("params", {}).get("batch_size", "?")
    epochs = info.get("params", {}).get("epochs", 1)
    text = (f"Trained on {trained} of {examples} examples in {steps} step{'s' if steps != 1 else ''} "
            f"(batch size {batch}, {epochs} epoch{'s' if epochs != 1 else ''})")
    if trained < examples:
        text += (f"; {examples - trained} examples never made a full batch without repeated texts and were left out "
                 "(a last partial batch is dropped)")
    if info.get("loss_first") is not None:
        text += f". Loss {info['loss_first']:.3f} → {info['loss_last']:.3f}"
    if info.get("peak_rss_mb"):
        text += f"; peak memory {info['peak_rss_mb']:,.0f} MB on {info.get('machine', {}).get('device', 'cpu')}"
    if info.get("resumed_from_step"):
        text += f"; resumed from the checkpoint at step {info['resumed_from_step']}"
    return text + "."


def read_finetune_info(folder: Path) -> dict:
    """The ``codeir-finetune.json`` of a fine-tuned model folder (empty for other models)."""
    try:
        return json.loads((Path(folder) / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def add_dense_profile(workspace: Workspace, model_name: str, profile_name: str | None = None) -> str:
    """Add (or replace) a dense profile for a model in the workspace's profiles.toml; returns its name."""
    from core.retrieval.profiles import load_profiles, save_profiles

    name = profile_name or f"dense-{slug(model_name)}"
    profiles = load_profiles(workspace.profiles_file)
    profiles[name] = DenseProfile(name, model=model_name)
    save_profiles(workspace.profiles_file, profiles)
    return name
