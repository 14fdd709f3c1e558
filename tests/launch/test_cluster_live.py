"""``python -m launch.cluster`` against a live head started the way users start one.

The head is ``ray start --head --block`` in its own process group (so stopping it never
touches another Ray instance on the machine); the launcher connects by address, ships
this checkout as the workers' working directory and trains a tiny config to the end.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from launch.cluster import check_head_reachable
from tests.launch.test_local_runs import REPO, STEPS_PER_UPDATE, TINY_FLAGS


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


@pytest.mark.slow
def test_cluster_launcher_trains_to_the_end_on_a_live_head(tmp_path):
    port = free_port()
    address = f"127.0.0.1:{port}"
    with open(tmp_path / "head.log", "w") as head_log:
        head = start_head(port, head_log)
        try:
            wait_until_reachable(address, head, timeout_s=120)
            run_dir = tmp_path / "run"
            total = 3 * STEPS_PER_UPDATE
            command = [
                sys.executable,
                "-m",
                "launch.cluster",
                f"--ray_address={address}",
                f"--run_dir={run_dir}",
                f"--total_env_steps={total}",
                "--config.evaluator.enabled=False",
                # One device per actor process, as in test_local_runs: the same rollout program,
                # compiled once for both tests through the test run's compilation cache.
                "--config.runtime.actor_processes=2",
                *TINY_FLAGS,
            ]
            with open(tmp_path / "launcher.log", "w") as log:
                launcher = subprocess.run(
                    command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=400
                )
            output = (tmp_path / "launcher.log").read_text()
            assert launcher.returncode == 0, output[-3000:]
        finally:
            stop_head(head)

    with open(run_dir / "summary.json") as handle:
        summary = json.load(handle)
    assert summary["env_steps"] == total and summary["update"] == 3
    assert not summary["stopped_early"] and summary["actor_restarts"] == 0
    assert "3" in os.listdir(run_dir / "checkpoints")
    assert not (run_dir / ".lock").exists()
