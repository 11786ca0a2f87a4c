"""The engine: every profile kind over real data."""
import numpy as np
import pytest

from core.data.datasets import Query
from core.errors import ProfileError, QueryError
from core.evaluation.metrics import evaluate


def test_every_default_profile_returns_depth_100_runs_for_every_query(csn_engine, csn_mini):
    for name in csn_engine.profiles:
        run = csn_engine.run(name)
        assert set(run.rankings) == {q.id for q in csn_mini.judged_queries}
        lengths = [len(r) for r in run.rankings.values()]
        # BM25 returns only documents sharing a term with the query; every other kind fills the depth
        assert max(lengths) == 100 and (min(lengths) == 100 or name.startswith("bm25")), name
        assert run.meta["seconds"] >= 0 and run.profile["name"] == name
        for ranking in run.rankings.values():
            assert list(ranking.scores) == sorted(ranking.scores, reverse=True)


def test_fusion_beats_or_matches_its_weaker_member(csn_engine, csn_mini):
    ndcg = {name: evaluate(csn_mini.qrels, csn_engine.run(name), ["ndcg@10"]).mean()["ndcg@10"]
            for name in ("bm25-code", "dense-minilm", "hybrid-rrf")}
    assert ndcg["hybrid-rrf"] >= min(ndcg["bm25-code"], ndcg["dense-minilm"])
    assert ndcg["dense-minilm"] > 0.5 and ndcg["bm25-code"] > 0.5


def test_ad_hoc_search_equals_the_batch_run_for_the_same_text(csn_engine, csn_mini):
    query = csn_mini.judged_queries[3]
    for name in csn_engine.profiles:
        batch = csn_engine.run(name, [query]).ranking(query.id)
        single = csn_engine.search(name, query.text).ranking
        assert single.doc_ids[:10] == batch.doc_ids[:10], name
        assert np.allclose(single.scores[:10], batch.scores[:10], atol=1e-5)


def test_rerank_reorders_only_its_pool(csn_engine, csn_mini):
    profile = csn_engine.profile("rerank-fusion")
    first = csn_engine.run(profile.first_stage)
    reranked = csn_engine.run("rerank-fusion")
    for query_id, ranking in reranked.rankings.items():
        pool = set(first.ranking(query_id).doc_ids[:profile.pool_depth])
        assert set(ranking.doc_ids[:profile.pool_depth]) == pool
        assert ranking.doc_ids[profile.pool_depth:] == first.ranking(query_id).doc_ids[profile.pool_depth:]


def test_empty_query_is_refused_with_a_message(csn_engine):
    with pytest.raises(QueryError, match="empty"):
        csn_engine.search("bm25-code", "   \n\t ")


def test_unknown_profile_is_named(csn_engine):
    with pytest.raises(ProfileError, match="Unknown profile 'nope'"):
        csn_engine.run("nope")


def test_ranking_ties_follow_trec_eval_order(csn_engine):
    result = csn_engine.search("hybrid-rrf", "def f(x): return x")
    pairs = list(zip(result.ranking.scores, result.ranking.doc_ids))
    for (s1, d1), (s2, d2) in zip(pairs, pairs[1:]):
        assert s1 > s2 or (s1 == s2 and d1 > d2)


def test_a_changed_query_text_is_embedded_again(csn_engine, csn_mini):
    query = csn_mini.judged_queries[0]
    edited = Query(query.id, query.text + "\n# edited")
    same = csn_engine.query_vectors("minilm", "torch", [query])
    changed = csn_engine.query_vectors("minilm", "torch", [edited])
    assert not np.allclose(same, changed)
