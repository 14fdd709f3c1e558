"""A live Ray head for launcher tests, started the way users start one.

``ray start --head --block`` in its own process group, so stopping it never touches another
Ray instance on the machine.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from launch.cluster import check_head_reachable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ray_executable() -> str:
    beside_python = os.path.join(os.path.dirname(sys.executable), "ray")
    return beside_python if os.path.exists(beside_python) else shutil.which("ray")


def start_head(port: int, log) -> subprocess.Popen:
    command = [
        ray_executable(),
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=4",
        "--include-dashboard=false",
        "--disable-usage-stats",
        "--block",
    ]
    # The head drains for up to 30 s on SIGTERM, through a GCS that the same signal to the
    # group has already stopped; a test head has nothing to drain.
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_until_reachable(address: str, head: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check_head_reachable(address, timeout_s=1.0)
            return
        except ConnectionError:
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not come up (exit status {head.poll()})")
            time.sleep(0.5)


def stop_head(head: subprocess.Popen) -> None:
    if head.poll() is None:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)


@contextlib.contextmanager
def live_head(log_path):
    """Yield the ``HOST:PORT`` of a running head; stop it (and its process group) after."""
    port = free_port()
    with open(log_path, "w") as log:
        head = start_head(port, log)
        try:
            address = f"127.0.0.1:{port}"
            wait_until_reachable(address, head, timeout_s=120)
            yield address
        finally:
            stop_head(head)
