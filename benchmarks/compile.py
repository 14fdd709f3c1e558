"""Where compile time goes: the programs a training run compiles before its first update.

    python -m benchmarks.compile                           # the default preset (ieee14)
    python -m benchmarks.compile --config=configs/ieee118.py --grids=32 --unroll=16
    XLA_FLAGS=--xla_backend_optimization_level=0 python -m benchmarks.compile   # the tests' level

Each program is jitted on its own in this process with the persistent compilation cache off,
called once (trace, lower, compile and run) and then ``--repeats`` more times (run only); its
compile time is the first call less the median of the others. The programs, smallest first:

* ``clearing QP``: the single-step DC-OPF that clears the bids, ``vmap`` over the grids;
* ``env step``: one ``GridEnv.step`` over the grids (the clearing QP inside it);
* ``actor rollout``: the actors' program, ``--unroll`` steps of policy and env in one scan;
* ``PPO update``: the learner's update on one rollout's trajectory.

A rollout compiles the env step once inside its scan, so its compile time is not the sum of
the rows above it; the rows say which part of the start-up each piece is.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from absl import app, flags

from benchmarks.harness import define_once, hardware_line

# The flags are defined when the benchmark runs, not when it is imported: a test process imports
# this module beside launch.cli, whose --config is a config file.
_FLAGS: dict = {}


def define_flags() -> None:
    if _FLAGS:
        return
    _FLAGS["config"] = define_once(
        flags.DEFINE_string, "config", "configs/default.py", "Preset, relative to the repository."
    )
    _FLAGS["grids"] = define_once(
        flags.DEFINE_integer, "grids", 0, "grids per program (0: the preset's actors.num_envs)"
    )
    _FLAGS["unroll"] = define_once(
        flags.DEFINE_integer, "unroll", 0, "rollout steps (0: the preset's unroll_length)"
    )
    _FLAGS["repeats"] = define_once(
        flags.DEFINE_integer, "repeats", 3, "timed calls after the first"
    )


class BenchmarkError(ValueError):
    """A flag value the benchmark cannot run with."""


def time_program(call: Callable[[], object], repeats: int) -> dict:
    """``{"first_s", "run_s", "compile_s"}`` of a jitted ``call`` (blocking on its result)."""
    import jax

    if repeats < 1:
        raise BenchmarkError(f"--repeats must be >= 1, got {repeats}")
    started = time.perf_counter()
    jax.block_until_ready(call())
    first = time.perf_counter() - started
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(call())
        runs.append(time.perf_counter() - started)
    run = statistics.median(runs)
    return {"first_s": first, "run_s": run, "compile_s": max(first - run, 0.0)}


def load_preset(path: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("preset", path)
    if spec is None or spec.loader is None:
        raise BenchmarkError(f"--config: cannot load {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def programs(config, grids: int, unroll: int) -> list[tuple[str, Callable[[], object]]]:
    """The named zero-argument calls of each program, built on ``grids`` fresh grids."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.learner_update import synthetic_batch
    from envs.action_interface import BID_QP_ITERATIONS
    from envs.opf.controls import MYOPIC_RATING_MARGIN
    from envs.opf.step_qp import solve_myopic_opf
    from learner.acting import build_env_and_policy
    from learner.learner import Learner
    from learner.train_loop import make_rollout, reset_batch

    config.learner.batch_size, config.learner.unroll_length = grids, unroll
    config.learner.minibatch_size = min(config.learner.minibatch_size, grids * unroll)
    env, params, _ = build_env_and_policy(config)
    spec = env.spec(params)
    key = jax.random.key(0)
    carry = reset_batch(env, params, key, grids)
    state = carry.env_state
    actions = jnp.zeros((grids, spec.num_agents, spec.action_dim), jnp.float32)
    keys = jax.random.split(key, grids)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    grid_states = getattr(state, "policy", state)  # the teacher-relative env pairs two states
    clear = jax.jit(
        jax.vmap(
            lambda s: solve_myopic_opf(
                s, params, MYOPIC_RATING_MARGIN, None, max_iter=BID_QP_ITERATIONS
            )
        )
    )
    learner = Learner(config.learner, spec, devices=jax.devices()[:1])
    learner_state = learner.init(key)
    rollout = make_rollout(
        env, params, learner.policy, np.asarray(spec.agent_mask), config.learner.unroll_length
    )
    carry = learner.replicate(carry)
    # The update's input is shaped like a rollout's trajectory; not the rollout's own output,
    # which would compile the rollout before it is timed.
    traj = synthetic_batch(spec, unroll, grids)
    # The update donates its state: each call carries on from the last one's result.
    update_state = [learner.init(key)]

    def update():
        update_state[0], metrics = learner.update(update_state[0], traj)
        return metrics

    return [
        ("clearing QP", lambda: clear(grid_states)),
        ("env step", lambda: step(keys, state, actions, params)),
        (
            "actor rollout",
            lambda: rollout(learner_state.params, learner_state.norm_state, carry, key),
        ),
        ("PPO update", update),
    ]


def main(argv) -> None:
    del argv
    import jax

    # A cold compile is what is measured: no persistent cache.
    jax.config.update("jax_enable_compilation_cache", False)
    config = load_preset(_FLAGS["config"].value)
    grids = _FLAGS["grids"].value or config.actors.num_envs
    unroll = _FLAGS["unroll"].value or config.learner.unroll_length
    if grids < 1 or unroll < 1:
        raise BenchmarkError(f"--grids and --unroll must be >= 1, got {grids}, {unroll}")
    print("# Compile time per program")
    print(hardware_line())
    print(
        f"preset: {_FLAGS['config'].value} ({config.env.case}), {grids} grids, {unroll} steps per rollout"
    )
    print(f"{'program':<16}{'first call s':>14}{'run s':>10}{'compile s':>12}")
    # Each program is jitted apart, so none shares another's compile.
    for name, call in programs(config, grids, unroll):
        timing = time_program(call, _FLAGS["repeats"].value)
        print(
            f"{name:<16}{timing['first_s']:>14.1f}{timing['run_s']:>10.3f}{timing['compile_s']:>12.1f}"
        )


def run() -> None:
    define_flags()
    try:
        app.run(main)
    except BenchmarkError as err:
        raise SystemExit(f"benchmarks.compile: {err}") from None


if __name__ == "__main__":
    run()
