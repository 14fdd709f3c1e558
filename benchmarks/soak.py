"""Soak: train the default preset for a fixed wall-clock time and watch every process's memory.

    python -m benchmarks.soak --duration_s=3600 --out=soak.json

Starts ``python -m launch.local`` (``local_mp``) with an unbounded step budget, samples the
RSS of every process of the run's tree every few seconds, stops the run with SIGINT (which
saves a final checkpoint) after ``--duration_s``, and prints per process the peak RSS and
the growth over the second half. A steady state is flat there: the target is < 5 %.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time

from absl import app, flags

from benchmarks.harness import define_once
from benchmarks.process_memory import memory_report, sample_rss

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROWTH_TARGET_PCT = 5.0

define_once(
    flags.DEFINE_float, "duration_s", 3600.0, "Wall-clock seconds of training before SIGINT."
)
define_once(
    flags.DEFINE_string, "config", "configs/default.py", "Preset, relative to the repository."
)
define_once(flags.DEFINE_float, "sample_every_s", 5.0, "RSS sampling period.")
define_once(flags.DEFINE_string, "out", "", "JSON output path (default: print only).")
FLAGS = flags.FLAGS


def soak(duration_s: float) -> dict:
    run_dir = tempfile.mkdtemp(prefix="gridpod-soak-")
    command = [
        sys.executable,
        "-m",
        "launch.local",
        f"--config={os.path.join(REPO, FLAGS.config)}",
        f"--run_dir={run_dir}",
        "--total_env_steps=1000000000000",
    ]
    series: dict = {}
    stop = threading.Event()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    sampler = threading.Thread(
        target=sample_rss, args=(process.pid, series, stop, FLAGS.sample_every_s), daemon=True
    )
    sampler.start()
    deadline = time.monotonic() + duration_s
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(1.0)
    if process.poll() is not None:
        stop.set()
        raise RuntimeError(f"the run ended early with exit code {process.returncode}")
    stop.set()  # the shutdown's own memory is not the steady state
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=300)
    with open(os.path.join(run_dir, "nodes.json")) as handle:
        nodes = json.load(handle)
    summary_path = os.path.join(run_dir, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    memory = memory_report(series, nodes, processes=8)
    return {
        "host": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "duration_s": duration_s,
        "exit_code": code,
        "env_steps": summary.get("env_steps"),
        "steps_per_s": summary.get("mean_steps_per_s"),
        "memory": memory,
        "max_growth_pct": max(m["second_half_growth_pct"] for m in memory.values()),
        "target_growth_pct": GROWTH_TARGET_PCT,
    }


def main(argv) -> None:
    del argv
    result = soak(FLAGS.duration_s)
    text = json.dumps(result, indent=2)
    print(text)
    print(
        f"largest second-half growth {result['max_growth_pct']:.2f} % "
        f"(target < {GROWTH_TARGET_PCT:.0f} %): "
        + ("met" if result["max_growth_pct"] < GROWTH_TARGET_PCT else "NOT met")
    )
    if FLAGS.out:
        with open(FLAGS.out, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    app.run(main)
