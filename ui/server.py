"""Start and stop a local dashboard server: ``streamlit run app.py`` on a free loopback port.

Used by the browser tests and by scripts/screenshots.py, which both need a real server on a
workspace of their choosing, and must leave no process behind.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServerStartError(RuntimeError):
    """The server exited or did not answer its health check in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    """Whether streamlit's health endpoint under ``url`` answers ok."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read().strip() == b"ok"
    except OSError:
        return False


def start_server(workspace: Path, data_dir: Path | None, log: Path, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """Start the dashboard on ``workspace`` (and ``data_dir``) and wait until it is healthy; returns (process, url).

    The file watcher is off: other work editing sources must not reload modules under a running test.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CODEIR_WORKSPACE": str(workspace), "HF_HUB_OFFLINE": "1"}
    if data_dir is not None:
        env["CODEIR_DATA_DIR"] = str(data_dir)
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(process)
            raise ServerStartError(f"streamlit did not start on {url}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    return process, url


def stop_server(process: subprocess.Popen) -> None:
    """End the server's whole process group (streamlit and anything it started)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    except ProcessLookupError:  # it ended between poll() and the signal
        process.wait()
