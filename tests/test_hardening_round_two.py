"""Reliability, round two: the inputs an outside tester used to break the workbench after the first round.

Each test names the issue item it covers; docs/reliability.md counts them. Every one failed before its fix.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from core.cli.main import main
from core.data.archives import MAX_QRELS_FILES, import_zip
from core.data.catalog import names_held_elsewhere, open_dataset
from core.data.datasets import load_dataset
from core.errors import DatasetError, OptionError, ProfileError, RunCorruptError, UnsafeArchiveError
from core.evaluation.leaderboard import is_current, profile_statuses
from core.index.lexical import open_lexical_index
from core.retrieval.engine import Engine
from core.retrieval.limits import check_number, parse_cutoffs
from core.retrieval.profiles import HybridProfile, default_profiles
from core.retrieval.runs import list_runs, load_run, save_run
from core.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]

# Docstring-like documents; the last one's text is what item 7's terminal escapes hide in.
DOCS = [("d1", "Read a JSON file and return the parsed object."), ("d2", "Write rows to a CSV file with a header."),
        ("d3", "Compute the SHA-256 digest of a file in chunks."), ("d4", "Parse command line arguments for the tool.")]


def write_beir(folder: Path, corpus_lines: list[str], query_lines: list[str], qrels: list[tuple[str, str, int]]) -> Path:
    """A BEIR folder from raw JSON lines (so they may hold escapes ``json.dumps`` would never write)."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(corpus_lines) + "\n", encoding="utf-8")
    (folder / "queries.jsonl").write_text("\n".join(query_lines) + "\n", encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in qrels),
                                              encoding="utf-8")
    return folder


def plain_docs() -> list[str]:
    return [json.dumps({"_id": doc_id, "text": text}) for doc_id, text in DOCS]


def cli(capsys, workspace: Workspace, *args: str) -> tuple[int, str, str]:
    code = main(["--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str) -> bool:
    return code == 2 and err.startswith("error: ") and err.strip().count("\n") == 0 and "Traceback" not in err


# ---- 1. lone surrogates ------------------------------------------------------------------------------------------
@pytest.fixture
def surrogate_workspace(tmp_path) -> Workspace:
    """A data dir whose corpus and queries hold JSON-escaped lone surrogates (``\\ud800``, ``\\udfff``)."""
    corpus = plain_docs() + ['{"_id": "d5", "title": "bad \\udfff title", "text": "Open a file \\ud800 and read its lines."}']
    queries = ['{"_id": "q1", "text": "read lines from a file \\ud800"}', '{"_id": "q2", "text": "sha256 digest of a file"}']
    write_beir(tmp_path / "data" / "lone", corpus, queries, [("q1", "d5", 1), ("q2", "d3", 1)])
    return Workspace.open(tmp_path / "workspace", tmp_path / "data")


def test_lone_surrogates_are_replaced_at_load_so_the_text_is_valid_unicode(surrogate_workspace):
    dataset = open_dataset(surrogate_workspace, "lone")
    document = dataset.document("d5")
    assert document.text == "Open a file ? and read its lines." and document.title == "bad ? title"
    assert dataset.query("q1").text == "read lines from a file ?"
    for text in [d.full_text for d in dataset.documents] + [q.text for q in dataset.queries]:
        text.encode("utf-8")  # raised UnicodeEncodeError before


def test_dense_and_hybrid_profiles_rank_a_corpus_that_held_lone_surrogates(surrogate_workspace):
    dataset = open_dataset(surrogate_workspace, "lone")
    profiles = {name: p for name, p in default_profiles().items() if name in ("bm25-code", "dense-minilm", "hybrid-rrf")}
    engine = Engine(surrogate_workspace, dataset, profiles)
    for name in ("bm25-code", "dense-minilm", "hybrid-rrf"):  # the tokenizer raised TypeError here
        run = engine.run(name)
        assert run.ranking("q1").doc_ids[0] == "d5", name
        assert engine.search(name, "open a file and read its lines").ranking.doc_ids[0] == "d5", name


def test_cli_search_prints_a_document_that_held_a_lone_surrogate(surrogate_workspace):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "core", "--workspace", str(surrogate_workspace.root), "--data-dir",
                             str(surrogate_workspace.data_dir), "search", "--dataset", "lone", "--profile", "bm25-code",
                             "open file read lines"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "d5" in result.stdout and "Open a file ? and read its lines." in result.stdout


def test_a_zip_whose_corpus_holds_lone_surrogates_imports_cleaned(surrogate_workspace, tmp_path):
    archive = tmp_path / "lone.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (surrogate_workspace.data_dir / "lone").rglob("*"):
            if path.is_file():
                zf.write(path, f"lone2/{path.relative_to(surrogate_workspace.data_dir / 'lone').as_posix()}")
    folder = import_zip(archive, surrogate_workspace.datasets_dir)
    assert load_dataset(folder).document("d5").text == "Open a file ? and read its lines."


# ---- 2. saved runs carry a checksum --------------------------------------------------------------------------------
def test_every_flipped_byte_of_a_saved_run_is_detected_or_harmless(tmp_path, csn_engine):
    """Flip one byte at a time across the whole file: the run is reported damaged (and not current), or reads back identical."""
    saved = save_run(csn_engine.run("bm25-code"), tmp_path)
    path = tmp_path / f"{saved.run_id}.parquet"
    original_bytes = path.read_bytes()
    original = load_run(tmp_path, saved.run_id)
    profile = csn_engine.profile("bm25-code")
    assert is_current(list_runs(tmp_path)[0], csn_engine.dataset, profile)
    detected = harmless = 0
    for position in range(0, len(original_bytes), max(1, len(original_bytes) // 400)):
        damaged = bytearray(original_bytes)
        damaged[position] ^= 0x5A
        path.write_bytes(bytes(damaged))
        [listed] = list_runs(tmp_path)
        if listed.damaged:
            detected += 1
            assert not is_current(listed, csn_engine.dataset, profile)
            assert profile_statuses(csn_engine.dataset, csn_engine.profiles, ["bm25-code"], [listed])[0].needs_run
            with pytest.raises(RunCorruptError, match="damaged"):
                load_run(tmp_path, saved.run_id)
        else:
            harmless += 1
            reread = load_run(tmp_path, saved.run_id)
            assert reread.rankings == original.rankings and reread.meta == original.meta, f"byte {position} changed the run unnoticed"
    path.write_bytes(original_bytes)
    print(f"run file of {len(original_bytes):,} bytes: {detected + harmless} flips, {detected} detected, {harmless} harmless")
    assert detected > 300 and detected + harmless > 390


def test_a_damaged_run_is_listed_as_damaged_and_export_says_so_in_one_line(capsys, session_workspace, csn_engine, tmp_path):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    saved = save_run(csn_engine.run("bm25-code"), workspace.runs_dir)
    path = workspace.runs_dir / f"{saved.run_id}.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out, _ = cli(capsys, workspace, "runs")
    assert code == 0 and f"{saved.run_id}" in out and "DAMAGED" in out
    code, _, err = cli(capsys, workspace, "export", "--run", saved.run_id, "--out", str(tmp_path / "x.trec"))
    assert one_line_error(code, err) and "damaged" in err
    assert not (tmp_path / "x.trec").exists()


# ---- 4. imports cannot take a name another source holds -------------------------------------------------------------
def small_zip(path: Path, folder_name: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{folder_name}/corpus.jsonl", "\n".join(plain_docs()) + "\n")
        zf.writestr(f"{folder_name}/queries.jsonl", '{"_id": "q1", "text": "json file"}\n')
        zf.writestr(f"{folder_name}/qrels/test.tsv", "q1\td1\t1\n")
    return path


@pytest.mark.parametrize("name,where", [("cosqa-mini", "data directory"), ("stdlib-code2doc", "built-in")])
def test_an_import_named_like_a_bundled_or_builtin_set_is_refused_even_with_overwrite(workspace, tmp_path, name, where):
    archive = small_zip(tmp_path / "x.zip", "x")
    for overwrite in (False, True):
        with pytest.raises(DatasetError, match=where) as caught:
            import_zip(archive, workspace.datasets_dir, name=name, overwrite=overwrite, reserved=names_held_elsewhere(workspace))
        assert "--name" in str(caught.value)
    assert not (workspace.datasets_dir / name).exists()


def test_cli_import_zip_refuses_a_bundled_name_from_the_zip_folder_and_names_the_flags(capsys, workspace, tmp_path):
    code, _, err = cli(capsys, workspace, "import-zip", str(small_zip(tmp_path / "c.zip", "csn-mini")))
    assert one_line_error(code, err) and "data directory" in err and "--name" in err
    code, out, _ = cli(capsys, workspace, "import-zip", str(small_zip(tmp_path / "c.zip", "csn-mini")), "--name", "csn-mine")
    assert code == 0 and "csn-mine" in out
    code, _, err = cli(capsys, workspace, "import-zip", str(tmp_path / "c.zip"), "--name", "csn-mine")
    assert one_line_error(code, err) and "--overwrite" in err and "--name" in err
    code, out, _ = cli(capsys, workspace, "datasets")
    assert [line.split()[1] for line in out.splitlines() if line.startswith("csn-mini ")] == ["data-dir"]


# ---- 6. zip bombs of many small members; streaming validation --------------------------------------------------------
def bomb_of_small_qrels(path: Path, files: int, size: int) -> Path:
    """A valid dataset plus ``files`` qrels splits, each ``size`` bytes of one repeated valid line (under the 1 MiB floor)."""
    line = b"q1\td1\t1\n"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("b/corpus.jsonl", "\n".join(plain_docs()) + "\n")
        zf.writestr("b/queries.jsonl", '{"_id": "q1", "text": "json file"}\n')
        for number in range(files):
            zf.writestr(f"b/qrels/split{number:04d}.tsv", line * (size // len(line)))
    return path


def test_many_small_qrels_files_are_capped_in_number(workspace, tmp_path):
    archive = bomb_of_small_qrels(tmp_path / "many.zip", MAX_QRELS_FILES + 1, 1000)
    with pytest.raises(UnsafeArchiveError, match="qrels files"):
        import_zip(archive, workspace.datasets_dir)
    assert list(workspace.datasets_dir.iterdir()) == []


def test_small_members_count_toward_the_compression_ratio(workspace, tmp_path):
    """40 members of 900 KiB each (36 MiB from a zip of about 60 KB): each is under the per-member floor, together a bomb."""
    archive = bomb_of_small_qrels(tmp_path / "ratio.zip", 40, 900 * 1024)
    assert archive.stat().st_size < 100_000
    with pytest.raises(UnsafeArchiveError, match="together"):
        import_zip(archive, workspace.datasets_dir)
    assert list(workspace.datasets_dir.iterdir()) == []


def test_validating_a_large_corpus_streams_instead_of_loading_it(workspace, tmp_path):
    """16 MiB of corpus text (4,096 documents of 4 KiB) is checked with a few MiB of Python memory: ids, not text."""
    rng_words = [f"w{i}" for i in range(5000)]
    lines = [json.dumps({"_id": f"d{i}", "text": " ".join(rng_words[(i * 7 + j) % 5000] for j in range(800))[:4096]})
             for i in range(4096)]
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big/corpus.jsonl", "\n".join(lines) + "\n")
        zf.writestr("big/queries.jsonl", '{"_id": "q1", "text": "w1 w2"}\n')
        zf.writestr("big/qrels/test.tsv", "q1\td1\t1\n")
    corpus_bytes = sum(len(line) + 1 for line in lines)
    assert corpus_bytes > 16 * 1024**2
    tracemalloc.start()
    try:
        folder = import_zip(archive, workspace.datasets_dir)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (folder / "corpus.jsonl").stat().st_size == corpus_bytes
    assert peak < 5 * 1024**2, f"validation held {peak / 1024**2:.1f} MiB for a {corpus_bytes / 1024**2:.1f} MiB corpus"


# ---- 7. terminal escapes -------------------------------------------------------------------------------------------
def test_cli_search_shows_control_characters_in_documents_as_escapes(capsys, tmp_path):
    hostile = "Retitle \x1b]0;pwned\x07 and clear \x1b[2J\x1b[H the screen \x9b31m via \u202e bidi"
    corpus = plain_docs() + [json.dumps({"_id": "d5", "text": "read a json file " + hostile})]
    write_beir(tmp_path / "data" / "esc", corpus, ['{"_id": "q1", "text": "json file"}'], [("q1", "d1", 1)])
    workspace = Workspace.open(tmp_path / "ws", tmp_path / "data")
    code, out, _ = cli(capsys, workspace, "search", "--dataset", "esc", "--profile", "bm25-code", "read json file")
    assert code == 0 and "d5" in out
    assert not any(char in out for char in "\x1b\x07\x9b\u202e")
    assert "\\x1b]0;pwned\\x07" in out and "\\x1b[2J" in out and "\\u202e" in out


# ---- 9. ordinary mistakes --------------------------------------------------------------------------------------------
def test_missing_files_and_folders_are_one_line_errors(capsys, session_workspace, csn_engine, tmp_path):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    code, _, err = cli(capsys, workspace, "import-run", str(tmp_path / "nonexistent.trec"), "--dataset", "csn-mini")
    assert one_line_error(code, err) and "does not exist" in err
    code, _, err = cli(capsys, workspace, "import-run", str(tmp_path), "--dataset", "csn-mini")
    assert one_line_error(code, err)
    saved = save_run(csn_engine.run("bm25-code"), workspace.runs_dir)
    code, _, err = cli(capsys, workspace, "export", "--run", saved.run_id, "--out", str(tmp_path / "missing" / "dir" / "x.trec"))
    assert one_line_error(code, err) and "Cannot write" in err


def test_non_utf8_bytes_on_stdin_are_searched_not_a_traceback(session_workspace, csn_engine):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "core", "--workspace", str(session_workspace.root), "--data-dir",
                             str(session_workspace.data_dir), "search", "--dataset", "csn-mini", "--profile", "bm25-code", "-"],
                            input=b"def read\xff\xfe_json(path): return json.load(\xc3(open(path)))", capture_output=True,
                            cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    assert b"bm25-code: 10 results" in result.stdout


# ---- 10. numbers ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,option", [
    (["evaluate", "--dataset", "csn-mini", "--profiles", "bm25-code", "--depth", "-5", "--no-save"], "--depth"),
    (["evaluate", "--dataset", "csn-mini", "--profiles", "bm25-code", "--depth", "0", "--no-save"], "--depth"),
    (["search", "--dataset", "csn-mini", "-k", "-3", "json"], "-k"),
    (["search", "--dataset", "csn-mini", "-k", "0", "json"], "-k"),
    (["compare", "--dataset", "csn-mini", "--alpha", "1.5"], "--alpha"),
    (["sweep", "--dataset", "csn-mini", "--what", "pool", "--values", "10,-1"], "--values"),
    (["sweep", "--dataset", "csn-mini", "--what", "weight", "--values", "0.5,1.5"], "--values"),
    (["audit", "--train", "csn-mini", "--eval", "cosqa-mini", "--threshold", "2"], "--threshold"),
])
def test_numeric_options_out_of_range_are_refused_with_a_message(capsys, session_workspace, args, option):
    code, out, err = cli(capsys, session_workspace, *args)
    assert one_line_error(code, err) and option in err and "must be" in err
    assert "0.0000" not in out and "0 results" not in out


def test_the_engine_refuses_a_depth_that_retrieves_nothing(csn_engine):
    for depth in (-5, 0, 1.5):
        with pytest.raises(OptionError):
            csn_engine.run("bm25-code", depth=depth)
        with pytest.raises(OptionError):
            csn_engine.search("bm25-code", "read json", depth=depth)


def test_check_number_bounds_and_cutoff_parsing():
    assert check_number("depth", "100") == 100 and check_number("weight", "0.25") == 0.25
    for kind, value in [("depth", "-5"), ("depth", "nan"), ("depth", "2.5"), ("k", "inf"), ("weight", "-0.1"),
                        ("pool", "1001"), ("cutoff", "0"), ("alpha", "0"), ("depth", True)]:
        with pytest.raises(OptionError, match="must be"):
            check_number(kind, value)
    assert parse_cutoffs("5, 20,5,,x,0") == ([5, 20], ["cutoff k must be a whole number from 1 to 1,000, not 'x'.",
                                                       "cutoff k must be a whole number from 1 to 1,000, not '0'."])


def test_hybrid_weights_must_be_finite_and_not_negative():
    for weights in ((-0.3, 1.3), (float("nan"), 1.0), (0.0, 0.0)):
        with pytest.raises(ProfileError):
            HybridProfile("h", members=("a", "b"), method="weighted", weights=weights).validate()
    HybridProfile("h", members=("a", "b"), method="weighted", weights=(0.3, 0.7)).validate()


# ---- 11. smaller ---------------------------------------------------------------------------------------------------
def test_a_dataset_folder_without_queries_says_which_file_is_missing(capsys, tmp_path):
    folder = write_beir(tmp_path / "data" / "half", plain_docs(), ['{"_id": "q1", "text": "json"}'], [("q1", "d1", 1)])
    (folder / "queries.jsonl").unlink()
    workspace = Workspace.open(tmp_path / "ws", tmp_path / "data")
    code, _, err = cli(capsys, workspace, "evaluate", "--dataset", "half")
    assert code == 2 and "missing queries.jsonl" in err and "No dataset named" not in err
    code, _, err = cli(capsys, workspace, "evaluate", "--dataset", "ghost")
    assert code == 2 and "No dataset named 'ghost'" in err


def test_cli_says_how_many_rows_were_skipped_in_all(capsys, tmp_path):
    bad = [f'{{"_id": "x{i}", "text": 5}}' for i in range(15)]
    write_beir(tmp_path / "data" / "bad", plain_docs() + bad, ['{"_id": "q1", "text": "json file"}'], [("q1", "d1", 1)])
    workspace = Workspace.open(tmp_path / "ws", tmp_path / "data")
    code, _, err = cli(capsys, workspace, "search", "--dataset", "bad", "--profile", "bm25-code", "json")
    assert code == 0
    assert err.count("warning: skipped corpus.jsonl:") == 10
    assert "and 5 more: 15 rows skipped in all" in err


def test_a_rebuild_after_damage_says_rebuilt_and_where_the_damage_was(tmp_path, csn_mini, mini_data_dir):
    workspace = Workspace.open(tmp_path / "ws", mini_data_dir)
    _, first = open_lexical_index(workspace, csn_mini, "code")
    assert str(first).endswith(")") and ": built in" in str(first) and "damage" not in str(first)
    index, _ = open_lexical_index(workspace, csn_mini, "code")
    (index.path / "codeir-index.json").write_text("{garbage")
    _, repaired = open_lexical_index(workspace, csn_mini, "code")
    assert ": rebuilt in" in str(repaired) and "damage found" in str(repaired) and str(index.path) in str(repaired)


def test_numba_caches_its_code_in_a_user_cache_folder_not_in_the_source_tree(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    before = {p for p in ROOT.joinpath("core").rglob("*.nb[ic]")}
    script = ("import numpy as np\n"
              "from collections import Counter\n"
              "from core.index.bm25_batch import TermMatrixBuilder, bm25_top_k\n"
              "builder = TermMatrixBuilder()\n"
              "for tokens in (['read', 'json'], ['write', 'csv'], ['json', 'dump']):\n"
              "    builder.add(tokens)\n"
              "hits = bm25_top_k(builder.build(), [Counter(['json'])], 2)\n"
              "print(sorted(hits.query(0)[0].tolist()))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 2]"
    cached = list((tmp_path / "cache" / "codeir-workbench" / "numba").rglob("*.nbi"))
    assert cached, "numba wrote its index files into the user cache folder"
    assert {p for p in ROOT.joinpath("core").rglob("*.nb[ic]")} == before, "nothing new under core/"
