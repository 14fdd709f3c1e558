"""What every benchmark shares: the machine it ran on, a timer, the gridpod rollout it times,
the Grid2Op peer, and absl flags that several benchmark modules define.

Benchmarks import this module, not each other.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
import warnings

import numpy as np
from absl import flags

# Grid2Op's bundled environment closest to each shipped case (the peer of env_throughput).
GRID2OP_ENVS = {"ieee14": "l2rpn_case14_sandbox", "ieee118": "rte_case118_example"}
STEPS_PER_CALL_BUDGET = 16_384  # grid-steps per timed call (T = budget / B, clipped)


def define_once(define, name: str, *args, flag_values=flags.FLAGS, **kwargs):
    """``define(name, ...)``, or the flag of that name when another benchmark module imported
    into the same process (a test run) defined it first: absl's flags are global."""
    if name in flag_values:
        return flag_values[name]
    return define(name, *args, flag_values=flag_values, **kwargs)


# ------------------------------------------------------------------------------------------
# The machine
# ------------------------------------------------------------------------------------------


def define_preset_flag():
    """``--config``, the preset whose env a baseline-only command builds (default: the
    default preset). Define it when the command runs (``__main__``), not on import: it is also
    the launchers' flag, and a test process imports both."""
    from ml_collections import config_flags

    return config_flags.DEFINE_config_file("config", "configs/default.py", "Preset (its env).")


@contextlib.contextmanager
def usage_errors(*kinds: type[BaseException]):
    """A benchmark command's bad input (``kinds`` raised inside: a bad flag, no such run or
    step): the launchers' one-line error (``launch.errors.exit_with_error``), exit status 2."""
    try:
        yield
    except kinds as error:
        from launch.errors import exit_with_error

        exit_with_error(str(error))


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what Python knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), not the machine's total."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def memory_gib() -> float | None:
    """Physical memory in GiB, where the OS reports it."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        return None


def describe() -> dict:
    """The machine as one record: a measurement is only comparable on the same hardware,
    and other jobs on it (the load average) depress every wall-clock figure."""
    import jax

    device = jax.devices()[0]
    return {
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "memory_gib": memory_gib(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": f"{len(jax.devices())} x {device.device_kind}",
    }


def describe_line(record: dict) -> str:
    """``describe()`` as one header line."""
    memory = record.get("memory_gib")
    load = record.get("load_average")
    return (
        f"{record['cpu']}, {record['usable_cores']} cores usable"
        + (f", {memory:.0f} GiB" if memory else "")
        + (f", load average {load[0]:.1f}" if load else "")
        + f"; jax {record['jax']} on {record['device']} ({record['backend']})"
    )


def hardware_line() -> str:
    """One line: CPU, usable cores, load average, JAX version and backend."""
    import jax

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu_model()}, {cores} cores usable, load average {load}; "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()})"
    )


# ------------------------------------------------------------------------------------------
# Timing a gridpod rollout
# ------------------------------------------------------------------------------------------


def steps_per_call(batch: int) -> int:
    return int(np.clip(STEPS_PER_CALL_BUDGET // batch, 2, 256))


def timed_rate(call, items_per_call: int, min_time: float) -> float:
    """Items per second of ``call`` (already compiled and warmed up)."""
    calls, start = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return calls * items_per_call / elapsed


def make_grid_env(case: str, physics: str, horizon: int = 288):
    from envs.config import default_env_config
    from envs.env import make_env

    config = default_env_config()
    config.case, config.physics, config.horizon = case, physics, horizon
    if physics == "ac":  # the AC solve keeps the slack's island
        config.island_rule = "slack"
    return make_env(config)


def checksum(obs, reward, info):
    """One scalar that depends on everything a step hands back (keeps it all computed)."""
    import jax
    import jax.numpy as jnp

    leaves = jax.tree_util.tree_leaves((obs, reward, info))
    return sum(jnp.sum(x.astype(jnp.float32)) for x in leaves)


def make_rollout(env, spec, steps: int):
    """jit(key, states [B], params) -> (key, states, checksum): T scanned vmapped steps.

    The actors' rollout (``replay.rollout``) with uniform random actions for a policy.
    """
    import jax
    import jax.numpy as jnp

    from replay.rollout import batched_env_step, rollout

    shape = (spec.num_agents, spec.action_dim)

    def random_rollout(key, states, params):
        batch = states.t.shape[0]
        step_grids = batched_env_step(env, params)

        def one_step(carry, key):
            states, acc = carry
            key_action, key_step = jax.random.split(key)
            actions = jax.random.uniform(key_action, (batch, *shape), minval=-1.0, maxval=1.0)
            obs, states, reward, terminated, truncated, info = step_grids(key_step, states, actions)
            acc = acc + checksum(obs, reward, info) + terminated.sum() + truncated.sum()
            return (states, acc), None

        key, key_rollout = jax.random.split(key)
        (states, acc), _ = rollout(one_step, (states, jnp.float32(0.0)), key_rollout, steps)
        return key, states, acc

    return jax.jit(random_rollout, donate_argnums=1)


def initial_states(env, params, batch: int):
    import jax

    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    return jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)[1]


def warmed_rollout(env, params, spec, batch: int, seed: int = 1):
    """``(call, steps, compile_s, compiled)``: ``call()`` runs one compiled rollout of T =
    ``steps`` steps of ``batch`` grids, carrying key and states between calls; warmed up."""
    import jax

    steps = steps_per_call(batch)
    states = initial_states(env, params, batch)
    key = jax.random.PRNGKey(seed)
    start = time.perf_counter()
    compiled = make_rollout(env, spec, steps).lower(key, states, params).compile()
    compile_s = time.perf_counter() - start
    carry = {"key": key, "states": states}

    def call():
        carry["key"], carry["states"], acc = compiled(carry["key"], carry["states"], params)
        jax.block_until_ready(acc)

    call()  # warm-up (first-touch of buffers)
    return call, steps, compile_s, compiled


# ------------------------------------------------------------------------------------------
# The peer: Grid2Op + LightSim2Grid
# ------------------------------------------------------------------------------------------


def _grid2op_env(name: str, dc: bool):
    import grid2op
    from grid2op.Parameters import Parameters
    from lightsim2grid import LightSimBackend

    param = Parameters()
    param.ENV_DC = dc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return grid2op.make(name, test=True, backend=LightSimBackend(), param=param)


def measure_grid2op(case: str, dc: bool, min_time: float) -> dict:
    """Do-nothing steps/s of the bundled Grid2Op env closest to ``case`` (resets included)."""
    name = GRID2OP_ENVS[case]
    try:
        env = _grid2op_env(name, dc)
    except Exception as err:  # missing package or env: report, do not fail the run
        return {"name": name, "rate": None, "error": f"{type(err).__name__}: {err}"}
    env.seed(0)
    env.reset()
    do_nothing = env.action_space({})
    env.step(do_nothing)  # warm-up
    steps, resets, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < min_time:
        _, _, done, _ = env.step(do_nothing)
        steps += 1
        if done:
            env.reset()
            resets += 1
    rate = steps / (time.perf_counter() - start)
    size = f"{env.n_sub} substations, {env.n_line} lines, {env.n_gen} generators"
    env.close()
    return {"name": name, "rate": rate, "resets": resets, "size": size}
