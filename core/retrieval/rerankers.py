"""Second-stage rerankers: re-score a first stage's top-N pool for each query.

``fusion`` and ``bi-encoder`` use embeddings (cached in LanceDB like any dense profile) and so work
offline with the bundled model; ``cross-encoder`` loads a sentence-transformers CrossEncoder from a
local folder or, for users who are online, the hub.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import ModelUnavailableError
from core.retrieval.fusion import Hits, normalize


def rerank_fusion(pool: Hits, cosine: np.ndarray, alpha: float) -> np.ndarray:
    """alpha * z(model cosine) + (1 - alpha) * z(first-stage score), over the pool."""
    return alpha * normalize(cosine, "zscore") + (1 - alpha) * normalize(pool.scores, "zscore")


def merge_reranked(first_stage: Hits, pool_size: int, new_scores: np.ndarray, depth: int) -> Hits:
    """The re-scored pool first (by new score), then the rest of the first stage in its own order.

    Documents below the pool keep their order; their scores are rank-derived and lie below the
    pool's, so every ranking stays sorted by score.
    """
    pool_rows = first_stage.rows[:pool_size]
    order = np.lexsort((pool_rows, -new_scores))
    rows = pool_rows[order]
    scores = np.asarray(new_scores, dtype=np.float64)[order]
    rest = first_stage.rows[pool_size:depth]
    if len(rest):
        floor = (scores.min() if len(scores) else 0.0) - 1.0
        rows = np.concatenate([rows, rest])
        scores = np.concatenate([scores, floor - np.arange(len(rest), dtype=np.float64)])
    return Hits(rows[:depth], scores[:depth])


@dataclass
class CrossEncoderScorer:
    """A sentence-transformers CrossEncoder, loaded on first use."""

    source: str | Path
    _model: object = field(default=None, repr=False)

    def _load(self):
        if self._model is None:
            from sentence_transformers import CrossEncoder

            local = Path(str(self.source)).expanduser().is_dir()
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
            try:
                self._model = CrossEncoder(str(self.source), device="cpu", local_files_only=local or offline)
            except Exception as exc:
                raise ModelUnavailableError(
                    f"Cross-encoder {self.source!r} could not be loaded ({type(exc).__name__}). No cross-encoder ships "
                    f"offline: use a local CrossEncoder folder, or the 'fusion'/'bi-encoder' rerankers.") from exc
        return self._model

    def score(self, query: str, documents: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if not documents:
            return np.empty(0, np.float64)
        model = self._load()
        scores = model.predict([(query, doc) for doc in documents], batch_size=batch_size, show_progress_bar=False)
        return np.asarray(scores, dtype=np.float64).reshape(len(documents), -1)[:, -1]
