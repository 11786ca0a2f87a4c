"""One benchmark session: the workspace, the bundled datasets, and one Engine per dataset, opened once."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.data.datasets import Dataset, Qrels, load_dataset
from core.errors import DatasetError
from core.retrieval.profiles import DenseProfile, Profile, default_profiles
from core.retrieval.engine import Engine
from core.workspace import Workspace

SETS = ("cosqa", "csn-python-code2doc", "csn-python-code2doc-nodoc")
EVALUATED_PROFILES = ("bm25-code", "dense-minilm", "hybrid-rrf", "rerank-fusion")
ONNX_PROFILE = "dense-minilm-onnx"


def bench_profiles() -> dict[str, Profile]:
    """The default profiles plus MiniLM through the int8 ONNX backend (its own LanceDB table)."""
    profiles = default_profiles()
    profiles[ONNX_PROFILE] = DenseProfile(ONNX_PROFILE, model="minilm", backend="onnx")
    return profiles


def corpus_subset(dataset: Dataset, documents: int, queries: int) -> Dataset:
    """A smaller dataset for --quick: the first ``queries`` judged queries, their positives, and filler documents.

    It gets its own name, so its indexes and embeddings never replace those of the full set.
    """
    chosen = dataset.judged_queries[:queries]
    keep = {doc_id for q in chosen for doc_id in dataset.qrels.positives(q.id)}
    for doc in dataset.documents:
        if len(keep) >= documents:
            break
        keep.add(doc.id)
    docs = tuple(d for d in dataset.documents if d.id in keep)
    judgments = {q.id: {d: g for d, g in dataset.qrels.grades(q.id).items() if d in keep} for q in chosen}
    return Dataset(f"{dataset.name}-bench{len(docs)}", docs, tuple(chosen), Qrels(judgments), dataset.split, dataset.source)


@dataclass
class BenchContext:
    """Settings of this benchmark run and the engines it opened (reused across parts)."""

    workspace: Workspace
    repeats: int
    quick: bool
    notes: list[str] = field(default_factory=list)
    _datasets: dict[str, Dataset] = field(default_factory=dict, repr=False)
    _engines: dict[str, Engine] = field(default_factory=dict, repr=False)

    def dataset(self, name: str) -> Dataset:
        if name not in self._datasets:
            if self.workspace.data_dir is None or not (self.workspace.data_dir / name).is_dir():
                raise DatasetError(f"Bundled dataset {name!r} not found under {self.workspace.data_dir}; "
                                   f"set CODEIR_DATA_DIR to the folder holding {', '.join(SETS)}.")
            self._datasets[name] = load_dataset(self.workspace.data_dir / name)
        return self._datasets[name]

    def engine(self, name: str) -> Engine:
        """An Engine over a bundled set, or over a Dataset passed in earlier through ``add_dataset``."""
        if name not in self._engines:
            self._engines[name] = Engine(self.workspace, self.dataset(name), bench_profiles())
        return self._engines[name]

    def add_dataset(self, dataset: Dataset) -> str:
        self._datasets[dataset.name] = dataset
        return dataset.name

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
