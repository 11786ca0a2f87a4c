"""Damaged and interrupted indexes: detected on open, rebuilt to identical results, never served half-built.

Damage is done with plain file operations (delete, truncate, overwrite bytes) on real Tantivy and
LanceDB stores; interruptions are SIGKILLs of a real ``python -m core index`` process, sent once its
temporary folder or embedding checkpoints appear on disk.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import lancedb
import numpy as np
import pytest

from core.data.datasets import Dataset, write_dataset
from core.index.encoders import Encoder, load_encoder
from core.errors import IndexCorruptError
from core.index.analyzers import get_analyzer
from core.index.lexical import INFO_FILE, open_checked_index, index_path, open_lexical_index
from core.retrieval.profiles import Bm25Profile, DenseProfile, default_profiles
from core.retrieval.engine import Engine
from core.index.vectors import (EMBED_CHUNK_ENV, EmbeddingCache, corpus_table_name, open_vector_index, query_table_name,
                                read_checked_table, table_names, text_key)
from core.workspace import Workspace
from tests.conftest import slice_dataset

ROOT = Path(__file__).resolve().parents[1]
BM25_PROFILES = {n: p for n, p in default_profiles().items() if isinstance(p, Bm25Profile)}
DENSE_PROFILES = {n: p for n, p in default_profiles().items() if isinstance(p, DenseProfile)}


# ---- helpers shared with test_hardening_concurrency ---------------------------------------------

def cli_command(workspace: Workspace, *args: str) -> list[str]:
    return [sys.executable, "-m", "core", "--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), *args]


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **extra}


def run_cli(workspace: Workspace, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(cli_command(workspace, *args), cwd=ROOT, env=cli_env(**env), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 240) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds; fail if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the build finished (rc {process.returncode}) before it could be interrupted:\n{out}\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the build never reached the point where it should be interrupted")
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def copies(dataset: Dataset, times: int, name: str) -> Dataset:
    """The corpus repeated ``times`` (ids suffixed), same queries and judgments: a corpus big enough to interrupt."""
    documents = tuple(replace(d, id=f"{d.id}-copy{c}") if c else d for c in range(times) for d in dataset.documents)
    return Dataset(name, documents, dataset.queries, dataset.qrels)


def with_more_documents(dataset: Dataset, extra: Sequence, name: str | None = None) -> Dataset:
    """The same queries and judgments over the corpus plus ``extra`` documents appended."""
    return Dataset(name or dataset.name, dataset.documents + tuple(extra), dataset.queries, dataset.qrels)


@dataclass
class CountingEncoder:
    """The real encoder, counting the texts it is asked to embed (to see which checkpoints were reused)."""

    inner: Encoder
    encoded: int = 0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        self.encoded += len(texts)
        return self.inner.encode(texts, batch_size, show_progress)


def rankings(engine: Engine, queries: Sequence | None = None) -> dict[str, dict]:
    """Every profile's run as plain data: query id -> (doc ids, rounded scores)."""
    return {name: {qid: (r.doc_ids, tuple(np.round(r.scores, 5))) for qid, r in engine.run(name, queries).rankings.items()}
            for name in engine.profiles}


# ---- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(csn_mini: Dataset) -> Dataset:
    """Four judged csn-mini queries over 32 documents: small enough to embed twice per test."""
    return slice_dataset(csn_mini, 4, 32, name="csn-tiny")


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return load_encoder("minilm")


# ---- lexical damage ---------------------------------------------------------------------------------

def segment_file(folder: Path, suffix: str) -> Path:
    return next(p for p in folder.iterdir() if p.name.endswith(suffix))


def flip_bytes(path: Path, at: float = 0.5, count: int = 8) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + count] = bytes(b ^ 0xFF for b in data[start:start + count])
    path.write_bytes(bytes(data))


LEXICAL_DAMAGE = {
    "segment term file deleted": lambda folder: segment_file(folder, ".term").unlink(),
    "segment postings truncated": lambda folder: segment_file(folder, ".idx").write_bytes(segment_file(folder, ".idx").read_bytes()[:100]),
    "segment store emptied": lambda folder: segment_file(folder, ".store").write_bytes(b""),
    "term dictionary bytes flipped": lambda folder: flip_bytes(segment_file(folder, ".term")),
    "field norms bytes flipped": lambda folder: flip_bytes(segment_file(folder, ".fieldnorm")),
    "tantivy meta.json deleted": lambda folder: (folder / "meta.json").unlink(),
    "garbage in codeir-index.json": lambda folder: (folder / INFO_FILE).write_bytes(b"\x00garbage{{{" * 10),
    "codeir-index.json names another corpus": lambda folder: (folder / INFO_FILE).write_text(
        (folder / INFO_FILE).read_text().replace('"corpus_hash": "', '"corpus_hash": "0')),
    "index folder emptied": lambda folder: [p.unlink() for p in folder.iterdir()],
    "term matrix bytes flipped": lambda folder: flip_bytes(folder / "term_matrix.rows.npy", at=0.6),
    "term list deleted": lambda folder: (folder / "terms.json").unlink(),
}


@pytest.mark.parametrize("case", LEXICAL_DAMAGE, ids=list(LEXICAL_DAMAGE))
def test_damaged_lexical_index_is_detected_and_rebuilt_with_identical_results(workspace: Workspace, csn_mini: Dataset,
                                                                              case: str) -> None:
    before = rankings(Engine(workspace, csn_mini, BM25_PROFILES))
    folder = index_path(workspace, csn_mini, "code")

    LEXICAL_DAMAGE[case](folder)

    with pytest.raises(IndexCorruptError):
        open_checked_index(folder, get_analyzer("code"), csn_mini)
    engine = Engine(workspace, csn_mini, BM25_PROFILES)
    after = rankings(engine)
    assert after == before
    reused = {report.what: report.reused for report in engine.reports}
    assert reused == {f"BM25 index (code) for {csn_mini.name}": False, f"BM25 index (words) for {csn_mini.name}": True}
    assert open_checked_index(folder, get_analyzer("code"), csn_mini).num_docs == len(csn_mini.documents)


# ---- vector damage ------------------------------------------------------------------------------------

def lance_folder(workspace: Workspace, table: str) -> Path:
    return workspace.vectors_dir / f"{table}.lance"


def first_file(folder: Path, pattern: str) -> Path:
    return sorted(folder.glob(pattern))[0]


VECTOR_DAMAGE = {
    "corpus table folder deleted": ("docs", shutil.rmtree),
    "corpus data file truncated": ("docs", lambda folder: first_file(folder, "data/*.lance").write_bytes(
        first_file(folder, "data/*.lance").read_bytes()[:500])),
    "corpus data bytes flipped": ("docs", lambda folder: flip_bytes(first_file(folder, "data/*.lance"), at=0.3)),
    "corpus manifest truncated": ("docs", lambda folder: first_file(folder, "_versions/*.manifest").write_bytes(b"\x00" * 40)),
    "corpus versions deleted": ("docs", lambda folder: shutil.rmtree(folder / "_versions")),
    "query table data file truncated": ("queries", lambda folder: first_file(folder, "data/*.lance").write_bytes(b"")),
}


@pytest.fixture(scope="module")
def dense_built(tmp_path_factory, mini_data_dir: Path, tiny: Dataset) -> tuple[Path, dict]:
    """A workspace holding tiny's corpus and query embeddings, and the dense rankings it serves (built once)."""
    workspace = Workspace.open(tmp_path_factory.mktemp("dense-built") / "workspace", mini_data_dir)
    return workspace.root, rankings(Engine(workspace, tiny, DENSE_PROFILES))


@pytest.mark.parametrize("case", VECTOR_DAMAGE, ids=list(VECTOR_DAMAGE))
def test_damaged_vector_table_is_detected_and_rebuilt_with_identical_results(tmp_path: Path, mini_data_dir: Path,
                                                                             dense_built: tuple[Path, dict], tiny: Dataset,
                                                                             encoder: Encoder, case: str) -> None:
    built_root, before = dense_built
    workspace = Workspace.open(shutil.copytree(built_root, tmp_path / "workspace"), mini_data_dir)
    kind, damage = VECTOR_DAMAGE[case]
    table = corpus_table_name(tiny, encoder) if kind == "docs" else query_table_name(tiny, encoder)
    expected = {"fingerprint": encoder.fingerprint, "count": len(tiny.documents if kind == "docs" else tiny.queries),
                "dim": encoder.dim}

    damage(lance_folder(workspace, table))

    db = lancedb.connect(str(workspace.vectors_dir))
    if table in table_names(db):  # a deleted table is simply missing; anything else must fail its check
        with pytest.raises(IndexCorruptError):
            read_checked_table(db, table, expected)
    engine = Engine(workspace, tiny, DENSE_PROFILES)
    assert rankings(engine) == before
    what = f"{'embeddings' if kind == 'docs' else 'query embeddings'} (minilm) for {tiny.name}"
    assert [r.reused for r in engine.reports if r.what == what] == [False], "the damaged table is rebuilt, not reused"
    read_checked_table(lancedb.connect(str(workspace.vectors_dir)), table, expected)


class Interrupted(Exception):
    """Raised by ``StoppingEncoder`` to interrupt a build the way a kill would: between two chunks."""


@dataclass
class StoppingEncoder(CountingEncoder):
    """The real encoder, stopping the build once it has encoded ``limit`` texts."""

    limit: int = 0

    def encode(self, texts, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        if self.encoded + len(texts) > self.limit:
            raise Interrupted()
        return super().encode(texts, batch_size, show_progress)


def cache_shards(workspace: Workspace, encoder: Encoder) -> list[Path]:
    return EmbeddingCache.for_encoder(workspace, encoder).shards()


def test_damaged_embedding_checkpoint_is_recomputed_not_reused(workspace: Workspace, tiny: Dataset, encoder: Encoder,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints (cache shards of a build's chunks) that are poisoned or not arrays at all are never reused."""
    monkeypatch.setenv(EMBED_CHUNK_ENV, "8")
    cache = EmbeddingCache.for_encoder(workspace, encoder)
    keys = [text_key(d.full_text) for d in tiny.documents]
    cache.add(keys[0:8], np.full((8, encoder.dim), np.nan, dtype=np.float32))  # right shape, poisoned (its checksum holds)
    cache.add(keys[8:16], np.zeros((8, 3), dtype=np.float32))                    # wrong dimension (its checksum holds)
    (cache.folder / "0123456789abcdef0123456789abcdef-00000000.npz").write_bytes(b"PK\x03\x04 garbage")  # not an archive
    legacy = workspace.vectors_dir / ".partial" / corpus_table_name(tiny, encoder)  # the layout before the cache
    legacy.mkdir(parents=True)
    np.save(legacy / "000000000.npy", np.zeros((8, encoder.dim), dtype=np.float32))
    counting = CountingEncoder(encoder)

    index, report = open_vector_index(workspace, tiny, counting)

    assert counting.encoded == len(tiny.documents), "no damaged checkpoint may be reused"
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-4)
    assert len(cache_shards(workspace, encoder)) == len(tiny.documents) // 8, "damaged shards are deleted, good ones kept"
    assert not legacy.exists(), "checkpoints of the old layout are removed, never reused"


DAMAGED_CHECKPOINT = {
    # what issue 15.8 found: finite, plausible values (off by up to 0.034) written over a checkpoint
    "values shifted by up to 0.034, file rewritten": lambda path, rng: _rewrite_shard(
        path, lambda vectors: vectors + rng.uniform(-0.034, 0.034, vectors.shape).astype(np.float32)),
    "one vector replaced by another row's": lambda path, rng: _rewrite_shard(path, lambda vectors: np.roll(vectors, 1, axis=0)),
    "bytes flipped in the vectors": lambda path, rng: flip_bytes(path, at=0.7, count=4),
    "file truncated": lambda path, rng: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
}


def _rewrite_shard(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    with np.load(path) as shard:
        keys, vectors = shard["keys"], shard["vectors"]
    with path.open("wb") as handle:
        np.savez(handle, keys=keys, vectors=change(vectors))


@pytest.mark.parametrize("case", DAMAGED_CHECKPOINT, ids=list(DAMAGED_CHECKPOINT))
def test_checkpoint_damaged_after_an_interruption_is_detected_on_resume(workspace: Workspace, tiny: Dataset, encoder: Encoder,
                                                                       monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """An interrupted build's checkpoints are checksummed when written and verified on resume (issue 15.8)."""
    monkeypatch.setenv(EMBED_CHUNK_ENV, "8")
    clean = encoder.encode([d.full_text for d in tiny.documents])
    with pytest.raises(Interrupted):
        open_vector_index(workspace, tiny, StoppingEncoder(encoder, limit=16))
    shards = cache_shards(workspace, encoder)
    assert len(shards) == 2, "two chunks were checkpointed before the interruption"
    damaged = shards[0]

    DAMAGED_CHECKPOINT[case](damaged, np.random.default_rng(3))

    counting = CountingEncoder(encoder)
    index, report = open_vector_index(workspace, tiny, counting)
    assert counting.encoded == len(tiny.documents) - 8, "the damaged chunk is encoded again, the intact one reused"
    assert report.cached == 8
    assert np.allclose(index.vectors, clean, atol=1e-5), "the finished table holds the true vectors"
    assert not damaged.exists()
    assert len(cache_shards(workspace, encoder)) == len(tiny.documents) // 8


# ---- interrupted builds -----------------------------------------------------------------------------

@pytest.fixture
def big_corpus_workspace(tmp_path: Path, csn_mini: Dataset) -> tuple[Workspace, Dataset]:
    """csn-mini's corpus copied 30 times (12,000 documents): a BM25 build that takes seconds, long enough to kill."""
    big = copies(csn_mini, 30, "csn-big")
    write_dataset(big, tmp_path / "data" / "csn-big")
    return Workspace.open(tmp_path / "workspace", tmp_path / "data"), big


def lexical_results(workspace: Workspace, dataset: Dataset) -> list[tuple]:
    index, _ = open_lexical_index(workspace, dataset, "code")
    return [(tuple(h.rows), tuple(h.scores)) for h in (index.search(q.text, 50) for q in dataset.queries[:15])]


def leftovers(workspace: Workspace, dataset: Dataset) -> list[str]:
    path = index_path(workspace, dataset, "code")
    return sorted(p.name for p in path.parent.glob(f".{path.name}.*"))


@pytest.mark.slow
def test_killed_lexical_rebuild_leaves_the_previous_index_serving_identical_results(big_corpus_workspace) -> None:
    workspace, big = big_corpus_workspace
    before = lexical_results(workspace, big)
    path = index_path(workspace, big, "code")
    builder = subprocess.Popen(cli_command(workspace, "index", "--dataset", "csn-big", "--profiles", "bm25-code", "--rebuild"),
                               cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    kill_when(builder, lambda: bool(leftovers(workspace, big)))

    assert leftovers(workspace, big), "the kill landed mid-build: its temporary folder is still there"
    index, report = open_lexical_index(workspace, big, "code")
    assert report.reused and lexical_results(workspace, big) == before
    finished = run_cli(workspace, "index", "--dataset", "csn-big", "--profiles", "bm25-code", "--rebuild")
    assert "BM25 index (code) for csn-big: built" in finished.stdout
    assert leftovers(workspace, big) == [], "the next build clears what the killed one left"
    assert lexical_results(workspace, big) == before
    assert path.is_dir()


@pytest.mark.slow
def test_killed_first_lexical_build_serves_nothing_and_the_next_run_builds_it(big_corpus_workspace) -> None:
    workspace, big = big_corpus_workspace
    path = index_path(workspace, big, "code")
    builder = subprocess.Popen(cli_command(workspace, "index", "--dataset", "csn-big", "--profiles", "bm25-code"),
                               cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    kill_when(builder, lambda: bool(leftovers(workspace, big)))

    assert not path.exists(), "nothing is served from a half-written index"
    with pytest.raises(IndexCorruptError):
        open_checked_index(path, get_analyzer("code"), big)
    finished = run_cli(workspace, "index", "--dataset", "csn-big", "--profiles", "bm25-code")
    assert "BM25 index (code) for csn-big: built" in finished.stdout
    assert leftovers(workspace, big) == []
    assert open_checked_index(path, get_analyzer("code"), big).num_docs == len(big.documents)


@pytest.mark.slow
def test_killed_embedding_build_keeps_the_old_table_and_the_next_run_reuses_its_checkpoints(
        tmp_path: Path, csn_mini: Dataset, tiny: Dataset, encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = 8
    old = tiny
    others = [d for d in csn_mini.documents if d.id not in old.doc_index][:48]
    new = with_more_documents(old, others)  # the same dataset after 48 documents were added: 80 documents, 10 chunks
    write_dataset(new, tmp_path / "data" / new.name)
    workspace = Workspace.open(tmp_path / "workspace", tmp_path / "data")
    old_index, _ = open_vector_index(workspace, old, encoder)
    old_table, new_table = corpus_table_name(old, encoder), corpus_table_name(new, encoder)
    cached_before = len(cache_shards(workspace, encoder))  # the old corpus, embedded in one chunk

    def checkpoints() -> int:  # chunks the killed build wrote to the embedding cache
        return len(cache_shards(workspace, encoder)) - cached_before

    builder = subprocess.Popen(cli_command(workspace, "index", "--dataset", new.name, "--profiles", "dense-minilm"),
                               cwd=ROOT, env=cli_env(**{EMBED_CHUNK_ENV: str(chunk)}),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_when(builder, lambda: checkpoints() >= 2)

    done = checkpoints()
    # the old corpus comes from the cache, so only the 48 added documents (6 chunks) are embedded at all
    assert 2 <= done < len(others) // chunk, "the kill landed mid-embedding"
    db = lancedb.connect(str(workspace.vectors_dir))
    assert new_table not in table_names(db), "no table is written before every chunk is embedded"
    reopened, report = open_vector_index(workspace, old, encoder)
    assert report.reused and np.array_equal(reopened.vectors, old_index.vectors), "the previous table keeps serving"

    counting = CountingEncoder(encoder)
    monkeypatch.setenv(EMBED_CHUNK_ENV, str(chunk))
    finished, report = open_vector_index(workspace, new, counting)

    assert not report.reused
    assert counting.encoded == len(others) - done * chunk, "checkpointed chunks and the cached old corpus are not embedded again"
    assert report.cached == len(new.documents) - counting.encoded
    assert np.array_equal(finished.vectors[: len(old.documents)], old_index.vectors)
    assert np.allclose(np.linalg.norm(finished.vectors, axis=1), 1.0, atol=1e-4)
    assert len(cache_shards(workspace, encoder)) == cached_before + len(others) // chunk, "each text cached once"
    assert table_names(lancedb.connect(str(workspace.vectors_dir))) == [new_table], "the old version goes once the new one serves"
