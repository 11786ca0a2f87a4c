"""Corpus embedding on Ray Data: equal to the single-process table, every document exactly once when an actor dies.

One local Ray (two CPUs, the ``local_ray`` fixture) serves the session; each job starts its own actor pool, which loads MiniLM.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.data.datasets import Qrels
from core.errors import ClusterError
from core.index.distributed import RayOptions, check_capacity, connect, embed_corpus
from core.index.encoders import load_encoder
from core.index.vectors import corpus_table_name, open_current_corpus_table, open_vector_index
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


def test_two_actors_write_the_table_the_single_process_build_writes(local_ray, tmp_path, session_workspace, csn_mini,
                                                                     encoder, single_process):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    fractions = []
    index, report = embed_corpus(workspace, csn_mini, encoder, RayOptions(actors=2, cpus_per_actor=0.5, rows_per_block=64),
                                 progress=fractions.append)
    assert not report.reused and fractions[-1] == 1.0
    cosines = (index.vectors * single_process.vectors).sum(axis=1)
    assert cosines.min() >= 0.9999
    query_vectors = encoder.encode([q.text for q in csn_mini.queries])
    assert np.array_equal(index.search(query_vectors, 100).rows, single_process.search(query_vectors, 100).rows)
    # the engine's own opener finds it under its name and reuses it: the same layout, metadata and checksum
    reopened, reopen_report = open_vector_index(workspace, csn_mini, encoder)
    assert reopen_report.reused and np.array_equal(reopened.vectors, index.vectors)
    assert (workspace.vectors_dir / f"{corpus_table_name(csn_mini, encoder)}.lance").is_dir()
    assert not any((workspace.vectors_dir / ".ray-staging").iterdir())


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

    index, _ = embed_corpus(workspace, corpus, encoder, RayOptions(actors=1, rows_per_block=16),
                            progress=kill_one_actor_once)
    assert killed, "no embedding actor was found to kill while the job ran"
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
    on_ray, _ = embed_corpus(workspace, corpus, encoder, RayOptions(actors=1, rows_per_block=16))
    # another dataset sharing those texts, in another order, plus five texts Ray never saw
    extra = csn_mini.documents[48:53]
    grown = replace(corpus, name="ray-cache-grown", documents=tuple(reversed(corpus.documents)) + extra)
    counting = CountingEncoder(encoder)
    index, report = open_vector_index(workspace, grown, counting)
    assert counting.encoded == len(extra) and report.cached == len(corpus.documents)
    assert np.array_equal(index.vectors[:len(corpus.documents)], on_ray.vectors[::-1])


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
