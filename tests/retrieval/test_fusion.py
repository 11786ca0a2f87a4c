"""RRF and weighted fusion."""
import numpy as np
import pytest

from core.retrieval.fusion import Hits, normalize, rrf, weighted_sum


def hits(rows, scores):
    return Hits(np.array(rows), np.array(scores, dtype=float))


def test_rrf_sums_reciprocal_ranks():
    fused = rrf([hits([1, 2, 3], [9, 8, 7]), hits([3, 1], [5, 4])], k=60)
    expected = {1: 1 / 61 + 1 / 62, 2: 1 / 62, 3: 1 / 63 + 1 / 61}
    assert dict(zip(fused.rows.tolist(), fused.scores.tolist())) == pytest.approx(expected)
    assert fused.rows.tolist() == [1, 3, 2]


def test_weighted_minmax_fusion_gives_missing_documents_the_floor():
    fused = weighted_sum([hits([1, 2], [10, 0]), hits([2, 3], [1.0, 0.5])], weights=[0.5, 0.5], normalization="minmax")
    scores = dict(zip(fused.rows.tolist(), fused.scores.tolist()))
    assert scores == pytest.approx({1: 0.5, 2: 0.5, 3: 0.0})


def test_zscore_normalisation_has_zero_mean_unit_variance():
    z = normalize(np.array([1.0, 2.0, 3.0, 10.0]), "zscore")
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)


def test_fusion_of_nothing_is_empty():
    assert len(rrf([Hits.empty(), Hits.empty()]).rows) == 0
    assert len(weighted_sum([Hits.empty(), Hits.empty()]).rows) == 0
