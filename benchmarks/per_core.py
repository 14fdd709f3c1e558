"""The whole machine's env throughput: one process pinned to each usable core, stepping at once.

One XLA:CPU process runs a step's ops one after another (its thread pool splits few of them),
so on the 2-core VM a single process kept ~1.3 cores busy; and a per-process batch small
enough to stay in cache (B = 128 for ieee14) steps faster per core than B = 4096. Two pinned
processes of B = 128 made ~300k ieee14 steps/s where the best single process made ~150k.
This is also how gridpod's own actors use a CPU host: one pinned process per device.

Each worker is ``python -m benchmarks.per_core --core=K ...``: it pins itself to core K
before JAX starts, compiles the same rollout as ``env_throughput``, says ``ready``, waits for
``go`` on stdin, then times for ``--min_time`` seconds and prints one JSON line. The parent
starts every worker's timing at once, so the windows overlap, and sums the rates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def measure_all_cores(
    case: str, physics: str, batch: int, min_time: float, cores: list[int] | None = None
) -> dict:
    """Summed steps/s of one pinned process per core, each stepping ``batch`` grids."""
    cores = usable_cores() if cores is None else cores
    command = [sys.executable, "-m", "benchmarks.per_core", f"--case={case}"]
    command += [f"--physics={physics}", f"--batch={batch}", f"--min_time={min_time}"]
    workers = [
        subprocess.Popen(
            [*command, f"--core={core}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for core in cores
    ]
    try:
        for core, worker in zip(cores, workers, strict=True):
            _expect(worker, core, "ready")
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = [
            json.loads(_expect(worker, core, "{"))
            for core, worker in zip(cores, workers, strict=True)
        ]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
    rates = [r["rate"] for r in results]
    return {
        "rate": sum(rates),
        "per_core": rates,
        "cores": len(cores),
        "steps": results[0]["steps"],
        "compile_s": max(r["compile_s"] for r in results),
    }


def _expect(worker: subprocess.Popen, core: int, prefix: str) -> str:
    """The worker's next stdout line that starts with ``prefix``; a clear error if it died."""
    for line in worker.stdout:
        if line.startswith(prefix):
            return line
    code = worker.wait()
    raise RuntimeError(f"per-core worker on core {core} exited with status {code} (see stderr)")


def _worker(args: argparse.Namespace) -> None:
    if hasattr(os, "sched_setaffinity"):  # before JAX: its thread pools size to one core
        os.sched_setaffinity(0, {args.core})
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=1"
    )
    from benchmarks.harness import make_grid_env, timed_rate, warmed_rollout
    from launch.threefry_lowering import unroll_threefry_on_cpu

    unroll_threefry_on_cpu()  # as the main benchmark process does

    env, params = make_grid_env(args.case, args.physics)
    call, steps, compile_s, _ = warmed_rollout(
        env, params, env.spec(params), args.batch, 1 + args.core
    )
    print("ready", flush=True)
    sys.stdin.readline()
    rate = timed_rate(call, args.batch * steps, args.min_time)
    print(json.dumps({"rate": rate, "steps": steps, "compile_s": compile_s}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", type=int, required=True)
    parser.add_argument("--case", required=True)
    parser.add_argument("--physics", default="dc")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--min_time", type=float, default=2.0)
    _worker(parser.parse_args())


if __name__ == "__main__":
    main()
