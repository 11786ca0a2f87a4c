"""The Ray engine on a real multi-node Ray cluster on this machine, and against a head that requires a token.

``ray.cluster_utils.Cluster`` starts a head and two worker nodes of one CPU each: separate raylets, object stores and
worker pools, as on separate machines (they share the disk, as nodes of a real cluster share the workspace). The
jobs read csn-mini from its corpus store and embed it with a one-layer model built here (MiniLM's tokenizer, random
weights): what is tested is the pipeline, and this model loads in a second where MiniLM takes many on two loaded cores.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from core.data.corpus_store import open_corpus_store
from core.index.distributed import RayOptions, embed_corpus
from core.index.encoders import load_encoder
from core.index.vectors import open_vector_index
from core.workspace import PROJECT_ROOT, Workspace

pytestmark = pytest.mark.slow
ACTOR_TITLE = b"MapBatches(Embedder)"  # Ray names an actor's process after the operator it serves


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A sentence-transformers model of one 32-wide BERT layer (random weights, MiniLM's tokenizer), saved to a folder."""
    from bench.ray_driver import build_stand_in_model  # the stand-in the driver-memory benchmark measures with

    folder = build_stand_in_model(tmp_path_factory.mktemp("tiny-encoder"))
    return load_encoder(str(folder))  # a folder path is a model name every node can load


@pytest.fixture(scope="module")
def cluster():
    """A head and two worker nodes of one CPU each; the session's local Ray (if any) steps aside meanwhile."""
    import ray
    from ray.cluster_utils import Cluster

    was_local = ray.is_initialized()
    if was_local:
        ray.shutdown()
    # short (Ray's socket paths must fit in 107 bytes), and out of /tmp/ray: no other ray.init() on this machine joins it
    temp = tempfile.mkdtemp(prefix="rc-", dir="/tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", temp)
        started = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        try:
            for _ in range(2):
                started.add_node(num_cpus=1)
            started.wait_for_nodes()
            yield started
        finally:
            ray.shutdown()
            started.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
    if was_local:  # tests/conftest.py's local_ray, as it was
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, session_workspace, csn_mini, tiny_encoder):
    workspace = Workspace.open(tmp_path_factory.mktemp("one-process"), session_workspace.data_dir)
    return open_vector_index(workspace, csn_mini, tiny_encoder)[0]


def check_every_row_once(workspace, csn_mini, encoder, one_process) -> None:
    """The table the engine opens (reused: same name, metadata, checksum) holds every row once and the one-process vectors."""
    index, report = open_vector_index(workspace, csn_mini, encoder)
    assert report.reused
    table = index.table.to_arrow()
    assert sorted(table["row"].to_pylist()) == list(range(len(csn_mini.documents)))
    assert table.sort_by("row")["id"].to_pylist() == [d.id for d in csn_mini.documents]
    assert (index.vectors * one_process.vectors).sum(axis=1).min() >= 0.9999


def test_a_three_node_cluster_writes_the_table_one_process_writes(cluster, tmp_path, session_workspace, mini_data_dir,
                                                                  csn_mini, tiny_encoder, one_process):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    store, _ = open_corpus_store(workspace, "csn-mini", mini_data_dir / "csn-mini")
    assert len([n for n in cluster.list_all_nodes()]) == 3
    # two actors of one CPU on nodes of one CPU each: Ray must place them on two different nodes
    report = embed_corpus(workspace, store, tiny_encoder, RayOptions(address=cluster.address, actors=2, rows_per_block=32))
    assert not report.reused
    check_every_row_once(workspace, csn_mini, tiny_encoder, one_process)


def _parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def node_with_an_embedding_actor(cluster):
    """A worker node (not the driver's) running an embedding actor, found by the actor process's parent raylet."""
    import ray

    driver_raylet = ray._private.worker.global_worker.node._raylet_socket_name
    candidates = [n for n in cluster.worker_nodes if n._raylet_socket_name != driver_raylet]
    raylets = {n.all_processes["raylet"][0].process.pid: n for n in candidates}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and ACTOR_TITLE in (entry / "cmdline").read_bytes():
                node = raylets.get(_parent_pid(int(entry.name)))
                if node is not None:
                    return node
        except OSError:
            continue
    return None


def test_losing_a_worker_node_mid_job_still_writes_every_row_exactly_once(cluster, tmp_path, session_workspace,
                                                                        mini_data_dir, csn_mini, tiny_encoder,
                                                                        one_process):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    store, _ = open_corpus_store(workspace, "csn-mini", mini_data_dir / "csn-mini")
    removed: list = []
    times: dict[str, float] = {}

    def remove(node) -> None:
        cluster.remove_node(node)  # kills the node's raylet, object store and workers, the embedding actor among them
        times["node gone"] = time.monotonic()

    def remove_a_node_once_blocks_are_done(fraction: float) -> None:
        if not removed and 0.1 < fraction < 0.6:
            node = node_with_an_embedding_actor(cluster)
            if node is not None:
                removed.append(node)
                threading.Thread(target=remove, args=(node,), daemon=True).start()
        if fraction == 1.0:
            times["embedded"] = time.monotonic()

    # half-CPU actors: the two nodes left hold both actors and the read and write tasks
    embed_corpus(workspace, store, tiny_encoder, RayOptions(address=cluster.address, actors=2, cpus_per_actor=0.5,
                                                            rows_per_block=8), progress=remove_a_node_once_blocks_are_done)
    assert removed, "no worker node running an embedding actor was found while the job ran"
    assert times["node gone"] < times["embedded"]  # the node left while blocks were still being embedded
    assert len(cluster.worker_nodes) == 1
    check_every_row_once(workspace, csn_mini, tiny_encoder, one_process)


def test_a_head_that_requires_a_token_refuses_a_driver_without_it_and_says_what_to_set(tmp_path):
    """Ray 2.60: a token in ~/.ray/auth_token makes `ray start --head` require it; a driver given an address must send it."""
    home, bare_home, temp = tmp_path / "head-home", tmp_path / "driver-home", tempfile.mkdtemp(prefix="ra-", dir="/tmp")
    bare_home.mkdir()
    env = {**os.environ, "HOME": str(home), "RAY_TMPDIR": temp, "PYTHONPATH": str(PROJECT_ROOT)}
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(name, None)
    subprocess.run(["ray", "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    token = (home / ".ray" / "auth_token").read_text().strip()
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = subprocess.Popen(["ray", "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                             "--disable-usage-stats", "--block"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for_port(port, head)
        probe = ("from core.errors import ClusterError\nfrom core.index.distributed import RayOptions, connect\n"
                 f"try:\n    ray, _ = connect(RayOptions(address={address!r}))\n    print('CPUs', ray.cluster_resources()['CPU'])\n"
                 "except ClusterError as exc:\n    print(exc)\n")
        # one try at the GCS instead of Ray's ~20 s of retries
        driver = {**env, "HOME": str(bare_home), "RAY_gcs_server_port_wait_time_s": "1"}
        refused = subprocess.run([sys.executable, "-c", probe], env=driver, capture_output=True, text=True, timeout=120)
        assert f"The Ray cluster at {address} requires a token (token authentication): set RAY_AUTH_MODE=token" in refused.stdout
        # what docs/scale.md tells a user to do
        joined = subprocess.run([sys.executable, "-c", probe], env={**driver, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
                                capture_output=True, text=True, timeout=120)
        assert "CPUs 1.0" in joined.stdout, joined.stdout + joined.stderr[-2000:]
    finally:
        head.terminate()  # `ray start --block` drains and stops the node's processes on SIGTERM
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def free_port() -> int:
    """A TCP port free on this machine now (bound, then released for the head to take)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ray start --head exited: {process.stdout.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"ray start --head did not listen on {port} within {timeout} s")
