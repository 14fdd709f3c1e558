"""Resident memory of every process of a training run, sampled while it runs.

Shared by the benchmarks that start ``launch.local`` (training_throughput, soak): a sampler
thread records each process of the run's tree, and ``memory_report`` turns the series into
peak RSS and growth over the run's second half (a steady state is flat there).
"""

from __future__ import annotations

import threading
import time

import psutil


def sample_rss(root_pid: int, series: dict, stop: threading.Event, period_s: float = 0.5):
    """``{pid: (name, [(seconds since start, bytes), ...])}`` for the tree under ``root_pid``."""
    start = time.perf_counter()
    while not stop.is_set():
        try:
            root = psutil.Process(root_pid)
            for proc in [root, *root.children(recursive=True)]:
                name = " ".join(proc.cmdline()[:3]).strip()[:48]
                if name.startswith("ray::"):  # Ray retitles workers per running method
                    name = name.split(".")[0].split()[0]
                samples = series.setdefault(proc.pid, (name, []))[1]
                samples.append((time.perf_counter() - start, proc.memory_info().rss))
        except psutil.Error:
            pass
        stop.wait(period_s)


def memory_report(series: dict, node_pids: dict, processes: int = 6) -> dict:
    """Per process (the ``processes`` largest; named by the run's ``nodes.json``, ``{node:
    pid}``, where it is a node): peak RSS, and how much RSS grew over the run's second half
    (steady state: compilation and the first updates are in the first half)."""
    report = {}
    node_of = {pid: node for node, pid in node_pids.items()}
    ranked = sorted(series.items(), key=lambda kv: -max(rss for _, rss in kv[1][1]))
    for pid, (name, samples) in ranked[:processes]:
        name = node_of.get(pid, name)
        half = samples[-1][0] / 2
        at_half = min(samples, key=lambda sample: abs(sample[0] - half))[1]
        last = samples[-1][1]
        report[f"{name} (pid {pid})"] = {
            "peak_mb": max(rss for _, rss in samples) / 2**20,
            "second_half_growth_mb": (last - at_half) / 2**20,
            "second_half_growth_pct": 100.0 * (last - at_half) / max(at_half, 1),
        }
    return report
