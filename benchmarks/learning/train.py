"""Training: each seed runs ``python -m launch.local`` for the budget's wall clock, then SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.learning.curve import checkpoint_times
from benchmarks.learning.settings import (
    ASSUMED_ENV_STEPS_PER_S,
    LAUNCH_RECORD,
    REPO,
    SAVES_PER_EVALUATED,
    STOP_GRACE_S,
    UNBOUNDED_ENV_STEPS,
    Settings,
    load_preset,
    progress,
)


def save_cadence(budget_s: float, env_steps_per_update: int, checkpoints: int) -> int:
    """Updates between saves: about ``SAVES_PER_EVALUATED`` saves per evaluated point at the
    assumed rate, so every grid time has a recent checkpoint without saving every update."""
    updates = budget_s * ASSUMED_ENV_STEPS_PER_S / max(env_steps_per_update, 1)
    return max(1, int(updates // (SAVES_PER_EVALUATED * checkpoints)))


def train_command(settings: Settings, run_dir: Path, seed: int, save_every: int) -> list[str]:
    """The launcher's command line; the user's overrides come last and so win."""
    return [
        sys.executable,
        "-m",
        "launch.local",
        f"--config={settings.config_path}",
        f"--run_dir={run_dir}",
        f"--seed={seed}",
        f"--total_env_steps={UNBOUNDED_ENV_STEPS}",
        f"--config.learner.checkpoint.save_every_updates={save_every}",
        "--config.learner.checkpoint.max_to_keep=100000",
        *settings.overrides,
    ]


def _stop(process: subprocess.Popen) -> int:
    """SIGINT: the launcher stops cleanly with a final checkpoint; a second SIGINT aborts it,
    and only a process that ignores both is killed."""
    for sig, wait_s in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGINT, 30.0)):
        if process.poll() is not None:
            break
        process.send_signal(sig)
        try:
            return process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            progress(f"pid {process.pid} still running {wait_s:.0f} s after SIGINT")
    if process.poll() is None:
        process.kill()
    return process.wait()


def train_for_budget(command: list[str], run_dir: Path, budget_s: float, env: dict) -> dict:
    """Run ``command`` for ``budget_s`` of wall clock, then stop it; the launch record."""
    log_path = run_dir.with_suffix(".log")
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        start = time.time()
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = process.wait(timeout=budget_s)
            stopped = False
        except subprocess.TimeoutExpired:
            stopped = True
        except KeyboardInterrupt:
            _stop(process)
            raise
        signalled = time.time() - start
        if stopped:
            code = _stop(process)
    record = {
        "start_epoch_s": start,
        "budget_s": budget_s,
        "stopped_at_budget": stopped,
        "signal_s": signalled if stopped else None,
        "exit_s": time.time() - start,
        "exit_code": code,
        "command": command,
        "log": str(log_path),
        "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    (run_dir / LAUNCH_RECORD).write_text(json.dumps(record, indent=2))
    return record


def train_seeds(settings: Settings) -> list[Path]:
    """One run per seed, one after another (each has the whole machine)."""
    config = load_preset(settings.config_path, settings.overrides)
    steps_per_update = int(config.learner.unroll_length) * int(config.learner.batch_size)
    save_every = settings.save_every_updates or save_cadence(
        settings.budget_s, steps_per_update, settings.checkpoints
    )
    runs = []
    for seed in settings.seeds:
        run_dir = settings.out_dir / "runs" / f"seed_{seed}"
        env = dict(os.environ)
        if settings.cold_cache:
            env["JAX_COMPILATION_CACHE_DIR"] = str(settings.out_dir / "xla_cache" / f"seed_{seed}")
        progress(
            f"seed {seed}: training for {settings.budget_s:.0f} s, a checkpoint every "
            f"{save_every} updates ({run_dir})"
        )
        command = train_command(settings, run_dir, seed, save_every)
        record = train_for_budget(command, run_dir, settings.budget_s, env)
        times = checkpoint_times(run_dir / "checkpoints", record["start_epoch_s"])
        within = sum(t <= settings.budget_s for t in times.values())
        progress(
            f"seed {seed}: exit {record['exit_code']} at {record['exit_s']:.0f} s, "
            f"{len(times)} checkpoints, {within} within the budget (log {record['log']})"
        )
        failed = record["exit_code"] != 0 and not record["stopped_at_budget"]
        if failed or not times:
            raise RuntimeError(
                f"seed {seed}: training failed or saved nothing; see {record['log']}"
            )
        runs.append(run_dir)
    return runs
