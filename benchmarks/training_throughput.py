"""End-to-end training throughput of gridpod's runtime vs its parts, measured in one run.

    python -m benchmarks.training_throughput                      # case14, default preset
    python -m benchmarks.training_throughput --case=ieee118       # configs/ieee118.py

1. *actor alone*: the actor node on devices 0,1 feeding a queue that drops every item;
2. *learner alone*: ``Learner.update`` on devices 2,3 with a fixed batch of real rollouts;
3. *end to end*: ``python -m launch.local`` with ``--launch_type=local_mp`` and ``local_mt``
   (its summary gives steady-state steps/s after compilation, policy lag, idle fractions and
   the queue's memory bound), while a sampler records the RSS of every process of the run:
   its peak and its growth over the run's second half (flat in a steady state).

Each end-to-end entry also gives its ratio to the slowest stage alone and to the two stages
taking turns on the whole host (``stage_ratios``). Prints JSON as it goes (``--out`` saves it).
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import importlib
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time

import jax
import numpy as np
from absl import app, flags

from benchmarks.harness import define_once
from benchmarks.process_memory import memory_report, sample_rss

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = {"ieee14": "configs/default.py", "ieee118": "configs/ieee118.py"}

define_once(flags.DEFINE_enum, "case", "ieee14", list(PRESETS), "Preset to measure.")
define_once(flags.DEFINE_integer, "env_steps", 1_000_000, "Env steps of each end-to-end run.")
define_once(flags.DEFINE_float, "standalone_s", 20.0, "Seconds of each standalone measurement.")
define_once(flags.DEFINE_list, "modes", ["local_mp", "local_mt"], "End-to-end launch types.")
define_once(flags.DEFINE_list, "overrides", [], "Extra --config.x=y flags for every measurement.")
define_once(flags.DEFINE_string, "out", "", "JSON output path (default: print only).")
FLAGS = flags.FLAGS


def load_config():
    module = importlib.import_module(PRESETS[FLAGS.case].removesuffix(".py").replace("/", "."))
    config = module.get_config()
    for override in FLAGS.overrides:
        key, value = override.removeprefix("--config.").split("=", 1)
        *path, leaf = key.split(".")
        node = config
        for part in path:
            node = node[part]
        if isinstance(node[leaf], bool):
            node[leaf] = value.lower() in ("1", "true")
        else:
            node[leaf] = type(node[leaf])(value)
    return config


class DropQueue:
    """A queue that counts and drops items: the actor runs unthrottled."""

    def __init__(self):
        self.items, self.last = 0, None

    def put(self, item, timeout=None):
        self.items += 1
        self.last = item

    def size(self):
        return 0


def measure_actor(config) -> tuple[float, object]:
    from actors.actor import ActorNode
    from learner.acting import build_env_and_policy
    from replay.variable_server import VariableServer

    env, env_params, policy = build_env_and_policy(config)
    variables = VariableServer()
    variables.publish(0, policy.init(jax.random.PRNGKey(0)), policy.init_norm_state())
    queue = DropQueue()
    node = ActorNode(config, 0, (0, 1), queue, variables, lambda c: (env, env_params, policy))
    thread = threading.Thread(target=node.run, daemon=True)
    thread.start()
    # Each device compiles its own rollout executable: wait until every thread is warm.
    while node.stats().get("min_thread_rollouts", 0) < 2:
        time.sleep(0.2)
    start_steps, start = node.stats()["env_steps"], time.perf_counter()
    time.sleep(FLAGS.standalone_s)
    rate = (node.stats()["env_steps"] - start_steps) / (time.perf_counter() - start)
    node.stop()
    thread.join(timeout=120)
    return rate, queue.last.trajectory


def measure_learner(config, trajectory) -> float:
    from envs.env import make_env
    from learner.learner import Learner

    env, env_params = make_env(config.env)
    learner = Learner(config.learner, env.spec(env_params), jax.devices()[2:4])
    # The learner node's input: one item per learner device (copies of a real rollout).
    copies = config.learner.batch_size // trajectory.reward.shape[1]
    state = learner.init(jax.random.PRNGKey(0))
    state, metrics = learner.update_parts(state, [jax.tree.map(np.copy, trajectory)] * copies)
    jax.block_until_ready(metrics)
    updates, start = 0, time.perf_counter()
    while time.perf_counter() - start < FLAGS.standalone_s:
        parts = [jax.tree.map(np.copy, trajectory) for _ in range(copies)]
        state, metrics = learner.update_parts(state, parts)
        jax.block_until_ready(metrics)
        updates += 1
    elapsed = time.perf_counter() - start
    return updates * config.learner.unroll_length * config.learner.batch_size / elapsed


def run_end_to_end(mode: str) -> dict:
    run_dir = tempfile.mkdtemp(prefix=f"gridpod-bench-{mode}-")
    command = [
        sys.executable,
        "-m",
        "launch.local",
        f"--launch_type={mode}",
        f"--config={os.path.join(REPO, PRESETS[FLAGS.case])}",
        f"--run_dir={run_dir}",
        f"--total_env_steps={FLAGS.env_steps}",
        *FLAGS.overrides,
    ]
    series: dict = {}
    stop = threading.Event()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    sampler = threading.Thread(target=sample_rss, args=(process.pid, series, stop), daemon=True)
    sampler.start()
    code = process.wait()
    stop.set()
    if code:
        raise RuntimeError(f"{mode} run failed with exit code {code}: {' '.join(command)}")
    with open(os.path.join(run_dir, "summary.json")) as handle:
        summary = json.load(handle)
    with open(os.path.join(run_dir, "nodes.json")) as handle:
        nodes = json.load(handle)  # {node name: pid}
    return {
        "steps_per_s": summary["mean_steps_per_s"],
        "wall_s": time.perf_counter() - started,
        "policy_lag": summary["last"].get("runtime/policy_lag"),
        "learner_idle": summary["learner_idle_fraction"],
        "actor_idle": summary.get("actors", {}).get("idle_fraction"),
        "memory": memory_report(series, nodes),
        "queue": summary.get("queue"),
    }


def main(argv) -> None:
    del argv
    from launch.threefry_lowering import unroll_threefry_on_cpu

    unroll_threefry_on_cpu()  # as the launcher's node processes do
    config = load_config()
    results = {
        "host": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "case": FLAGS.case,
        "overrides": FLAGS.overrides,
        # Other jobs on the machine depress every figure: record how busy it was.
        "load_average_at_start": os.getloadavg(),
    }
    results["actor_alone"], trajectory = measure_actor(config)
    report(results)
    results["learner_alone"] = measure_learner(config, trajectory)
    report(results)
    for mode in FLAGS.modes:
        try:
            results[mode] = run_end_to_end(mode)
            results[mode] |= stage_ratios(results, mode)
        except RuntimeError as error:  # keep the other measurements
            results[mode] = {"error": str(error)}
        report(results)


def stage_ratios(results: dict, mode: str) -> dict:
    """End to end against the stages alone, after ``run_end_to_end`` filled ``results[mode]``.

    ``of_slowest_stage``: against the slower stage alone (the pipeline's overhead when actors
    and learner have hardware of their own). ``of_time_sharing``: against
    ``1 / (1/actor + 1/learner)``, the rate if the two stages took turns on the whole host,
    the ceiling when both share the same cores (as on a CPU host): above 1 they overlap.
    """
    actor, learner = results["actor_alone"], results["learner_alone"]
    rate = results[mode]["steps_per_s"]
    return {
        "of_slowest_stage": rate / min(actor, learner),
        "of_time_sharing": rate * (1.0 / actor + 1.0 / learner),
    }


def report(results: dict) -> None:
    """Print (and save) what has been measured so far."""
    results["load_average_now"] = os.getloadavg()
    print(json.dumps(results, indent=2), flush=True)
    if FLAGS.out:
        with open(FLAGS.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    app.run(main)
