"""Review of issue 15's fixes: inputs an outside tester tried beyond those of tests/test_hardening_round_two.py.

Each test failed before the fix its commit describes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli.main import main
from core.data.datasets import load_dataset
from core.errors import OptionError
from core.retrieval.limits import check_number
from core.workspace import Workspace
from tests.test_hardening_round_two import cli, one_line_error

HUGE = "1" + "0" * 400  # an int Python parses but float() cannot hold




def write_beir(folder: Path, corpus: list[dict], queries: list[dict], qrels_text: str) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(row) + "\n" for row in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(qrels_text, encoding="utf-8")
    return folder


# ---- item 10: numbers too large for a float ----------------------------------------------------------------------
def test_check_number_refuses_an_integer_too_large_for_a_float_with_a_message():
    for kind in ("depth", "k", "count", "cutoff"):
        with pytest.raises(OptionError, match="must be"):
            check_number(kind, int(HUGE))
        with pytest.raises(OptionError, match="must be"):
            check_number(kind, HUGE)


@pytest.mark.parametrize("args, option", [
    (["search", "--dataset", "csn-mini", "-k", HUGE, "json"], "-k"),
    (["evaluate", "--dataset", "csn-mini", "--profiles", "bm25-code", "--depth", HUGE, "--no-save"], "--depth"),
    (["finetune", "--train", "csn-mini", "--output", "m", "--seed", str(2**64)], "--seed"),
    (["finetune", "--train", "csn-mini", "--output", "m", "--seed", str(-2**63 - 1)], "--seed"),
])
def test_cli_refuses_huge_numbers_and_seeds_torch_cannot_take_in_one_line(capsys, workspace, args, option):
    code, out, err = cli(capsys, workspace, *args)
    assert one_line_error(code, err) and option in err and "must be" in err, err


def test_a_large_seed_within_bounds_is_kept_exactly():
    assert check_number("seed", str(2**63 + 1)) == 2**63 + 1 and check_number("seed", 2**32 + 7) == 2**32 + 7


# ---- item 1 (hostile dataset text): qrels grades a float cannot make an int of -----------------------------------
@pytest.mark.parametrize("grade", ["inf", "-inf", "1e400"])
def test_a_qrels_grade_of_infinity_is_a_skipped_row_not_a_crash(tmp_path, grade):
    folder = write_beir(tmp_path / "inf", [{"_id": "d1", "text": "read a file"}, {"_id": "d2", "text": "write a file"}],
                        [{"_id": "q1", "text": "read"}, {"_id": "q2", "text": "write"}],
                        f"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t{grade}\n")
    dataset = load_dataset(folder)
    assert dataset.qrels.judgments == {"q1": {"d1": 1}}
    assert [(p.line, "not a" in p.message) for p in dataset.problems] == [(3, True)]


# ---- item 6: an archive of very many tiny entries ----------------------------------------------------------------
def test_an_archive_of_very_many_entries_is_refused_before_zipfile_holds_them_all(tmp_path):
    import struct
    import tracemalloc
    import zipfile

    from core.data.archives import import_zip
    from core.errors import UnsafeArchiveError

    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("corpus.jsonl", '{"_id": "d1", "text": "x"}\n')
        for number in range(40_000):
            archive.writestr(f"{number:x}", b"")
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 1, 1)  # the end record claims one entry: zipfile walks them all anyway
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchiveError, match="entries"):
            import_zip(path, tmp_path / "datasets")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024**2, f"{peak:,} bytes held to refuse a zip of 40,000 entries"
    assert not (tmp_path / "datasets").exists() or not any((tmp_path / "datasets").iterdir())


# ---- items 1 and 7: a terminal that cannot show every character ---------------------------------------------------
def test_search_prints_to_a_latin1_terminal_what_it_cannot_encode_as_escapes(tmp_path, monkeypatch):
    import io
    import sys

    write_beir(tmp_path / "data" / "wide", [{"_id": "d1", "text": "def total(xs): return sum(xs)  # 合計 \u202e"},
                                            {"_id": "d2", "text": "def diff(a, b): return a - b"}],
               [{"_id": "q1", "text": "sum"}], "q1\td1\t1\n")
    raw = io.BytesIO()
    terminal = io.TextIOWrapper(raw, encoding="latin-1")  # what PYTHONIOENCODING=latin-1 or a latin-1 locale gives
    monkeypatch.setattr(sys, "stdout", terminal)
    code = main(["--workspace", str(tmp_path / "ws"), "--data-dir", str(tmp_path / "data"),
                 "search", "--dataset", "wide", "--profile", "bm25-code", "total sum"])
    terminal.flush()
    out = raw.getvalue().decode("latin-1")
    assert code == 0
    assert "d1" in out and "\\u5408\\u8a08" in out and "\\u202e" in out, out


# ---- item 10: numbers inside profiles (profiles.toml takes nan and inf) --------------------------------------------
@pytest.mark.parametrize("kind, field, value", [
    ("hybrid", "rrf_k", float("nan")), ("hybrid", "rrf_k", float("inf")), ("hybrid", "rrf_k", -1),
    ("hybrid", "candidate_depth", float("inf")), ("hybrid", "candidate_depth", 2.5), ("hybrid", "candidate_depth", float("nan")),
    ("rerank", "pool_depth", 2.5), ("rerank", "pool_depth", float("nan")),
])
def test_profile_numbers_nan_inf_or_fractional_are_refused_by_name(kind, field, value):
    from core.errors import ProfileError
    from core.retrieval.profiles import profile_from_dict

    base = {"hybrid": {"members": ["bm25-code", "bm25-plain"]}, "rerank": {"first_stage": "bm25-code"}}[kind]
    with pytest.raises(ProfileError, match=f"p: {field} must be"):
        profile_from_dict({"kind": kind, **base, field: value}, name="p")


def test_a_hybrid_from_profiles_toml_with_infinite_candidate_depth_is_one_error_line(capsys, tmp_path):
    write_beir(tmp_path / "data" / "small", [{"_id": "d1", "text": "read a file"}, {"_id": "d2", "text": "write a file"}],
               [{"_id": "q1", "text": "read"}], "q1\td1\t1\n")
    workspace = Workspace.open(tmp_path / "ws", tmp_path / "data")
    workspace.profiles_file.write_text('[profiles.h]\nkind = "hybrid"\nmembers = ["bm25-code", "bm25-plain"]\n'
                                       'candidate_depth = inf\n\n[profiles.bm25-code]\nkind = "bm25"\n\n'
                                       '[profiles.bm25-plain]\nkind = "bm25"\nanalyzer = "plain"\n')
    code, out, err = cli(capsys, workspace, "evaluate", "--dataset", "small", "--profiles", "h", "--no-save")
    assert one_line_error(code, err) and "candidate_depth" in err, err


# ---- item 10: a NaN score in an imported TREC run ------------------------------------------------------------------
def test_an_imported_trec_run_with_a_nan_score_is_refused_naming_the_line(tmp_path):
    from core.errors import DatasetError
    from core.retrieval.runs import read_trec

    path = tmp_path / "nan.trec"
    path.write_text("q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 nan t\nq1 Q0 d3 3 1.0 t\n")
    with pytest.raises(DatasetError) as caught:
        read_trec(path)
    assert [(p.line, "score 'nan'" in p.message) for p in caught.value.problems] == [(2, True)]


def test_an_imported_trec_run_keeps_infinite_scores_in_order(tmp_path):
    from core.retrieval.runs import read_trec

    path = tmp_path / "inf.trec"
    path.write_text("q1 Q0 d1 1 inf t\nq1 Q0 d2 2 1.0 t\nq1 Q0 d3 3 -inf t\n")
    assert read_trec(path).rankings["q1"].doc_ids == ("d1", "d2", "d3")


# ---- item 7: argparse's own error line echoes what it did not recognise -------------------------------------------
def test_an_unrecognized_argument_holding_escapes_is_echoed_escaped(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["--workspace", str(tmp_path / "ws"), "datasets", "\x1b]0;pwned\x07\x1b[2J\u202e"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "unrecognized arguments" in err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err and "\\x1b]0;pwned\\x07" in err, err


# ---- hostile data-directory datasets: a meta.json nested past Python's recursion limit ----------------------------
def test_the_catalog_lists_a_dataset_whose_meta_json_is_nested_too_deeply(tmp_path):
    from core.data.catalog import list_datasets
    from core.evaluation.stats import catalog_table

    folder = write_beir(tmp_path / "data" / "deep", [{"_id": "d1", "text": "read a file"}], [{"_id": "q1", "text": "read"}],
                        "q1\td1\t1\n")
    (folder / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    infos = [info for info in list_datasets(Workspace.open(tmp_path / "ws", tmp_path / "data")) if info.name == "deep"]
    table = catalog_table(infos)
    assert table["name"].tolist() == ["deep"] and table["documents"].isna().all()


def test_a_download_onto_a_folder_whose_meta_json_is_nested_too_deeply_is_refused_in_one_message(tmp_path):
    from core.data.hub import download_nano_dataset
    from core.errors import DatasetError

    folder = write_beir(tmp_path / "datasets" / "taken", [{"_id": "d1", "text": "read a file"}],
                        [{"_id": "q1", "text": "read"}], "q1\td1\t1\n")
    (folder / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DatasetError, match="taken"):
        download_nano_dataset("owner/repo", "sub", tmp_path / "datasets", name="taken", source_dir=tmp_path / "nowhere")


# ---- item 6: streaming validation and one enormous line -----------------------------------------------------------
def test_a_corpus_line_past_the_limit_is_a_skipped_row_read_in_bounded_memory(tmp_path):
    import tracemalloc

    from core.data.datasets import MAX_LINE_BYTES, check_dataset

    folder = write_beir(tmp_path / "long", [{"_id": "d1", "text": "read a file"}], [{"_id": "q1", "text": "read"}],
                        "q1\td1\t1\n")
    huge = json.dumps({"_id": "d2", "text": "x" * (MAX_LINE_BYTES + MAX_LINE_BYTES // 2)})
    with (folder / "corpus.jsonl").open("a", encoding="utf-8") as corpus:
        corpus.write(huge + "\n" + json.dumps({"_id": "d3", "text": "write a file"}) + "\n")
    tracemalloc.start()
    try:
        check_dataset(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_LINE_BYTES * 1.25, f"{peak:,} bytes to check a corpus with a {len(huge):,}-byte line"
    dataset = load_dataset(folder)
    assert [d.id for d in dataset.documents] == ["d1", "d3"]
    assert [(p.file, p.line, "longer than the limit" in p.message) for p in dataset.problems] == [("corpus.jsonl", 2, True)]
    assert f"line of {len(huge) + 1:,} bytes" in dataset.problems[0].message


def test_a_corpus_line_of_several_mebibytes_under_the_limit_loads_intact(tmp_path):
    text = "def f():\n    return 1\n" * 150_000  # 3.3 MB: read in several 1 MiB pieces
    folder = write_beir(tmp_path / "big", [{"_id": "d1", "text": text}, {"_id": "d2", "text": "b"}],
                        [{"_id": "q1", "text": "f"}], "q1\td1\t1")  # a last qrels line without newline
    dataset = load_dataset(folder)
    assert dataset.documents[0].text == text and dataset.problems == () and dataset.qrels.judgments == {"q1": {"d1": 1}}


# ---- item 2: a run saved before checksums, whose header nothing vouches for -------------------------------------------
def test_a_run_without_checksum_whose_header_has_wrong_types_is_listed_as_damaged(capsys, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.retrieval.runs import list_runs

    workspace = Workspace.open(tmp_path / "ws", tmp_path / "data")
    workspace.runs_dir.mkdir(parents=True, exist_ok=True)
    table = pa.table({"query_id": ["q1"], "doc_id": ["d1"], "rank": pa.array([1], pa.int32()), "score": [1.0]})
    for run_id, header in [("20260101-000000-aaaaaa", {"meta": {"ms_per_query": "x"}, "profile": {}}),
                           ("20260101-000000-bbbbbb", {"meta": {}, "profile": [1]})]:
        header = {"name": "old", "dataset": "g", "run_id": run_id, "queries": ["q1"], **header}
        pq.write_table(table.replace_schema_metadata({b"codeir.run": json.dumps(header).encode()}),
                       workspace.runs_dir / f"{run_id}.parquet")
    assert [bool(saved.damage) for saved in list_runs(workspace.runs_dir)] == [True, True]
    code, out, err = cli(capsys, workspace, "runs")
    assert code == 0 and err == "" and out.count("DAMAGED") == 2 and "of the wrong type" in out, (out, err)
