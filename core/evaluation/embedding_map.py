"""Embedding map: queries and documents of a dataset projected to 2-D under a dense model, coloured by a run.

The projection (PCA always; UMAP with the ``umap-learn`` package) is fitted on the documents and the
judged queries together and cached on disk per (dataset content, model fingerprint, method) in the
workspace's ``maps/`` folder, so a map is computed once and drawn from the cache after.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.datasets import Dataset
from core.errors import ProfileError, WorkbenchError
from core.evaluation.metrics import POSITIVE_RANK, Evaluation
from core.retrieval.engine import Engine
from core.retrieval.profiles import DenseProfile, HybridProfile, Profile, RerankProfile
from core.workspace import slug

METHODS = ("pca", "umap")
HOVER_CHARS = 100
# Above this many documents the map draws every judged positive and an evenly spaced sample of the rest, up to this
# many in all (the projection is fitted on them and the judged queries): a million points would neither fit UMAP's
# minutes nor a browser's WebGL buffer. The page says how many it drew of how many.
MAX_MAP_DOCUMENTS = 20_000
POINT_COLUMNS = ("kind", "id", "x", "y", "hover", "positive_id", "positive_rank", "hit")


@dataclass(frozen=True, eq=False)  # holds arrays: compares by identity
class EmbeddingMap:
    """2-D coordinates of every document and judged query of a dataset under one model."""

    dataset: str
    model: str
    method: str
    doc_ids: tuple[str, ...]
    doc_xy: np.ndarray
    query_ids: tuple[str, ...]
    query_xy: np.ndarray
    corpus_documents: int = 0  # documents in the corpus; more than len(doc_ids) when the map drew a sample

    @property
    def sampled(self) -> bool:
        return self.corpus_documents > len(self.doc_ids)


def dense_model(profiles: Mapping[str, Profile], name: str) -> tuple[str, str]:
    """(model, backend) of the dense embeddings behind profile ``name``: itself, a hybrid's dense member, a rerank's first stage."""
    profile = profiles.get(name)
    if isinstance(profile, DenseProfile):
        return profile.model, profile.backend
    if isinstance(profile, HybridProfile):
        for member in profile.members:
            try:
                return dense_model(profiles, member)
            except ProfileError:
                continue
    if isinstance(profile, RerankProfile):
        try:
            return dense_model(profiles, profile.first_stage)
        except ProfileError:
            pass
    kind = profile.kind if profile is not None else "unknown"
    raise ProfileError(f"Profile {name!r} ({kind}) has no vectors to map: pick a dense profile, or a hybrid or rerank "
                       "profile built on one.")


def has_vectors(profiles: Mapping[str, Profile], name: str) -> bool:
    """Whether profile ``name`` has dense embeddings behind it (see dense_model)."""
    try:
        dense_model(profiles, name)
    except ProfileError:
        return False
    return True


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components of ``vectors`` (rows), signs fixed so the result is deterministic."""
    vectors = np.asarray(vectors, dtype=np.float64)
    centred = vectors - vectors.mean(axis=0)
    covariance = centred.T @ centred / max(len(vectors) - 1, 1)
    values, axes = np.linalg.eigh(covariance)
    top = axes[:, np.argsort(values)[::-1][:2]]
    top *= np.where(top[np.abs(top).argmax(axis=0), range(top.shape[1])] < 0, -1.0, 1.0)  # largest loading positive
    return (centred @ top).astype(np.float32)


def umap_2d(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """UMAP to two dimensions (cosine metric, seeded; single-threaded because of the seed)."""
    import umap

    reducer = umap.UMAP(n_components=2, metric="cosine", random_state=seed, n_neighbors=min(15, len(vectors) - 1))
    return reducer.fit_transform(np.asarray(vectors, dtype=np.float32)).astype(np.float32)


def map_path(engine: Engine, model: str, backend: str, method: str) -> Path:
    dataset = engine.dataset
    fingerprint = engine.encoder(model, backend).fingerprint
    name = f"{slug(dataset.name)}__{slug(model)}__{dataset.corpus_hash[:12]}__{dataset.queries_hash[:12]}__{slug(fingerprint)}__{method}.npz"
    return engine.workspace.root / "maps" / name


def mapped_rows(dataset: Dataset, limit: int = MAX_MAP_DOCUMENTS) -> np.ndarray:
    """Corpus rows the map draws: all of them up to ``limit``; above it the judged positives plus evenly spaced rows."""
    total = len(dataset.documents)
    if total <= limit:
        return np.arange(total, dtype=np.int64)
    positives = {dataset.doc_index[d] for q in dataset.judged_queries for d in dataset.qrels.positives(q.id) if d in dataset.doc_index}
    spare = max(limit - len(positives), 0)
    spread = np.linspace(0, total - 1, spare).round().astype(np.int64) if spare else np.empty(0, np.int64)
    return np.union1d(np.fromiter(sorted(positives), dtype=np.int64, count=len(positives)), spread)  # <= limit, or the positives


def embedding_map(engine: Engine, model: str, backend: str = "torch", method: str = "pca",
                  limit: int = MAX_MAP_DOCUMENTS) -> EmbeddingMap:
    """The map of the engine's dataset under ``model``: read from the workspace cache, else computed and cached."""
    if method not in METHODS:
        raise WorkbenchError(f"Unknown projection {method!r}: use one of {', '.join(METHODS)}.")
    dataset = engine.dataset
    path = map_path(engine, model, backend, method)
    rows = mapped_rows(dataset, limit)
    if len(rows) < len(dataset.documents):
        path = path.with_name(f"{path.stem}__sample{len(rows)}.npz")
    doc_ids = tuple(dataset.doc_ids[row] for row in rows.tolist())
    total = len(dataset.documents)
    query_ids = tuple(q.id for q in dataset.judged_queries)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                doc_xy, query_xy = stored["doc_xy"], stored["query_xy"]
            if len(doc_xy) == len(doc_ids) and len(query_xy) == len(query_ids):
                return EmbeddingMap(dataset.name, model, method, doc_ids, doc_xy, query_ids, query_xy, total)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is recomputed below
    documents = engine.vectors(model, backend).vectors
    documents = documents if len(rows) == len(documents) else documents[rows]
    queries = engine.query_vectors(model, backend, dataset.judged_queries)
    if len(documents) + len(queries) < 3:
        raise WorkbenchError(f"{dataset.name} has too few documents and queries to map.")
    joint = np.vstack([documents, queries])
    xy = pca_2d(joint) if method == "pca" else umap_2d(joint)
    doc_xy, query_xy = xy[: len(documents)], xy[len(documents):]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.npz")
    np.savez(partial, doc_xy=doc_xy, query_xy=query_xy)
    partial.replace(path)  # atomic: a reader never sees half a file
    return EmbeddingMap(dataset.name, model, method, doc_ids, doc_xy, query_ids, query_xy, total)


def first_line(text: str, limit: int = HOVER_CHARS) -> str:
    """The first non-blank line of ``text``, cut to ``limit`` characters."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _hovers(dataset: Dataset, doc_ids: tuple[str, ...]) -> list[str]:
    """The first line of each mapped document (every document of a loaded corpus; the sample's rows of a stored one)."""
    if not dataset.is_stored and len(doc_ids) == len(dataset.documents):
        return [first_line(d.full_text) for d in dataset.documents]
    found = dataset.documents_for(doc_ids)
    return [first_line(found[d].full_text) if d in found else "" for d in doc_ids]


def map_points(embedding: EmbeddingMap, dataset: Dataset, evaluation: Evaluation | None = None, k: int = 10) -> pd.DataFrame:
    """One row per point: documents first, then queries with their best positive, its rank and hit@k under the run."""
    documents = pd.DataFrame({"kind": "document", "id": list(embedding.doc_ids), "x": embedding.doc_xy[:, 0],
                              "y": embedding.doc_xy[:, 1],
                              "hover": _hovers(dataset, embedding.doc_ids)})
    ranks = evaluation.per_query[POSITIVE_RANK] if evaluation is not None else None
    positives, rank_values = [], []
    for query_id in embedding.query_ids:
        positive = next((d for d in dataset.qrels.positives(query_id) if d in dataset.doc_index), "")
        positives.append(positive)
        rank_values.append(float(ranks.get(query_id, math.nan)) if ranks is not None else math.nan)
    rank_array = np.array(rank_values, dtype=float)
    queries = pd.DataFrame({"kind": "query", "id": list(embedding.query_ids), "x": embedding.query_xy[:, 0],
                            "y": embedding.query_xy[:, 1],
                            "hover": [first_line(dataset.query(q).text) for q in embedding.query_ids],
                            "positive_id": positives, "positive_rank": rank_array,
                            "hit": np.where(np.isnan(rank_array), False, rank_array <= k)})
    points = pd.concat([documents, queries], ignore_index=True)
    points["positive_id"] = points["positive_id"].fillna("")
    return points[list(POINT_COLUMNS)]
