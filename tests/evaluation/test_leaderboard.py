"""Leaderboard tables: reusing saved runs, metric means, best cells and per-language means."""
import math

import pytest

from core.evaluation.leaderboard import (RUN_ID_COLUMN, TIME_COLUMN, best_rows, data_fingerprint, is_current, language_table,
                              leaderboard_table, profile_statuses, saved_runs_table, status_table)
from core.evaluation.metrics import evaluate, language_groups
from core.retrieval.profiles import Bm25Profile
from core.retrieval.runs import Ranking, Run, list_runs, save_run


@pytest.fixture
def bm25_run(csn_engine):
    return csn_engine.run("bm25-code")


def test_a_saved_run_of_the_same_profile_and_data_is_reused(csn_engine, bm25_run, tmp_path):
    save_run(bm25_run, tmp_path)
    saved = list_runs(tmp_path, csn_engine.dataset.name)
    statuses = profile_statuses(csn_engine.dataset, csn_engine.profiles, ["bm25-code", "dense-minilm"], saved)
    assert statuses[0].saved is not None and statuses[0].saved.run_id == saved[0].run_id
    assert statuses[1].needs_run
    table = status_table(statuses)
    assert list(table["state"]) == ["saved run", "needs a run"]


def test_changed_profile_parameters_or_depth_make_a_saved_run_stale(csn_engine, bm25_run, tmp_path):
    save_run(bm25_run, tmp_path)
    saved = list_runs(tmp_path)[0]
    assert is_current(saved, csn_engine.dataset, csn_engine.profile("bm25-code"))
    assert not is_current(saved, csn_engine.dataset, Bm25Profile("bm25-code", analyzer="code", k1=0.9))
    assert not is_current(saved, csn_engine.dataset, csn_engine.profile("bm25-code"), depth=10)


def test_a_saved_run_on_other_queries_is_stale(csn_engine, tmp_path):
    queries = csn_engine.dataset.judged_queries[:3]
    run = csn_engine.run("bm25-code", queries=queries)
    save_run(Run(run.name, run.rankings, run.dataset, run.profile, {**run.meta, "queries_hash": "other"}), tmp_path)
    assert not is_current(list_runs(tmp_path)[0], csn_engine.dataset, csn_engine.profile("bm25-code"))


def test_leaderboard_table_holds_metric_means_time_and_run_id(csn_engine, bm25_run):
    evaluation = evaluate(csn_engine.dataset.qrels, bm25_run, ["ndcg@10", "hit@10"])
    table = leaderboard_table([bm25_run], [evaluation], ["bm25-code"])
    assert table.loc["bm25-code", "ndcg@10"] == pytest.approx(evaluation.mean()["ndcg@10"], abs=1e-12)
    assert table.loc["bm25-code", TIME_COLUMN] == pytest.approx(bm25_run.meta["ms_per_query"])
    assert table.loc["bm25-code", RUN_ID_COLUMN] == ""


def test_best_rows_take_the_highest_metric_the_lowest_time_and_keep_ties():
    import pandas as pd

    table = pd.DataFrame({"ndcg@10": [0.5, 0.7, 0.7], TIME_COLUMN: [3.0, 1.0, math.nan]}, index=["a", "b", "c"])
    assert best_rows(table, ["ndcg@10", TIME_COLUMN]) == {"ndcg@10": ["b", "c"], TIME_COLUMN: ["b"]}


def test_language_table_gives_one_metric_per_run_and_the_query_count(cosqa_mini):
    rankings = {q.id: Ranking(tuple(cosqa_mini.qrels.positives(q.id)), (1.0,)) for q in cosqa_mini.judged_queries[:10]}
    perfect_on_ten = evaluate(cosqa_mini.qrels, Run("ten", rankings), ["hit@10"])
    empty = evaluate(cosqa_mini.qrels, Run("none", {}), ["hit@10"])
    table = language_table(cosqa_mini, [perfect_on_ten, empty], "hit@10", ["ten", "none"])
    groups = language_groups(cosqa_mini)
    assert list(table.columns) == ["ten", "none", "queries"]
    assert int(table["queries"].sum()) == len(groups)
    assert table["ten"].mul(table["queries"]).sum() == pytest.approx(10)
    assert (table["none"] == 0).all()


def test_saved_runs_table_says_whether_a_run_matches_the_current_data(csn_engine, bm25_run, tmp_path):
    save_run(bm25_run, tmp_path)
    save_run(Run("imported", {}, csn_engine.dataset.name, {"kind": "imported"}), tmp_path)
    table = saved_runs_table(list_runs(tmp_path), csn_engine.dataset)
    by_name = table.set_index("name")
    assert by_name.loc["bm25-code", "same data"] == True  # noqa: E712 - a numpy/pandas bool
    assert by_name.loc["imported", "same data"] is None
    assert by_name.loc["imported", "kind"] == "imported"


def test_data_fingerprint_changes_with_the_judgments(csn_mini):
    changed = csn_mini.subset([q.id for q in csn_mini.judged_queries[:5]])
    assert data_fingerprint(csn_mini) == data_fingerprint(csn_mini)
    assert data_fingerprint(changed) != data_fingerprint(csn_mini)


def test_a_fresh_run_takes_the_id_of_its_profiles_saved_run_so_the_report_names_it(csn_engine, bm25_run, tmp_path):
    from core.evaluation.leaderboard import with_saved_ids
    from core.evaluation.report import build_report

    saved = save_run(bm25_run, tmp_path / "runs")
    dense = csn_engine.run("dense-minilm")  # never saved: keeps no id
    runs = with_saved_ids([bm25_run, dense], csn_engine.dataset, csn_engine.profiles,
                          list_runs(tmp_path / "runs", csn_engine.dataset.name))
    assert bm25_run.run_id == "" and [r.run_id for r in runs] == [saved.run_id, ""]
    assert runs[0].rankings == bm25_run.rankings
    evaluations = [evaluate(csn_engine.dataset.qrels, run, ["ndcg@10"]) for run in runs]
    files = build_report(csn_engine.dataset, evaluations, runs, ["ndcg@10"], None, tmp_path / "report", failures_top_n=0)
    profiles_rows = [line for line in files.markdown.read_text().splitlines() if line.startswith("| bm25")]
    assert any(saved.run_id in line for line in profiles_rows)
