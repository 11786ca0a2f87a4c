"""Hub loader: NanoBEIR-style parquet files on local disk, laid out as the hub repos lay them out.

The hub itself cannot be reached here, so the network tests check that an offline, refusing or
silent hub ends in a one-line DatasetError quickly, never a hang or a traceback.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.data.datasets import Dataset, load_dataset
from core.errors import DatasetError
from core.data.hub import (NANOCOIR_REPO, NANOCODESEARCHNET_REPO, available_subsets, beir_from_parquet,
                      download_nano_dataset, find_parquet_files, subset_language)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "csn-python-code2doc"


@pytest.fixture(scope="module")
def csn_slice() -> Dataset:
    """50 judged queries of csn-python-code2doc, their positives and 200 other documents."""
    full = load_dataset(SHARED)
    queries = full.judged_queries[:50]
    positives = {doc_id for query in queries for doc_id in full.qrels.positives(query.id)}
    others = [doc for doc in full.documents if doc.id not in positives][:200]
    documents = tuple(doc for doc in full.documents if doc.id in positives) + tuple(others)
    return Dataset("csn-slice", documents, tuple(queries), full.subset([q.id for q in queries]).qrels)


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def write_tables(root: Path, dataset: Dataset, corpus: str, queries: str, qrels: str, with_score: bool = False) -> None:
    """The three NanoBEIR tables of ``dataset`` at the given repo-relative paths (text columns only, as on the hub)."""
    write_parquet(root / corpus, {"_id": [d.id for d in dataset.documents], "text": [d.text for d in dataset.documents]})
    write_parquet(root / queries, {"_id": [q.id for q in dataset.queries], "text": [q.text for q in dataset.queries]})
    pairs = [(q, d, g) for q, grades in dataset.qrels.judgments.items() for d, g in grades.items()]
    columns = {"query-id": [q for q, _, _ in pairs], "corpus-id": [d for _, d, _ in pairs]}
    if with_score:
        columns["score"] = [g for _, _, g in pairs]
    write_parquet(root / qrels, columns)


def decoy(dataset: Dataset) -> Dataset:
    """A different, smaller dataset stored beside the wanted one (another subset of the same repo)."""
    return dataset.subset([q.id for q in dataset.queries[:3]], name="decoy")


def per_language_layout(root: Path, dataset: Dataset) -> None:
    """hotchpotch/NanoCodeSearchNet: kind folders, one split file per language."""
    for subset, data in (("NanoCodeSearchNetPython", dataset), ("NanoCodeSearchNetGo", decoy(dataset))):
        shard = f"{subset}-00000-of-00001.parquet"
        write_tables(root, data, f"corpus/{shard}", f"queries/{shard}", f"qrels/{shard}")
    write_parquet(root / "bm25/NanoCodeSearchNetPython-00000-of-00001.parquet",
                  {"query-id": [dataset.queries[0].id], "corpus-ids": [[dataset.documents[0].id]]})


def subset_folder_layout(root: Path, dataset: Dataset) -> None:
    """hakari-bench style: one folder per subset, whose name prefixes another subset's name."""
    write_tables(root, dataset, "NanoCodeSearchNet/corpus/train-00000-of-00001.parquet",
                 "NanoCodeSearchNet/queries/train-00000-of-00001.parquet",
                 "NanoCodeSearchNet/qrels/train-00000-of-00001.parquet", with_score=True)
    write_tables(root, decoy(dataset), "NanoCodeSearchNetCCR/corpus/train-00000-of-00001.parquet",
                 "NanoCodeSearchNetCCR/queries/train-00000-of-00001.parquet",
                 "NanoCodeSearchNetCCR/qrels/train-00000-of-00001.parquet")


LAYOUTS = {
    "per-language kind folders": (per_language_layout, NANOCODESEARCHNET_REPO, "NanoCodeSearchNetPython", "python"),
    "subset folders": (subset_folder_layout, NANOCOIR_REPO, "NanoCodeSearchNet", ""),
}


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")} if root.exists() else set()


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_download_from_a_local_copy_gives_back_the_source_slice(tmp_path: Path, csn_slice: Dataset, layout: str) -> None:
    build, repo_id, subset, language = LAYOUTS[layout]
    build(tmp_path / "repo", csn_slice)

    folder = download_nano_dataset(repo_id, subset, tmp_path / "datasets", source_dir=tmp_path / "repo")
    loaded = load_dataset(folder)

    assert folder == tmp_path / "datasets" / subset
    assert [(d.id, d.title, d.text) for d in loaded.documents] == [(d.id, d.title, d.text) for d in csn_slice.documents]
    assert [(q.id, q.text) for q in loaded.queries] == [(q.id, q.text) for q in csn_slice.queries]
    assert {q: dict(g) for q, g in loaded.qrels.judgments.items()} == {q: dict(g) for q, g in csn_slice.qrels.judgments.items()}
    assert {d.language for d in loaded.documents} == {language}
    assert loaded.problems == ()
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == [subset], "no staging folder is left behind"


def test_download_records_repo_and_subset_in_meta(tmp_path: Path, csn_slice: Dataset) -> None:
    per_language_layout(tmp_path / "repo", csn_slice)

    folder = download_nano_dataset(NANOCODESEARCHNET_REPO, "NanoCodeSearchNetPython", tmp_path / "datasets",
                                   name="csn-py", source_dir=tmp_path / "repo")
    meta = json.loads((folder / "meta.json").read_text())

    assert folder.name == "csn-py"
    assert (meta["repo"], meta["subset"], meta["queries"], meta["documents"]) == (
        NANOCODESEARCHNET_REPO, "NanoCodeSearchNetPython", 50, len(csn_slice.documents))
    assert meta["files"] == ["corpus/NanoCodeSearchNetPython-00000-of-00001.parquet",
                             "queries/NanoCodeSearchNetPython-00000-of-00001.parquet",
                             "qrels/NanoCodeSearchNetPython-00000-of-00001.parquet"]


def test_earlier_download_is_reused_offline_without_contacting_the_hub(tmp_path: Path, csn_slice: Dataset,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    subset_folder_layout(tmp_path / "repo", csn_slice)
    first = download_nano_dataset(NANOCOIR_REPO, "NanoCodeSearchNet", tmp_path / "datasets", source_dir=tmp_path / "repo")
    before = (first / "corpus.jsonl").stat().st_mtime_ns
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    again = download_nano_dataset(NANOCOIR_REPO, "NanoCodeSearchNet", tmp_path / "datasets")

    assert again == first and (again / "corpus.jsonl").stat().st_mtime_ns == before


def test_folder_of_another_origin_is_not_replaced_without_overwrite(tmp_path: Path, csn_slice: Dataset) -> None:
    per_language_layout(tmp_path / "repo", csn_slice)
    own = tmp_path / "datasets" / "NanoCodeSearchNetPython"
    own.mkdir(parents=True)
    (own / "notes.txt").write_text("mine")

    with pytest.raises(DatasetError, match="already exists"):
        download_nano_dataset(NANOCODESEARCHNET_REPO, "NanoCodeSearchNetPython", tmp_path / "datasets",
                              source_dir=tmp_path / "repo")
    assert tree(tmp_path / "datasets") == {"NanoCodeSearchNetPython", "NanoCodeSearchNetPython/notes.txt"}

    replaced = download_nano_dataset(NANOCODESEARCHNET_REPO, "NanoCodeSearchNetPython", tmp_path / "datasets",
                                     source_dir=tmp_path / "repo", overwrite=True)
    assert len(load_dataset(replaced).queries) == 50 and not (replaced / "notes.txt").exists()


def test_converter_accepts_numeric_ids_column_variants_and_missing_scores(tmp_path: Path) -> None:
    corpus = write_parquet(tmp_path / "c.parquet", {"id": [10, 11, 12], "title": ["t", None, ""], "text": ["a", "b", "c"]})
    queries = write_parquet(tmp_path / "q.parquet", {"query_id": [1, 2], "text": ["find a", "find c"]})
    qrels = write_parquet(tmp_path / "r.parquet", {"query_id": [1, 2], "corpus_id": [10.0, 12.0]})

    dataset = beir_from_parquet(corpus, queries, qrels, "numeric", language="go")

    assert [(d.id, d.title, d.language) for d in dataset.documents] == [("10", "t", "go"), ("11", "", "go"), ("12", "", "go")]
    assert [q.id for q in dataset.queries] == ["1", "2"]
    assert {q: dict(g) for q, g in dataset.qrels.judgments.items()} == {"1": {"10": 1}, "2": {"12": 1}}


def test_converter_skips_bad_rows_and_lists_them(tmp_path: Path) -> None:
    corpus = write_parquet(tmp_path / "corpus" / "x.parquet", {"_id": ["d1", "d2", None, "d1"], "text": ["a", None, "c", "again"]})
    queries = write_parquet(tmp_path / "queries" / "x.parquet", {"_id": ["q1"], "text": ["a?"]})
    qrels = write_parquet(tmp_path / "qrels" / "x.parquet", {"query-id": ["q1", "q1", "q9"], "corpus-id": ["d1", "d7", "d1"],
                                                            "score": [2, 1, 1]})

    dataset = beir_from_parquet(corpus, queries, qrels, "partial")

    assert [d.id for d in dataset.documents] == ["d1"]
    assert dict(dataset.qrels.grades("q1")) == {"d1": 2}
    assert [(p.file, p.line) for p in dataset.problems] == [
        ("corpus/x.parquet", 2), ("corpus/x.parquet", 3), ("corpus/x.parquet", 4), ("qrels/x.parquet", 2), ("qrels/x.parquet", 3)]


def test_converter_refuses_qrels_that_match_no_document(tmp_path: Path) -> None:
    corpus = write_parquet(tmp_path / "c.parquet", {"_id": ["d1"], "text": ["a"]})
    queries = write_parquet(tmp_path / "q.parquet", {"_id": ["q1"], "text": ["a?"]})
    qrels = write_parquet(tmp_path / "r.parquet", {"query-id": ["q1"], "corpus-id": ["d404"]})

    with pytest.raises(DatasetError, match="no query has a relevant document") as caught:
        beir_from_parquet(corpus, queries, qrels, "broken")
    assert "d404" in str(caught.value)


def test_converter_names_the_missing_column(tmp_path: Path) -> None:
    corpus = write_parquet(tmp_path / "c.parquet", {"doc": ["d1"], "body": ["a"]})

    with pytest.raises(DatasetError, match=r"c.parquet has no id column .*it has doc, body"):
        beir_from_parquet(corpus, corpus, corpus, "columns")


def test_finder_picks_the_exact_subset_not_one_it_prefixes() -> None:
    paths = ["corpus/NanoCodeSearchNet-00000-of-00001.parquet", "corpus/NanoCodeSearchNetCCR-00000-of-00001.parquet",
             "queries/NanoCodeSearchNet-00000-of-00001.parquet", "queries/NanoCodeSearchNetCCR-00000-of-00001.parquet",
             "qrels/NanoCodeSearchNet-00000-of-00001.parquet", "qrels/NanoCodeSearchNetCCR-00000-of-00001.parquet",
             "bm25/NanoCodeSearchNet-00000-of-00001.parquet", "README.md"]

    files = find_parquet_files(paths, "NanoCodeSearchNet")

    assert files.all == ("corpus/NanoCodeSearchNet-00000-of-00001.parquet", "queries/NanoCodeSearchNet-00000-of-00001.parquet",
                         "qrels/NanoCodeSearchNet-00000-of-00001.parquet")


def test_finder_prefers_the_subset_folder_when_a_subset_is_stored_twice_and_keeps_shards() -> None:
    paths = ["corpus/NanoCosQA-00000-of-00001.parquet", "queries/NanoCosQA-00000-of-00001.parquet",
             "qrels/NanoCosQA-00000-of-00001.parquet",
             "NanoCosQA/corpus/train-00000-of-00002.parquet", "NanoCosQA/corpus/train-00001-of-00002.parquet",
             "NanoCosQA/queries/train-00000-of-00001.parquet", "NanoCosQA/qrels/train-00000-of-00001.parquet"]

    files = find_parquet_files(paths, "NanoCosQA")

    assert files.corpus == ("NanoCosQA/corpus/train-00000-of-00002.parquet", "NanoCosQA/corpus/train-00001-of-00002.parquet")
    assert files.qrels == ("NanoCosQA/qrels/train-00000-of-00001.parquet",)


def test_finder_reads_a_plain_nanobeir_repo_without_a_subset() -> None:
    paths = ["corpus/train-00000-of-00001.parquet", "queries/train-00000-of-00001.parquet",
             "relevance/train-00000-of-00001.parquet"]

    assert find_parquet_files(paths, None).qrels == ("relevance/train-00000-of-00001.parquet",)


def test_repo_with_several_subsets_asks_which_one(tmp_path: Path, csn_slice: Dataset) -> None:
    per_language_layout(tmp_path / "repo", csn_slice)

    with pytest.raises(DatasetError, match=r"several subsets \(NanoCodeSearchNetGo, NanoCodeSearchNetPython\); pick one"):
        download_nano_dataset(NANOCODESEARCHNET_REPO, None, tmp_path / "datasets", source_dir=tmp_path / "repo")
    assert tree(tmp_path / "datasets") == set()


def test_unknown_subset_is_refused_with_the_subsets_that_exist(tmp_path: Path, csn_slice: Dataset) -> None:
    subset_folder_layout(tmp_path / "repo", csn_slice)

    with pytest.raises(DatasetError, match=r"no corpus parquet file for subset 'NanoApps'\. Subsets found: "
                                           r"NanoCodeSearchNet, NanoCodeSearchNetCCR\."):
        download_nano_dataset(NANOCOIR_REPO, "NanoApps", tmp_path / "datasets", source_dir=tmp_path / "repo")
    assert available_subsets(p.relative_to(tmp_path / "repo").as_posix() for p in (tmp_path / "repo").rglob("*")) == [
        "NanoCodeSearchNet", "NanoCodeSearchNetCCR"]


def test_language_comes_from_per_language_subset_names() -> None:
    assert [subset_language(s) for s in ("NanoCodeSearchNetJavaScript", "NanoCodeSearchNetGo", "NanoCodeSearchNet", None)] == [
        "javascript", "go", None, None]


def assert_clear_offline_error(error: DatasetError, started: float, datasets_dir: Path, *words: str) -> None:
    message = str(error)
    assert time.monotonic() - started < 8, "the download must fail fast, not hang"
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(("Could not download hakari-bench/NanoCoIR (NanoCodeSearchNet)",
                               "Not downloading hakari-bench/NanoCoIR (NanoCodeSearchNet)"))
    for word in ("offline", "import its zip", "CODEIR_DATA_DIR", *words):
        assert word in message
    assert tree(datasets_dir) == set(), "a failed download leaves nothing behind"


def test_offline_mode_refuses_the_download_at_once_with_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()

    with pytest.raises(DatasetError) as caught:
        download_nano_dataset(NANOCOIR_REPO, "NanoCodeSearchNet", tmp_path / "datasets")

    assert_clear_offline_error(caught.value, started, tmp_path / "datasets", "HF_HUB_OFFLINE")


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the hub client try the network even when the test runner set HF_HUB_OFFLINE."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def test_unreachable_hub_fails_fast_saying_the_machine_looks_offline(tmp_path: Path, hub_online: None) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()

    with pytest.raises(DatasetError) as caught:
        download_nano_dataset(NANOCOIR_REPO, "NanoCodeSearchNet", tmp_path / "datasets", endpoint=endpoint, timeout_s=2)

    assert_clear_offline_error(caught.value, started, tmp_path / "datasets", "looks offline", "ConnectError")


def test_silent_hub_times_out_instead_of_hanging(tmp_path: Path, hub_online: None) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()

        with pytest.raises(DatasetError) as caught:
            download_nano_dataset(NANOCOIR_REPO, "NanoCodeSearchNet", tmp_path / "datasets",
                                  endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=1)

    assert_clear_offline_error(caught.value, started, tmp_path / "datasets", "looks offline", "Timeout")


class HubMirror:
    """A local HTTP server answering the three hub calls a download makes (repo info, file tree, files).

    It stands in for huggingface.co, which this machine cannot reach, so the real client code runs.
    """

    commit = "c0ffee" * 6 + "c0ff"

    def __init__(self, root: Path, repo_id: str):
        self.files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        self.repo_id = repo_id
        self.fetched: list[str] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                mirror.answer(self, with_body=True)

            def do_HEAD(self) -> None:
                mirror.answer(self, with_body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, request: BaseHTTPRequestHandler, with_body: bool) -> None:
        path = unquote(urlparse(request.path).path)
        api, files = f"/api/datasets/{self.repo_id}", f"/datasets/{self.repo_id}/resolve/{self.commit}/"
        headers = {"Content-Type": "application/json"}
        if path.startswith(f"{api}/tree/"):
            body = json.dumps([{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                               for name, data in self.files.items()]).encode()
        elif path.startswith(api):
            body = json.dumps({"id": self.repo_id, "sha": self.commit, "siblings": [{"rfilename": n} for n in self.files]}).encode()
        elif path.startswith(files) and path[len(files):] in self.files:
            name = path[len(files):]
            body = self.files[name]
            headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": self.commit,
                       "ETag": f'"{hashlib.sha1(body).hexdigest()}"'}
            if with_body:
                self.fetched.append(name)
        else:
            request.send_response(404)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        request.send_response(200)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            request.send_header(key, value)
        request.end_headers()
        if with_body:
            request.wfile.write(body)


@pytest.fixture
def mirror(tmp_path: Path, csn_slice: Dataset, hub_online: None) -> Iterator[HubMirror]:
    subset_folder_layout(tmp_path / "published", csn_slice)
    (tmp_path / "published" / "README.md").write_text("dataset card")
    hub = HubMirror(tmp_path / "published", NANOCOIR_REPO)
    thread = threading.Thread(target=hub.server.serve_forever, daemon=True)
    thread.start()
    yield hub
    hub.server.shutdown()
    hub.server.server_close()


def test_download_over_http_fetches_only_the_subsets_parquet_files(tmp_path: Path, csn_slice: Dataset,
                                                                   mirror: HubMirror) -> None:
    folder = download_nano_dataset(NANOCOIR_REPO, "NanoCodeSearchNet", tmp_path / "datasets", endpoint=mirror.endpoint,
                                   timeout_s=5)

    loaded = load_dataset(folder)
    assert sorted(mirror.fetched) == ["NanoCodeSearchNet/corpus/train-00000-of-00001.parquet",
                                      "NanoCodeSearchNet/qrels/train-00000-of-00001.parquet",
                                      "NanoCodeSearchNet/queries/train-00000-of-00001.parquet"]
    assert [d.id for d in loaded.documents] == [d.id for d in csn_slice.documents]
    assert json.loads((folder / "meta.json").read_text())["revision"] == mirror.commit
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["NanoCodeSearchNet"], "the raw download is removed"


def test_repo_missing_from_the_hub_is_reported_as_not_found(tmp_path: Path, mirror: HubMirror) -> None:
    with pytest.raises(DatasetError, match=r"^Could not download someone/missing \(X\): no such dataset repo"):
        download_nano_dataset("someone/missing", "X", tmp_path / "datasets", endpoint=mirror.endpoint, timeout_s=5)
    assert tree(tmp_path / "datasets") == set()


def test_a_download_named_like_a_bundled_set_is_refused_saying_where_that_name_is_held(tmp_path: Path, csn_slice: Dataset) -> None:
    """The catalog opens the data directory's set first: a download under its name would never be seen."""
    per_language_layout(tmp_path / "repo", csn_slice)
    repo_id, subset = NANOCODESEARCHNET_REPO, "NanoCodeSearchNetPython"
    reserved = {"cosqa": "in the data directory, /data/cosqa"}
    with pytest.raises(DatasetError, match=r"'cosqa' already exists \(in the data directory.*--name"):
        download_nano_dataset(repo_id, subset, tmp_path / "datasets", name="cosqa", source_dir=tmp_path / "repo",
                              reserved=reserved)
    assert not (tmp_path / "datasets" / "cosqa").exists()
    kept = download_nano_dataset(repo_id, subset, tmp_path / "datasets", name="cosqa-nano", source_dir=tmp_path / "repo",
                                 reserved=reserved)
    assert kept.name == "cosqa-nano"
