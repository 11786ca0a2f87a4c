"""Rerankers: pool merging, the fusion reranker, and the CrossEncoder path with a tiny local model."""
import shutil

import numpy as np
import pytest

from core.index.encoders import resolve_model
from core.errors import ModelUnavailableError
from core.retrieval.fusion import Hits
from core.retrieval.profiles import RerankProfile, default_profiles
from core.retrieval.rerankers import CrossEncoderScorer, merge_reranked
from core.retrieval.engine import Engine


def test_merge_puts_the_rescored_pool_first_and_keeps_the_tail():
    first = Hits(np.array([5, 6, 7, 8, 9]), np.array([9.0, 8, 7, 6, 5]))
    merged = merge_reranked(first, 3, np.array([0.1, 0.9, 0.5]), depth=5)
    assert merged.rows.tolist() == [6, 7, 5, 8, 9]
    assert list(merged.scores) == sorted(merged.scores, reverse=True)


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A randomly initialised one-layer BERT cross-encoder built locally (no cross-encoder ships offline)."""
    from transformers import AutoModelForSequenceClassification, BertConfig

    folder = tmp_path_factory.mktemp("tiny-ce")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    minilm = resolve_model("minilm")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (minilm / name).is_file():
            shutil.copy(minilm / name, folder / name)
    return folder


def test_cross_encoder_reranks_the_pool(session_workspace, csn_mini, tiny_cross_encoder):
    profiles = default_profiles()
    profiles["rerank-ce"] = RerankProfile("rerank-ce", first_stage="bm25-code", pool_depth=10, reranker="cross-encoder",
                                          model=str(tiny_cross_encoder))
    engine = Engine(session_workspace, csn_mini, profiles)
    queries = list(csn_mini.judged_queries[:5])
    first = engine.run("bm25-code", queries)
    reranked = engine.run("rerank-ce", queries)
    scorer = CrossEncoderScorer(str(tiny_cross_encoder))
    for query in queries:
        pool = first.ranking(query.id).doc_ids[:10]
        assert set(reranked.ranking(query.id).doc_ids[:10]) == set(pool)
        expected = scorer.score(query.text, [csn_mini.document(d).full_text for d in pool])
        best = pool[int(np.argmax(expected))]
        assert reranked.ranking(query.id).doc_ids[0] == best


def test_missing_cross_encoder_is_explained(tmp_path):
    with pytest.raises(ModelUnavailableError, match="No cross-encoder ships offline"):
        CrossEncoderScorer(str(tmp_path / "absent")).score("q", ["d"])
