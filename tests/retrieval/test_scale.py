"""Runs split across Ray tasks equal the single-process run; the profiles' models are found for the Ray embedder."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import ClusterError
from core.data.datasets import Query
from core.index.distributed import RayOptions
from core.retrieval.scale import dense_models, run_with_ray


def test_the_models_a_profile_set_reads_are_found_once_each(csn_engine):
    assert dense_models(csn_engine, ["bm25-code"]) == []
    assert dense_models(csn_engine, ["hybrid-rrf", "dense-minilm", "rerank-fusion"]) == [("minilm", "torch")]


@pytest.mark.parametrize("profile", ["bm25-code", "dense-minilm"])
def test_a_run_split_into_ray_tasks_equals_the_single_process_run(local_ray, csn_engine, profile):
    fractions = []
    split = run_with_ray(csn_engine, profile, RayOptions(cpus_per_actor=0.5), queries_per_task=15, progress=fractions.append)
    single = csn_engine.run(profile)
    assert split.meta["ray_tasks"] == 3 and fractions[-1] == 1.0 and len(fractions) == 3
    assert list(split.rankings) == list(single.rankings)
    for query_id, ranking in single.rankings.items():
        assert split.rankings[query_id].doc_ids == ranking.doc_ids
        np.testing.assert_array_equal(np.asarray(split.rankings[query_id].scores), np.asarray(ranking.scores))
    assert split.profile == single.profile and split.meta["corpus_hash"] == single.meta["corpus_hash"]


def test_a_ray_run_takes_only_the_datasets_own_queries(csn_engine):
    with pytest.raises(ClusterError, match="dataset's own queries"):
        run_with_ray(csn_engine, "bm25-code", RayOptions(), queries=[Query("pasted", "sort a list")])
