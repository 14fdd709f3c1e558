"""How fast could a DC env step be on this CPU? The cost of three things every step must do.

    python -m benchmarks.step_floor                       # ieee14 and ieee118, B = 4096
    python -m benchmarks.step_floor --cases=ieee118 --batch=1024 --nogrid2op

A full DC step, as ``benchmarks.env_throughput`` times it, does at least this per grid:

* **DC flow**: one product of the bus injections [N] with the case's PTDF [L, N], the cheapest
  exact dense solve of the intact network (the step also handles outages, cascade rounds and
  islands on top of it);
* **observation**: the agents' observations and the global state, A x O + F float32, written
  and read once (the benchmark's checksum reads them, as a learner would);
* **random numbers**: the step's noise (load, wind, cloud, failures: ``draw_step_noise``) from
  a per-grid key, and the benchmark's uniform random actions [A, U], with JAX's threefry.

Each part runs alone as a ``fori_loop`` of 64 steps over the same batch, one fused kernel per
step (many steps per call, so that allocating a call's buffers does not count), in one process
pinned to one core; the full step runs as ``env_throughput`` runs it. The parts' sum is a
floor on a step's time per grid for this feature set on XLA:CPU (nothing else the step does
is counted: dispatch, AGC, outages, protection, reward, info, auto-reset); its inverse is a
ceiling on steps/s per core. Divided by Grid2Op + LightSim2Grid's do-nothing rate (its
default AC flow, measured in the same process, so on the same core: the peer of the env
targets) it bounds the ratio a step on this core could reach, to set beside the targets
(ieee118 300x, ieee14 1,000x). ``--core=-1`` runs unpinned; ``--cases``, ``--min_time`` and
``--grid2op`` mean what they mean for ``env_throughput``.
"""

from __future__ import annotations

import os

from absl import app, flags

from benchmarks import harness
from benchmarks.harness import define_once
from benchmarks.per_core import usable_cores
from launch.threefry_lowering import unroll_threefry_on_cpu

# --cases, --min_time and --grid2op mean what they mean for env_throughput (one definition per
# process when both modules are imported).
_CASES = harness.define_once(flags.DEFINE_list, "cases", ["ieee14", "ieee118"], "shipped cases")
_MIN_TIME = harness.define_once(flags.DEFINE_float, "min_time", 2.0, "seconds per measurement")
_GRID2OP = harness.define_once(flags.DEFINE_bool, "grid2op", True, "measure Grid2Op too")
_BATCH = define_once(flags.DEFINE_integer, "batch", 4096, "grids per batch")
_CORE = define_once(
    flags.DEFINE_integer, "core", None, "core to pin to (default: the last usable; -1: none)"
)

TARGETS = {"ieee118": 300.0, "ieee14": 1000.0}
PART_STEPS = 64


def part_sizes(env, params) -> dict:
    """Per grid: buses, branches, observation floats, random numbers a benchmark step draws."""
    import jax

    from envs.sim.exogenous import draw_step_noise

    spec = env.spec(params)
    noise = jax.eval_shape(lambda k: draw_step_noise(k, params.grid), jax.random.PRNGKey(0))
    return {
        "buses": params.grid.n_bus,
        "branches": params.grid.n_branch,
        "observation": spec.num_agents * spec.obs_dim + spec.global_dim,
        "noise": sum(max(x.size, 1) for x in jax.tree_util.tree_leaves(noise)),
        "actions": spec.num_agents * spec.action_dim,
    }


def floor_loops(ptdf, sizes: dict, batch: int, steps: int) -> dict:
    """name -> (jitted f(carry), its first carry, what it does per grid): ``steps`` steps of one
    part on ``batch`` grids."""
    import jax
    import jax.numpy as jnp

    n_bus, n_obs = sizes["buses"], sizes["observation"]
    n_noise, n_actions = sizes["noise"], sizes["actions"]
    ptdf_t = jnp.asarray(ptdf, jnp.float32).T  # [N, L]

    def scanned(body, carry):
        return jax.jit(lambda c: jax.lax.fori_loop(0, steps, lambda _, x: body(x), c)), carry

    def flow(p_bus):  # the next injections depend on the flows: one product per step
        flows = p_bus @ ptdf_t
        return p_bus + 1e-9 * flows[:, :n_bus]

    def observation(obs):
        return obs * 0.999 + 0.001

    def random(carry):
        key, acc = carry
        key, key_action, key_step = jax.random.split(key, 3)
        noise = jax.vmap(lambda k: jax.random.uniform(k, (n_noise,)))(
            jax.random.split(key_step, batch)
        )
        actions = jax.random.uniform(key_action, (batch, n_actions), minval=-1.0, maxval=1.0)
        return key, acc + noise.sum(-1) + actions.sum(-1)

    p_bus = jnp.linspace(-1.0, 1.0, batch * n_bus, dtype=jnp.float32).reshape(batch, n_bus)
    obs = jnp.linspace(0.0, 1.0, batch * n_obs, dtype=jnp.float32).reshape(batch, n_obs)
    key_acc = (jax.random.PRNGKey(0), jnp.zeros(batch, jnp.float32))
    return {
        "DC flow": (*scanned(flow, p_bus), f"[{n_bus}] x PTDF [{sizes['branches']}, {n_bus}]"),
        "observation": (*scanned(observation, obs), f"{4 * n_obs:,} bytes read + written"),
        "random numbers": (*scanned(random, key_acc), f"{n_noise} + {n_actions} uniforms"),
    }


def measure_case(case: str, batch: int, min_time: float) -> dict:
    import jax

    env, params = harness.make_grid_env(case, "dc")
    sizes = part_sizes(env, params)
    parts, steps = [], PART_STEPS
    for name, (loop, carry, what) in floor_loops(params.grid.ptdf, sizes, batch, steps).items():
        compiled = loop.lower(carry).compile()

        def call(compiled=compiled, carry=carry):
            jax.block_until_ready(compiled(carry))

        call()
        parts.append((name, what, 1e6 / harness.timed_rate(call, batch * steps, min_time)))
    call, steps, _, _ = harness.warmed_rollout(env, params, env.spec(params), batch)
    full_us = 1e6 / harness.timed_rate(call, batch * steps, min_time)
    return {"case": case, "batch": batch, "parts": parts, "full_us": full_us}


def report(result: dict, peer_rate: float | None) -> list[str]:
    case, batch = result["case"], result["batch"]
    floor_us = sum(us for _, _, us in result["parts"])
    lines = [f"{case} DC, B = {batch:,}, per grid-step on one core:"]
    lines += [f"  {name:15s} {us:8.3f} us   ({what})" for name, what, us in result["parts"]]
    lines.append(
        f"  {'floor (sum)':15s} {floor_us:8.3f} us   ceiling {1e6 / floor_us:,.0f} steps/s"
    )
    lines.append(
        f"  {'full step':15s} {result['full_us']:8.3f} us   {1e6 / result['full_us']:,.0f} steps/s, "
        f"{result['full_us'] / floor_us:.1f}x the floor"
    )
    target = TARGETS.get(case)
    if peer_rate:
        lines.append(
            f"  Grid2Op + LightSim2Grid do-nothing (AC): {peer_rate:,.0f} steps/s -> full step "
            f"{1e6 / result['full_us'] / peer_rate:,.1f}x, ceiling {1e6 / floor_us / peer_rate:,.1f}x"
        )
        if target:
            needed_us = 1e6 / (target * peer_rate)
            lines.append(
                f"  target {target:,.0f}x needs a full step of {needed_us:.3f} us per grid: "
                f"{needed_us / floor_us:.2f}x the floor"
            )
    return lines


def pin(core: int | None) -> str:
    """Pin this process (and the XLA threads it starts later) to one core."""
    if core == -1 or not hasattr(os, "sched_setaffinity"):
        return "unpinned"
    usable = usable_cores()
    core = usable[-1] if core is None else core
    if core not in usable:
        raise app.UsageError(f"--core={core} is not a usable core (usable: {usable})")
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core}"


def main(argv) -> None:
    del argv
    if _BATCH.value < 1:
        raise app.UsageError(f"--batch must be positive, got {_BATCH.value}")
    unknown = sorted(set(_CASES.value) - set(harness.GRID2OP_ENVS))
    if unknown:
        raise app.UsageError(f"--cases: unknown {unknown}; known: {sorted(harness.GRID2OP_ENVS)}")
    pinned = pin(_CORE.value)  # before JAX starts its threads
    unroll_threefry_on_cpu()  # as the launchers and env_throughput do
    print(f"hardware: {harness.hardware_line()}; {pinned}\n", flush=True)
    for case in _CASES.value:
        peer = harness.measure_grid2op(case, False, 2 * _MIN_TIME.value) if _GRID2OP.value else {}
        if peer.get("error"):
            print(f"Grid2Op {case}: not measured ({peer['error']})")
        result = measure_case(case, _BATCH.value, _MIN_TIME.value)
        print("\n".join(report(result, peer.get("rate"))) + "\n", flush=True)


if __name__ == "__main__":
    app.run(main)
