"""End-to-end runs of the launchers as subprocesses, with a tiny config, one after another
on one run directory (they share the test run's compilation cache, so later runs load the
programs the first compiled).

1. ``launch.local`` (``local_mp``: two actor processes, a two-device learner): training
   starts, an actor process killed mid-run is restarted and training goes on, Ctrl-C stops
   cleanly with a final checkpoint and no process left behind.
2. ``launch.cluster`` against a live head started the way users start one
   (``ray start --head --block``): the launcher connects by address, ships this checkout as
   the workers' working directory, resumes the run with identical counters and trains to the
   end.
3. ``launch.local`` (``local_mt``) resumes it again, validates each checkpoint it saves and
   finishes normally.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from learner.checkpoint import restore_for_eval
from tests.launch.ray_head import live_head

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS_PER_UPDATE = 4 * 8  # unroll_length x batch_size below
TINY_FLAGS = [
    "--config.learner.unroll_length=4",
    "--config.learner.batch_size=8",
    "--config.learner.minibatch_size=16",
    "--config.learner.num_epochs=1",
    "--config.learner.hidden_size=8",
    "--config.learner.num_heads=1",
    "--config.learner.num_encoder_layers=1",
    "--config.learner.checkpoint.save_every_updates=1000",
    "--config.actors.num_envs=4",
    "--config.env.horizon=6",
    "--config.runtime.progress_every_s=1",
    "--config.env.action_interface=setpoints",  # the runs are under test, not the market
]


def launch(run_dir, cache_dir, *flags):
    # The test run's shared cache (tests/conftest.py) when there is one: the cluster test's
    # node processes compile the same rollout and update.
    env = dict(os.environ)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache_dir))
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    log = open(os.path.join(run_dir, "..", f"{os.path.basename(run_dir)}-{time.time()}.log"), "w")
    command = [sys.executable, "-m", "launch.local", f"--run_dir={run_dir}", *TINY_FLAGS, *flags]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def resume_on_a_live_head(tmp_path, run_dir, total_env_steps):
    """``launch.cluster --resume`` on a head of its own until ``total_env_steps``; the summary."""
    with live_head(tmp_path / "head.log") as address:
        command = [
            sys.executable,
            "-m",
            "launch.cluster",
            f"--ray_address={address}",
            f"--run_dir={run_dir}",
            "--resume",
            f"--total_env_steps={total_env_steps}",
            # One device per actor process, as in the local_mp run: the same rollout program.
            "--config.runtime.actor_processes=2",
            *TINY_FLAGS,
        ]
        with open(tmp_path / "cluster.log", "w") as log:
            launcher = subprocess.run(
                command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=400
            )
    output = (tmp_path / "cluster.log").read_text()
    assert launcher.returncode == 0, output[-3000:]
    return read_json(run_dir / "summary.json")


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def wait_for(condition, timeout, process, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"launcher exited with {process.returncode} while waiting for {what}")
        time.sleep(0.25)
    process.kill()
    pytest.fail(f"timed out waiting for {what}")


def progress_at_least(run_dir, update, restarts=0):
    progress = read_json(os.path.join(run_dir, "progress.json"))
    ok = progress and progress.get("update", 0) >= update
    return progress if ok and progress.get("actor_restarts", 0) >= restarts else None


def replaced(run_dir, name, old_pid):
    nodes = read_json(os.path.join(run_dir, "nodes.json"))
    return nodes if nodes and nodes[name] != old_pid else None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_local_mp_recovers_from_a_kill_and_stops_on_ctrl_c_then_cluster_and_local_mt_resume(
    tmp_path,
):
    run_dir, cache = tmp_path / "run", tmp_path / "xla-cache"
    run_dir.mkdir()
    process = launch(
        run_dir, cache, "--config.runtime.actor_processes=2", "--total_env_steps=10000000"
    )
    try:
        wait_for(lambda: progress_at_least(run_dir, 2), 240, process, "training to start")
        nodes = read_json(run_dir / "nodes.json")
        killed = nodes["actor-0"]
        os.kill(killed, signal.SIGKILL)
        new_nodes = wait_for(
            lambda: replaced(run_dir, "actor-0", killed), 240, process, "a restarted actor"
        )
        assert alive(new_nodes["actor-0"])
        at_restart = read_json(run_dir / "progress.json")["update"]
        restarted = wait_for(
            lambda: progress_at_least(run_dir, at_restart + 5, restarts=1),
            240,
            process,
            "training to go on after the restart",
        )
        assert restarted["actor_restarts"] == 1
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()

    summary = read_json(run_dir / "summary.json")
    assert summary["stopped_early"] and summary["actor_restarts"] == 1
    # The node processes' compiles, summed by the supervisor (what the XLA cache line shows).
    ray_compiles = summary["compilation_cache"]
    assert ray_compiles["programs"] > 0 and 0 <= ray_compiles["loaded"] <= ray_compiles["programs"]
    stopped_at = summary["update"]
    assert stopped_at >= at_restart + 5
    assert str(stopped_at) in os.listdir(run_dir / "checkpoints")  # the final checkpoint
    events = os.listdir(run_dir / "tensorboard")
    assert any(name.startswith("events.out.tfevents") for name in events)
    deadline = time.monotonic() + 15
    pids = [*new_nodes.values(), killed]
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not any(alive(pid) for pid in pids), "node processes outlived the launcher"
    assert not (run_dir / ".lock").exists()

    on_cluster = stopped_at + 2
    summary = resume_on_a_live_head(tmp_path, run_dir, on_cluster * STEPS_PER_UPDATE)
    assert summary["start_update"] == stopped_at and summary["update"] == on_cluster
    assert summary["env_steps"] == on_cluster * STEPS_PER_UPDATE
    assert not summary["stopped_early"] and summary["actor_restarts"] == 0
    assert str(on_cluster) in os.listdir(run_dir / "checkpoints")
    assert not (run_dir / ".lock").exists()
    stopped_at = on_cluster

    total = (stopped_at + 3) * STEPS_PER_UPDATE
    resumed = launch(  # one actor thread: one rollout compile (each device is a cache key)
        run_dir,
        cache,
        "--resume",
        "--launch_type=local_mt",
        "--config.runtime.actor_devices=0",
        f"--total_env_steps={total}",
        # the resumed updates validate each checkpoint (the setpoints interface has no
        # teacher, so they are ranked by cost)
        "--config.learner.checkpoint.save_every_updates=1",
        "--config.learner.checkpoint.validation_episodes=1",
        "--config.learner.checkpoint.best_metric=validation/cost",
    )
    assert resumed.wait(timeout=240) == 0
    summary = read_json(run_dir / "summary.json")
    assert summary["start_update"] == stopped_at
    assert summary["update"] == stopped_at + 3
    resumed_steps = range(stopped_at + 1, stopped_at + 4)
    validated = {
        step: read_json(run_dir / "checkpoints" / str(step) / "metrics" / "metrics")
        for step in resumed_steps
    }
    costs = {step: validated[step]["validation/cost"] for step in resumed_steps}
    assert all(cost > 0 and math.isfinite(cost) for cost in costs.values())
    _, best_params, _, _ = restore_for_eval(run_dir / "checkpoints", best=True)
    _, cheapest_params, _, _ = restore_for_eval(
        run_dir / "checkpoints", step=min(costs, key=costs.get)
    )
    assert all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(best_params), jax.tree.leaves(cheapest_params), strict=True)
    )
    assert summary["env_steps"] == total and not summary["stopped_early"]
    assert summary["compilation_cache"]["programs"] > 0  # counted in the one process of local_mt
    queue = summary["queue"]  # one update's items (batch 8 / 4 grids per item), each measured
    assert queue["capacity"] == 2 and queue["item_bytes"] > 0
    assert queue["bound_bytes"] == 2 * queue["item_bytes"]
