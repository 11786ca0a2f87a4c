"""Saving, listing, loading runs; TREC import/export."""
import pytest

from core.errors import DatasetError, RunNotFoundError
from core.retrieval.runs import Ranking, Run, list_runs, load_run, read_trec, save_run, write_trec


def sample_run():
    return Run("bm25", {"q1": Ranking(("d1", "d2"), (2.5, 1.0)), "q2": Ranking((), ())}, "ds",
               {"kind": "bm25", "k1": 1.2}, {"seconds": 0.5, "corpus_hash": "abc"})


def test_saved_run_reopens_with_rankings_and_provenance(tmp_path):
    saved = save_run(sample_run(), tmp_path)
    again = load_run(tmp_path, saved.run_id)
    assert again.rankings == saved.rankings
    assert again.profile == {"kind": "bm25", "k1": 1.2} and again.meta["corpus_hash"] == "abc"
    assert [r.run_id for r in list_runs(tmp_path, "ds")] == [saved.run_id]


def test_truncated_run_file_does_not_hide_the_others(tmp_path):
    good = save_run(sample_run(), tmp_path)
    (tmp_path / "20990101-000000-broken.parquet").write_bytes(b"PAR1 not really")
    listed = {r.run_id: r for r in list_runs(tmp_path)}
    assert set(listed) == {good.run_id, "20990101-000000-broken"}
    assert not listed[good.run_id].damaged and listed["20990101-000000-broken"].damaged  # reported, not hidden


def test_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(RunNotFoundError, match="No saved run"):
        load_run(tmp_path, "nope")


def test_trec_round_trip_and_tie_order(tmp_path):
    path = write_trec(sample_run(), tmp_path / "run.trec")
    assert path.read_text().splitlines()[0] == "q1 Q0 d1 1 2.5 bm25"
    (tmp_path / "ties.trec").write_text("q Q0 a 1 1.0 t\nq Q0 c 2 1.0 t\nq Q0 b 3 2.0 t\n")
    assert read_trec(tmp_path / "ties.trec").ranking("q").doc_ids == ("b", "c", "a")  # trec_eval: ties by doc id, descending


def test_malformed_trec_file_names_the_line(tmp_path):
    (tmp_path / "bad.trec").write_text("q Q0 a 1 1.0 t\nq Q0 b two 2.0\n")
    with pytest.raises(DatasetError, match="bad.trec:2"):
        read_trec(tmp_path / "bad.trec")
