"""Dataset statistics and browsing: counts, lengths, languages, problems, filtering and paging."""
import json

import pandas as pd
import pytest

from core.data.catalog import list_datasets
from core.data.datasets import Dataset, Document, Qrels, Query, load_dataset
from core.errors import DatasetProblem
from core.evaluation.stats import (catalog_table, dataset_stats, document_rows, filter_rows, language_counts, length_summary,
                        length_table, page_count, page_of, problems_table, query_rows)


@pytest.fixture
def tiny() -> Dataset:
    documents = (Document("d1", "Read a file.", language="python"), Document("d2", "Open a socket now", "Net", "go"),
                 Document("d3", "Sum two numbers", language="python"))
    queries = (Query("q1", "def read(path): ...", "python"), Query("q2", "dial tcp"), Query("q3", "unjudged"))
    return Dataset("tiny", documents, queries, Qrels({"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}))


def test_stats_count_documents_queries_judged_queries_and_judgment_lines(tiny):
    stats = dataset_stats(tiny)
    assert (stats.documents, stats.queries, stats.judged_queries, stats.qrels) == (3, 3, 2, 3)
    assert stats.graded and stats.problems == 0


def test_binary_qrels_are_not_graded(csn_mini):
    stats = dataset_stats(csn_mini)
    assert (stats.documents, stats.queries, stats.judged_queries, stats.qrels, stats.graded) == (400, 40, 40, 40, False)


def test_length_table_counts_tokens_and_characters_of_documents_with_titles_and_queries(tiny):
    lengths = length_table(tiny).set_index("id")
    assert lengths.loc["d2", "characters"] == len("Net\nOpen a socket now")
    assert lengths.loc["d2", "tokens"] == 5
    assert lengths.loc["q1", "kind"] == "query" and lengths.loc["q1", "tokens"] == 3
    summary = length_summary(length_table(tiny))
    assert summary.loc["tokens max", "document"] == 5
    assert summary.loc["characters median", "query"] == len("dial tcp")
    assert list(summary.columns) == ["document", "query"]


def test_language_counts_split_documents_and_queries_and_name_missing_languages(tiny):
    counts = language_counts(tiny)
    assert counts.loc["python"].tolist() == [2, 1]
    assert counts.loc["go"].tolist() == [1, 0]
    assert counts.loc["(none)"].tolist() == [0, 2]
    assert list(counts.index)[0] == "python"


def test_problems_table_lists_file_line_and_message():
    table = problems_table([DatasetProblem("corpus.jsonl", 3, "bad JSON"), DatasetProblem("qrels/test.tsv", 0, "file missing")])
    assert table.to_dict("records")[0] == {"file": "corpus.jsonl", "line": 3, "message": "bad JSON"}


def test_problems_of_a_loaded_dataset_reach_the_table(tmp_path):
    folder = tmp_path / "broken"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\nnot json\n', encoding="utf-8")
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "ok"}\n', encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\nq1\td9\t1\n", encoding="utf-8")
    table = problems_table(load_dataset(folder).problems)
    assert list(table["file"]) == ["corpus.jsonl", "qrels/test.tsv"]
    assert list(table["line"]) == [2, 2]


def test_query_rows_pair_each_query_with_its_best_positive(tiny):
    rows = query_rows(tiny).set_index("query id")
    assert rows.loc["q1", "positive id"] == "d1" and rows.loc["q1", "positives"] == 1
    assert rows.loc["q2", "positive"] == "Net\nOpen a socket now"
    assert rows.loc["q3", "positive id"] == "" and rows.loc["q3", "positives"] == 0


def test_filter_is_case_insensitive_literal_and_blank_keeps_everything(tiny):
    documents = document_rows(tiny)
    assert list(filter_rows(documents, "SOCKET")["doc id"]) == ["d2"]
    assert list(filter_rows(documents, "a.")["doc id"]) == []  # "." is not a regex wildcard
    assert list(filter_rows(documents, "file.")["doc id"]) == ["d1"]
    assert len(filter_rows(documents, "  ")) == 3


def test_pages_cover_every_row_once_and_clamp_out_of_range_pages():
    table = pd.DataFrame({"n": range(10)})
    assert page_count(10, 4) == 3 and page_count(0, 4) == 1
    assert [list(page_of(table, page, 4)["n"]) for page in (1, 2, 3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(page_of(table, 99, 4)["n"]) == [8, 9]
    assert list(page_of(table, 0, 4)["n"]) == [0, 1, 2, 3]


def test_catalog_reads_counts_from_meta_json_and_leaves_them_blank_without_it(session_workspace, tmp_path):
    table = catalog_table(list_datasets(session_workspace)).set_index("name")
    assert (table.loc["csn-mini", "documents"], table.loc["csn-mini", "queries"], table.loc["csn-mini", "qrels"]) == (400, 40, 40)
    assert table.loc["csn-mini", "built"]
    from core.data.datasets import DatasetInfo

    folder = tmp_path / "nometa"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps(["not", "a", "dict"]), encoding="utf-8")
    row = catalog_table([DatasetInfo("nometa", folder, "workspace")]).iloc[0]
    assert pd.isna(row["documents"]) and not row["built"]
