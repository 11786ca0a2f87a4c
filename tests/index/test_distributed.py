"""Corpus embedding on Ray Data: equal to the single-process table, every document exactly once when an actor dies.

One local Ray (two CPUs, the ``local_ray`` fixture) serves the session; each job starts its own actor pool, which loads MiniLM.
Adoption (the staged table read back in batches) and the token-authentication messages are tested without a job.
tests/index/test_distributed_cluster.py runs jobs on a three-node cluster, one node lost mid-job.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from core.data.corpus_store import open_corpus_store
from core.data.datasets import Qrels
from core.errors import ClusterError, IndexCorruptError
from core.index.distributed import (RayOptions, adopt_staged_table, build_vector_index_on_ray, check_capacity, connect,
                                    corpus_table_is_current, embed_corpus, staged_table_schema, token_advice)
from core.index.encoders import load_encoder
from core.index.vectors import (EmbeddingCache, corpus_table_name, open_current_corpus_table, open_vector_index,
                                text_key)
from core.workspace import Workspace
from tests.test_hardening_stores import CountingEncoder

ACTOR_TITLE = b"MapBatches(Embedder)"  # Ray names an actor's process after the operator it serves


@pytest.fixture(scope="module")
def encoder(session_workspace):
    return load_encoder("minilm", session_workspace)


@pytest.fixture(scope="module")
def single_process(session_workspace, csn_mini, encoder):
    index, _ = open_vector_index(session_workspace, csn_mini, encoder)
    return index


def embedding_actor_pids() -> list[int]:
    """Processes of live embedding actors, found by the title Ray gives them."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if ACTOR_TITLE in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def small_corpus(dataset, rows: int):
    """The first ``rows`` documents of a dataset, without queries: a corpus for fault-injection jobs."""
    return replace(dataset, name=f"{dataset.name}-{rows}", documents=dataset.documents[:rows], queries=(), qrels=Qrels({}))


def test_two_actors_reading_the_corpus_store_write_the_table_the_single_process_build_writes(
        local_ray, tmp_path, session_workspace, mini_data_dir, csn_mini, encoder, single_process):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    store, _ = open_corpus_store(workspace, "csn-mini", mini_data_dir / "csn-mini")  # Ray Data reads its Lance files
    fractions = []
    report = embed_corpus(workspace, store, encoder, RayOptions(actors=2, cpus_per_actor=0.5, rows_per_block=64),
                          progress=fractions.append)
    assert not report.reused and fractions[-1] == 1.0
    index = open_current_corpus_table(workspace, csn_mini, encoder)
    cosines = (index.vectors * single_process.vectors).sum(axis=1)
    assert cosines.min() >= 0.9999
    query_vectors = encoder.encode([q.text for q in csn_mini.queries])
    assert np.array_equal(index.search(query_vectors, 100).rows, single_process.search(query_vectors, 100).rows)
    # the engine's own opener finds it under its name and reuses it: the same layout, metadata and checksum
    reopened, reopen_report = open_vector_index(workspace, csn_mini, encoder)
    assert reopen_report.reused and np.array_equal(reopened.vectors, index.vectors)
    assert (workspace.vectors_dir / f"{corpus_table_name(csn_mini, encoder)}.lance").is_dir()
    assert not any((workspace.vectors_dir / ".ray-staging").iterdir())
    assert embed_corpus(workspace, store, encoder, RayOptions()).reused  # checked in batches, no job started


def test_an_actor_killed_mid_job_leaves_every_document_embedded_exactly_once(local_ray, tmp_path, session_workspace,
                                                                             csn_mini, encoder, single_process):
    corpus = small_corpus(csn_mini, 160)
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    killed = []

    def kill_one_actor_once(fraction: float) -> None:
        if not killed and 0 < fraction < 0.5:
            for pid in embedding_actor_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append((pid, fraction))
                break

    embed_corpus(workspace, corpus, encoder, RayOptions(actors=1, rows_per_block=16), progress=kill_one_actor_once)
    assert killed, "no embedding actor was found to kill while the job ran"
    index = open_current_corpus_table(workspace, corpus, encoder)
    table = index.table.to_arrow()
    assert table.num_rows == len(corpus.documents)
    assert sorted(table["row"].to_pylist()) == list(range(len(corpus.documents)))
    assert table["id"].to_pylist() == [d.id for d in corpus.documents]
    assert (index.vectors * single_process.vectors[:len(corpus.documents)]).sum(axis=1).min() >= 0.9999


def test_a_worker_that_keeps_dying_fails_clearly_and_keeps_the_previous_table(local_ray, tmp_path, session_workspace,
                                                                             csn_mini, encoder, single_process):
    corpus = small_corpus(csn_mini, 160)
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    previous, _ = open_vector_index(workspace, corpus, encoder)  # built in this process: the table being served
    killed = []

    def kill_every_actor(fraction: float) -> None:
        for pid in embedding_actor_pids():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with pytest.raises(ClusterError, match="kept dying"):
        embed_corpus(workspace, corpus, encoder, RayOptions(actors=1, rows_per_block=16, max_restarts=1), rebuild=True,
                     progress=kill_every_actor)
    assert len(killed) >= 2
    current = open_current_corpus_table(workspace, corpus, encoder)
    assert current is not None and np.array_equal(current.vectors, previous.vectors)
    assert not any((workspace.vectors_dir / ".ray-staging").iterdir())


def test_texts_embedded_on_ray_are_never_encoded_again_by_a_single_process_build(local_ray, tmp_path, session_workspace,
                                                                                  csn_mini, encoder):
    corpus = small_corpus(csn_mini, 48)
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    embed_corpus(workspace, corpus, encoder, RayOptions(actors=1, rows_per_block=16))
    on_ray = open_current_corpus_table(workspace, corpus, encoder)
    # another dataset sharing those texts, in another order, plus five texts Ray never saw
    extra = csn_mini.documents[48:53]
    grown = replace(corpus, name="ray-cache-grown", documents=tuple(reversed(corpus.documents)) + extra)
    counting = CountingEncoder(encoder)
    index, report = open_vector_index(workspace, grown, counting)
    assert counting.encoded == len(extra) and report.cached == len(corpus.documents)
    assert np.array_equal(index.vectors[:len(corpus.documents)], on_ray.vectors[::-1])


def stage(workspace, corpus, rows: list[int], ids: list[str], vectors: np.ndarray, rows_per_file: int = 1024):
    """Write (row, id, vector, key) into the staging folder as the Ray job does, ``rows_per_file`` rows to a fragment."""
    import lance

    staged = workspace.vectors_dir / ".ray-staging" / f"test-{len(rows)}-{rows_per_file}.lance"
    keys = [text_key(corpus.documents[row].full_text) for row in rows]
    table = pa.table({"row": pa.array(rows, pa.int64()), "id": pa.array(ids, pa.string()),
                      "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1]),
                      "key": pa.array(keys, pa.binary(16))}, schema=staged_table_schema(vectors.shape[1]))
    lance.write_dataset(table, str(staged), max_rows_per_file=rows_per_file)
    return staged


def test_a_staged_table_out_of_row_order_is_adopted_read_back_in_batches_and_its_texts_cached(
        tmp_path, session_workspace, csn_mini, encoder, single_process):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    corpus = small_corpus(csn_mini, 100)
    order = np.random.default_rng(7).permutation(100)  # rows in another order, spread over seven fragments
    ids = [corpus.documents[row].id for row in order]
    staged = stage(workspace, corpus, order.tolist(), ids, single_process.vectors[order], rows_per_file=16)
    adopt_staged_table(workspace, corpus, encoder, staged)
    assert corpus_table_is_current(workspace, corpus, encoder)
    counting = CountingEncoder(encoder)
    index, report = open_vector_index(workspace, corpus, counting)  # the engine's own checks, checksum included
    assert report.reused and np.array_equal(index.vectors, single_process.vectors[:100])
    assert index.table.schema.names == ["row", "id", "vector"]  # the cache keys the actors wrote are dropped
    # the cache was fed while the table was read back: a one-process rebuild of the same texts encodes none
    grown = replace(corpus, name="adopted-grown", documents=tuple(reversed(corpus.documents)))
    _, grown_report = open_vector_index(workspace, grown, counting)
    assert counting.encoded == 0 and grown_report.cached == 100


def test_a_staged_table_missing_a_row_or_with_a_wrong_id_is_refused_and_the_previous_table_kept(
        tmp_path, session_workspace, csn_mini, encoder, single_process):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    corpus = small_corpus(csn_mini, 40)
    previous, _ = open_vector_index(workspace, corpus, encoder)
    ids, vectors = [d.id for d in corpus.documents], single_process.vectors[:40]
    with pytest.raises(IndexCorruptError, match="not each of the corpus's 40 rows once"):
        adopt_staged_table(workspace, corpus, encoder, stage(workspace, corpus, list(range(39)), ids[:39], vectors[:39]))
    with pytest.raises(IndexCorruptError, match="each of the corpus's 40 rows once"):  # row 3 twice, row 4 missing
        adopt_staged_table(workspace, corpus, encoder, stage(workspace, corpus, [0, 1, 2, 3, 3, *range(5, 40)], ids,
                                                             vectors, rows_per_file=20))
    swapped = ids[:5] + [ids[6], ids[5]] + ids[7:]
    with pytest.raises(IndexCorruptError, match="ids that do not match"):
        adopt_staged_table(workspace, corpus, encoder, stage(workspace, corpus, list(range(40)), swapped, vectors, rows_per_file=8))
    current = open_current_corpus_table(workspace, corpus, encoder)
    assert current is not None and np.array_equal(current.vectors, previous.vectors)


def test_adopting_a_rebuild_replaces_the_texts_cached_vectors(tmp_path, session_workspace, csn_mini, encoder, single_process):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    corpus = small_corpus(csn_mini, 30)
    open_vector_index(workspace, corpus, encoder)  # the cache holds these texts' vectors
    changed = -single_process.vectors[:30]  # another model run's vectors, as far as the cache can tell
    staged = stage(workspace, corpus, list(range(30)), [d.id for d in corpus.documents], changed)
    adopt_staged_table(workspace, corpus, encoder, staged, rebuild=True)
    cached = np.zeros_like(changed)
    cache = EmbeddingCache.for_encoder(workspace, encoder)
    assert cache.fill([text_key(d.full_text) for d in corpus.documents], cached).all()
    assert np.array_equal(cached, changed)


def test_a_table_whose_checksum_does_not_match_is_not_current(tmp_path, session_workspace, csn_mini, encoder):
    import lance

    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    corpus = small_corpus(csn_mini, 20)
    assert not corpus_table_is_current(workspace, corpus, encoder)
    open_vector_index(workspace, corpus, encoder)
    assert corpus_table_is_current(workspace, corpus, encoder)
    table = lance.dataset(str(workspace.vectors_dir / f"{corpus_table_name(corpus, encoder)}.lance"))
    meta = json.loads(table.schema.metadata[b"codeir"])
    table.update_schema_metadata({"codeir": json.dumps({**meta, "checksum": "00000000"})})
    assert not corpus_table_is_current(workspace, corpus, encoder)


@pytest.mark.slow
def test_lance_ray_builds_a_vector_index_over_every_row_that_the_engine_table_keeps(local_ray, tmp_path, session_workspace,
                                                                                   csn_mini, encoder, single_process):
    import lancedb

    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    ids = [d.id for d in csn_mini.documents]
    adopt_staged_table(workspace, csn_mini, encoder, stage(workspace, csn_mini, list(range(len(ids))), ids,
                                                           single_process.vectors, rows_per_file=100))
    name = corpus_table_name(csn_mini, encoder)
    build_vector_index_on_ray(workspace.vectors_dir / f"{name}.lance", "IVF_FLAT", 4, RayOptions(actors=1, cpus_per_actor=0.5))
    table = lancedb.connect(str(workspace.vectors_dir)).open_table(name)
    (index,) = table.list_indices()
    assert index.index_type == "IvfFlat" and index.num_unindexed_rows == 0 and index.num_indexed_rows == len(ids)
    queries = single_process.vectors[:5]
    for query in queries:  # every partition probed: the index finds the exact top 10
        hits = table.search(query).distance_type("dot").nprobes(4).limit(10).select(["row", "_distance"]).to_arrow()
        assert set(hits["row"].to_pylist()) == set(np.argsort(-(single_process.vectors @ query))[:10].tolist())
    assert open_vector_index(workspace, csn_mini, encoder)[1].reused  # the index leaves rows, ids and checksum as they were


def test_a_refused_token_says_what_to_set(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token here
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    assert "requires a token (token authentication): set RAY_AUTH_MODE=token" in token_advice("head:6379")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert "RAY_AUTH_MODE=token is set, but this process has none" in token_advice("head:6379")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0" * 32)
    advice = token_advice("head:6379")
    assert advice.startswith("The Ray cluster at head:6379 refused the token from RAY_AUTH_TOKEN")
    assert "`ray get-auth-token` on the head node" in advice


def test_more_actors_than_cpus_is_refused_before_the_job_waits_for_ever(local_ray):
    with pytest.raises(ClusterError, match="use at most 1 actor"):
        check_capacity(local_ray, RayOptions(actors=2))
    with pytest.raises(ClusterError, match="GPUs, but the cluster has 0"):
        check_capacity(local_ray, RayOptions(actors=1, cpus_per_actor=0.5, gpus_per_actor=1))
    check_capacity(local_ray, RayOptions(actors=2, cpus_per_actor=0.5))


def test_an_unreachable_address_fails_at_once_with_what_to_do():
    with pytest.raises(ClusterError, match="No Ray cluster answers at 127.0.0.1:9.*ray start --head"):
        connect(RayOptions(address="127.0.0.1:9"))
    with pytest.raises(ClusterError, match="not 'auto', 'host:port'"):
        connect(RayOptions(address="nowhere"))
    with pytest.raises(ClusterError, match="No Ray cluster answers at ray://127.0.0.1:9"):
        connect(RayOptions(address="ray://127.0.0.1:9"))


def test_missing_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "lance_ray", None)  # what `import lance_ray` meets where it is not installed
    with pytest.raises(ClusterError, match=r"pip install 'ray\[data\]==2.60.0'"):
        connect(RayOptions())


def test_a_ray_client_address_without_ray_client_installed_says_what_to_install():
    try:
        import grpc  # noqa: F401
        pytest.skip("Ray Client (grpc) is installed here")
    except ImportError:
        pass
    with socket.create_server(("127.0.0.1", 0)) as server:  # something listens, so the address is reachable
        address = f"ray://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(ClusterError, match=r"pip install 'ray\[client\]==2.60.0'"):
            connect(RayOptions(address=address))
