"""The explorer's view of one query: benchmark rankings equal the full run's, tables mark the relevant document."""
import pytest

from core.data.datasets import Query
from core.retrieval.explore import RELEVANT_MARK, positive_ranks, query_label, rank_summary, ranked_documents, search_benchmark_query
from core.retrieval.runs import Ranking


@pytest.mark.parametrize("profile", ["bm25-code", "dense-minilm", "hybrid-rrf", "rerank-fusion"])
def test_benchmark_query_ranking_equals_the_profiles_full_run(csn_engine, profile):
    full_run = csn_engine.run(profile)
    for query in csn_engine.dataset.judged_queries[:5]:
        result = search_benchmark_query(csn_engine, profile, query.id)
        assert result.ranking.doc_ids == full_run.ranking(query.id).doc_ids
        assert result.ranking.scores == full_run.ranking(query.id).scores
        assert result.seconds == pytest.approx(full_run.meta["seconds"] / full_run.meta["queries"])


def test_an_unjudged_benchmark_query_is_retrieved_alone(csn_engine):
    from core.retrieval.engine import Engine

    dataset = csn_engine.dataset
    extra = Query("unjudged", dataset.judged_queries[0].text)
    engine = Engine(csn_engine.workspace, dataset.__class__(dataset.name, dataset.documents, (*dataset.queries, extra),
                                                           dataset.qrels, dataset.split), csn_engine.profiles)
    result = search_benchmark_query(engine, "bm25-code", "unjudged")
    assert result.ranking == csn_engine.search("bm25-code", extra.text).ranking


def test_ranked_documents_mark_the_relevant_document_with_its_rank_text_and_shared_terms(csn_mini):
    positive = csn_mini.qrels.positives(csn_mini.judged_queries[0].id)[0]
    other = next(d.id for d in csn_mini.documents if d.id != positive)
    ranking = Ranking((other, positive), (2.0, 1.0))
    query_text = csn_mini.document(positive).text  # shares every word with the positive
    table = ranked_documents(csn_mini, ranking, query_text, k=10, positives=[positive])
    assert list(table["doc id"]) == [other, positive]
    assert list(table["rank"]) == [1, 2]
    assert list(table["relevant"]) == ["", RELEVANT_MARK]
    assert table.loc[1, "document"] == csn_mini.document(positive).full_text
    assert table.loc[1, "shared"] != ""


def test_ranked_documents_stop_at_k():
    from core.data.datasets import Dataset, Document, Qrels

    dataset = Dataset("tiny", tuple(Document(f"d{i}", f"text {i}") for i in range(5)), (Query("q", "text"),), Qrels({"q": {"d0": 1}}))
    ranking = Ranking(tuple(f"d{i}" for i in range(5)), (5.0, 4.0, 3.0, 2.0, 1.0))
    assert len(ranked_documents(dataset, ranking, "text", k=3)) == 3


def test_positive_ranks_report_missing_documents_as_none():
    ranking = Ranking(("a", "b", "c"), (3.0, 2.0, 1.0))
    assert positive_ranks(ranking, ["c", "z"]) == {"c": 3, "z": None}
    assert rank_summary(3) == "rank 3"
    assert rank_summary(None, 100) == "not in top 100"


def test_query_label_shows_the_id_and_first_non_empty_line_cut_to_width():
    query = Query("q7", "\n\ndef very_long_function_name(argument_one, argument_two):\n    pass")
    assert query_label(query).startswith("q7 — def very_long_function_name(")
    assert len(query_label(query, width=20)) == 20 and query_label(query, width=20).endswith("…")
