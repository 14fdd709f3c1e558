"""Environment throughput: gridpod (vmapped, scanned) against Grid2Op + LightSim2Grid.

    python -m benchmarks.env_throughput                  # batches 1, 4, ..., 16384
    python -m benchmarks.env_throughput --quick          # batches 1, 64, 4096
    python -m benchmarks.env_throughput --cases=ieee118 --physics=dc --max_batch=1024

gridpod: one jitted call runs ``lax.scan`` over T steps of the vmapped ``env.step`` with
uniform random actions in [-1, 1]: the full step (weather, dispatch, AGC, DC flow with
protection cascades, accounting, observation, reward, in-place auto-reset). Observations,
rewards and info are folded into a checksum so the compiler cannot drop them. Timed after
compilation with ``block_until_ready``; a rate is grid-steps per second (B x T / seconds).

Grid2Op: ``grid2op.make(<bundled env>, test=True, backend=LightSimBackend())`` stepped by a
do-nothing agent (the cheapest agent), resets included when an episode ends, in the same
process; once with its default AC power flow and once with ``ENV_DC=True``. The bundled
envs closest in size are ``l2rpn_case14_sandbox`` (14 substations, 20 lines, 6 generators)
for ieee14 and ``rte_case118_example`` (118 substations, 186 lines, 62 generators) for
ieee118.

All cores (``--per_core_batches``, DC): one process pinned to each usable core steps its own
batch, all timed at once (``benchmarks.per_core``); the rate is their sum. A single process
does not keep the cores busy (XLA:CPU runs a step's ops one after another), so this is the
machine's throughput. Its ratio is against Grid2Op granted as many processes at perfect
scaling (the measured one-process rate times the cores), so both sides use the same cores.

Memory: bytes of one grid's ``EnvState`` (sum of its leaves), and XLA's own memory analysis of
the compiled batched step (arguments + temporaries per grid) to say whether 65,536 ieee118
grids fit in 8 GiB. ``--profile`` times the parts of a step separately (see ``profile``):

    python -m benchmarks.env_throughput --profile --max_batch=1 --nogrid2op --physics=dc
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
from absl import app, flags

from benchmarks.harness import (
    define_once,
    hardware_line,
    initial_states,
    make_grid_env,
    measure_grid2op,
    timed_rate,
    warmed_rollout,
)
from benchmarks.per_core import measure_all_cores
from launch.threefry_lowering import unroll_threefry_on_cpu

_CASES = define_once(flags.DEFINE_list, "cases", ["ieee14", "ieee118"], "shipped cases to measure")
_PHYSICS = define_once(
    flags.DEFINE_list, "physics", ["dc", "ac"], "env physics to measure (dc, ac)"
)
_MAX_BATCH = define_once(
    flags.DEFINE_integer, "max_batch", 16384, "largest batch (powers of 4 up to it)"
)
_QUICK = define_once(flags.DEFINE_bool, "quick", False, "batches 1, 64, 4096 and short timings")
_MIN_TIME = define_once(
    flags.DEFINE_float, "min_time", 2.0, "seconds each measurement runs for at least"
)
_GRID2OP = define_once(
    flags.DEFINE_bool, "grid2op", True, "measure Grid2Op + LightSim2Grid as the peer"
)
_PER_CORE_BATCHES = define_once(
    flags.DEFINE_list,
    "per_core_batches",
    ["64", "256", "1024"],
    "DC batches per process for the all-cores rows, one pinned process per core "
    "(--quick: 256 only; empty: none)",
)
_PROFILE = define_once(
    flags.DEFINE_bool, "profile", False, "also time the parts of a step at --profile_batch"
)
_PROFILE_BATCH = define_once(flags.DEFINE_integer, "profile_batch", 1024, "batch for --profile")

FIT_GRIDS, FIT_BYTES = 65_536, 8 * 2**30


def batch_sizes(max_batch: int, quick: bool) -> list[int]:
    base = 64 if quick else 4
    sizes = [1]
    while sizes[-1] * base <= max_batch:
        sizes.append(sizes[-1] * base)
    return sizes


def tree_bytes(tree) -> int:
    import jax

    return int(sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(tree)))


# ------------------------------------------------------------------------------------------
# gridpod
# ------------------------------------------------------------------------------------------


def measure_gridpod(env, params, spec, batch: int, min_time: float) -> dict:
    """Steps/s at one batch size, compile seconds and XLA's memory analysis of the call."""
    call, steps, compile_s, compiled = warmed_rollout(env, params, spec, batch)
    rate = timed_rate(call, batch * steps, min_time)
    return {"rate": rate, "compile_s": compile_s, "steps": steps, "memory": memory_of(compiled)}


def memory_of(compiled) -> dict | None:
    try:
        stats = compiled.memory_analysis()
    except Exception:  # not every backend reports it
        return None
    if stats is None:
        return None
    return {
        "argument": int(stats.argument_size_in_bytes),
        "temp": int(stats.temp_size_in_bytes),
        "output": int(stats.output_size_in_bytes),
    }


def ac_is_wired(case: str) -> bool:
    """Whether physics='ac' changes the traced step at all (else 'ac' rows would repeat DC)."""
    import jax

    programs = []
    for physics in ("dc", "ac"):
        env, params = make_grid_env(case, physics)
        _, state = env.reset(jax.random.PRNGKey(0), params)
        action = np.zeros((env.spec(params).num_agents, env.spec(params).action_dim), np.float32)
        jaxpr = jax.make_jaxpr(env.step)(jax.random.PRNGKey(1), state, action, params)
        programs.append(str(jaxpr))
    return programs[0] != programs[1]


# ------------------------------------------------------------------------------------------
# Grid2Op + LightSim2Grid
# ------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------
# Profile: the parts of a step, timed separately at one batch size
# ------------------------------------------------------------------------------------------


def step_parts(env):
    """name -> f(keys [B], states [B], actions [B, A, U], params) for one vmapped call."""
    import jax

    from envs.powerflow.dc_outages import connected_buses, dc_flow
    from envs.powerflow.dcpf import dc_power_flow
    from envs.sim.transition import transition

    def flow_only(key, state, action, params):
        grid = params.grid
        return dc_power_flow(grid, grid.gen_to_bus @ state.pg - state.demand)

    def flow_with_outages(key, state, action, params):
        grid = params.grid
        return dc_flow(grid, grid.gen_to_bus @ state.pg - state.demand, state.branch_in_service)

    def connectivity(key, state, action, params):
        return connected_buses(params.grid, state.branch_in_service)

    single = {
        "full step (env.step)": env.step,
        "transition (no observe, no reset)": transition,
        "reset (every grid; a step resets only finished ones)": lambda k, s, a, p: env.reset(k, p),
        "observe": lambda k, s, a, p: env.observe(s, p),
        "one DC power flow, intact network": flow_only,
        "one DC flow with the states' outages (dc_outages)": flow_with_outages,
        "connectivity of the states' topology": connectivity,
    }
    return {name: jax.jit(jax.vmap(fn, in_axes=(0, 0, 0, None))) for name, fn in single.items()}


def warmed_states(env, params, spec, batch: int, steps: int = 24):
    """States after ``steps`` random-action steps, so outages, islands and trips are present."""
    import jax

    states = initial_states(env, params, batch)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    key = jax.random.PRNGKey(4)
    for _ in range(steps):
        key, key_action, key_step = jax.random.split(key, 3)
        shape = (batch, spec.num_agents, spec.action_dim)
        actions = jax.random.uniform(key_action, shape, minval=-1.0, maxval=1.0)
        states = step(jax.random.split(key_step, batch), states, actions, params)[1]
    return states


def cost_of(compiled) -> dict:
    try:
        cost = compiled.cost_analysis()
    except Exception:
        return {}
    if isinstance(cost, list):
        cost = cost[0] if cost else {}
    return dict(cost or {})


def profile(env, params, spec, batch: int, min_time: float) -> list[tuple]:
    """(part, grid-calls/s, flops per grid, bytes accessed per grid) for each part of a step."""
    import jax

    states = warmed_states(env, params, spec, batch)
    keys = jax.random.split(jax.random.PRNGKey(2), batch)
    actions = jax.random.uniform(
        jax.random.PRNGKey(3), (batch, spec.num_agents, spec.action_dim), minval=-1.0, maxval=1.0
    )
    rows = []
    for name, fn in step_parts(env).items():
        compiled = fn.lower(keys, states, actions, params).compile()
        cost = cost_of(compiled)

        def call(compiled=compiled):
            jax.block_until_ready(compiled(keys, states, actions, params))

        call()
        rate = timed_rate(call, batch, min_time)
        rows.append(
            (name, rate, cost.get("flops", 0.0) / batch, cost.get("bytes accessed", 0.0) / batch)
        )
    return rows


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def _fmt(rate) -> str:
    if rate is None:
        return "n/a"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:,.1f}"


def _ratio(ours: float, peer) -> str:
    return "n/a" if not peer or peer.get("rate") is None else f"{ours / peer['rate']:,.1f}x"


def memory_report(case: str, env, params, measured: dict) -> list[str]:
    import jax

    _, state = jax.jit(env.reset)(jax.random.PRNGKey(0), params)
    obs = env.observe(state, params)
    state_b, obs_b = tree_bytes(state), tree_bytes(obs)
    lines = [
        f"{case}: EnvState {state_b:,} B/grid, observation {obs_b:,} B/grid, "
        f"EnvParams (shared by the batch) {tree_bytes(params):,} B",
        f"  {FIT_GRIDS:,} grids: states {FIT_GRIDS * state_b / 2**30:.2f} GiB "
        f"({'fits' if FIT_GRIDS * state_b <= FIT_BYTES else 'does NOT fit'} in 8 GiB)",
    ]
    batch = max(measured) if measured else 0
    mem = measured.get(batch, {}).get("memory")
    if mem:
        per_grid = (mem["argument"] + mem["temp"] + mem["output"]) / batch
        total = FIT_GRIDS * per_grid
        verdict = "fits" if total <= FIT_BYTES else "does NOT fit"
        lines.append(
            f"  compiled rollout at B={batch}: {per_grid:,.0f} B/grid incl. XLA temporaries "
            f"-> {FIT_GRIDS:,} grids need {total / 2**30:.2f} GiB ({verdict} in 8 GiB)"
        )
    return lines


def print_table(rows: list[dict], peers: dict) -> None:
    header = (
        "| case | physics | batch | T | compile s | gridpod steps/s "
        "| vs Grid2Op AC | vs Grid2Op DC |"
    )
    print(header)
    print("|" + "---|" * 8)
    for r in rows:
        peer_ac, peer_dc = peers.get((r["case"], "ac")), peers.get((r["case"], "dc"))
        print(
            f"| {r['case']} | {r['physics']} | {r['batch']:,} | {r['steps']} | "
            f"{r['compile_s']:.1f} | {_fmt(r['rate'])} | {_ratio(r['rate'], peer_ac)} | "
            f"{_ratio(r['rate'], peer_dc)} |"
        )
    print()
    for (case, physics), peer in sorted(peers.items()):
        detail = peer.get("size") or peer.get("error", "")
        print(
            f"Grid2Op + LightSim2Grid, {peer['name']} ({detail}), {physics.upper()} power flow, "
            f"do-nothing: {_fmt(peer['rate'])} steps/s (case {case})"
        )


def _granted(peer, cores: int):
    """The peer as if it ran one process per core at perfect scaling."""
    if not peer or peer.get("rate") is None:
        return None
    return {**peer, "rate": peer["rate"] * cores}


def print_all_cores(rows: list[dict], peers: dict) -> None:
    if not rows:
        return
    print("all cores, DC: one pinned process per core, each stepping its own batch at once")
    print(
        "| case | batch per process | processes | T | compile s | steps/s, all cores "
        "| per process | vs Grid2Op AC on as many cores |"
    )
    print("|" + "---|" * 8)
    for r in rows:
        peer = _granted(peers.get((r["case"], "ac")), r["cores"])
        print(
            f"| {r['case']} | {r['batch']:,} | {r['cores']} | {r['steps']} | "
            f"{r['compile_s']:.1f} | {_fmt(r['rate'])} | "
            f"{' / '.join(_fmt(x) for x in r['per_core'])} | {_ratio(r['rate'], peer)} |"
        )
    print()


def print_targets(rows: list[dict], peers: dict, all_cores: list[dict]) -> None:
    targets = {"ieee118": 300.0, "ieee14": 1000.0}
    for case, target in targets.items():
        peer = peers.get((case, "ac"))
        if not peer or peer.get("rate") is None:
            continue
        ours = [r["rate"] for r in rows if r["case"] == case and r["physics"] == "dc"]
        if ours:
            best = max(ours) / peer["rate"]
            verdict = "met" if best >= target else "NOT met"
            print(
                f"target {case} DC >= {target:,.0f}x Grid2Op (AC default), one process each: "
                f"best {best:,.1f}x, {verdict}"
            )
        machine = [r["rate"] / (peer["rate"] * r["cores"]) for r in all_cores if r["case"] == case]
        if machine:
            verdict = "met" if max(machine) >= target else "NOT met"
            print(
                f"target {case} DC >= {target:,.0f}x Grid2Op (AC default), all cores each: "
                f"best {max(machine):,.1f}x, {verdict}"
            )


def run_case(case: str, physics_list, batches, min_time: float, out: dict) -> None:
    """Measure every (physics, batch) of ``case`` into ``out`` as it goes."""
    for physics in physics_list:
        if physics == "ac" and not ac_is_wired(case):
            print(
                f"{case} ac: env.step with physics='ac' traces to the same program as 'dc' "
                "(AC not wired into the env) -- not measured"
            )
            continue
        env, params = make_grid_env(case, physics)
        spec = env.spec(params)
        for batch in batches:
            result = measure_gridpod(env, params, spec, batch, min_time)
            out["rows"].append({"case": case, "physics": physics, "batch": batch, **result})
            print(
                f"  {case} {physics} B={batch}: {_fmt(result['rate'])} steps/s "
                f"(compile {result['compile_s']:.1f} s)",
                flush=True,
            )
            if physics == "dc":
                out["measured"].setdefault(case, {})[batch] = result


def per_core_batches() -> list[int]:
    try:
        batches = [int(b) for b in _PER_CORE_BATCHES.value]
    except ValueError:
        message = f"--per_core_batches must be integers, got {_PER_CORE_BATCHES.value}"
        raise app.UsageError(message) from None
    if any(b < 1 for b in batches):
        raise app.UsageError(f"--per_core_batches must be positive, got {batches}")
    return [256] if _QUICK.value and batches else batches


def collect(batches, min_time: float, out: dict) -> None:
    for case in _CASES.value:
        if _GRID2OP.value:
            for physics in ("ac", "dc"):
                peer = measure_grid2op(case, physics == "dc", 2 * min_time)
                out["peers"][(case, physics)] = peer
                print(f"  Grid2Op {case} {physics}: {_fmt(peer['rate'])} steps/s", flush=True)
        run_case(case, _PHYSICS.value, batches, min_time, out)
        for batch in per_core_batches():
            result = measure_all_cores(case, "dc", batch, min_time)
            out["all_cores"].append({"case": case, "batch": batch, **result})
            per_process = " + ".join(_fmt(rate) for rate in result["per_core"])
            print(
                f"  {case} dc all {result['cores']} cores, B={batch} each: "
                f"{_fmt(result['rate'])} steps/s ({per_process})",
                flush=True,
            )
        env, params = make_grid_env(case, "dc")
        out["memory"] += memory_report(case, env, params, out["measured"].get(case, {}))
        if _PROFILE.value:
            spec = env.spec(params)
            out["profiles"][case] = profile(env, params, spec, _PROFILE_BATCH.value, min_time)


def report(out: dict) -> None:
    print()
    print_table(out["rows"], out["peers"])
    print()
    print_all_cores(out["all_cores"], out["peers"])
    print_targets(out["rows"], out["peers"], out["all_cores"])
    print("\nmemory:\n" + "\n".join(out["memory"]))
    for case, parts in out["profiles"].items():
        print(f"\nprofile {case} DC, B={_PROFILE_BATCH.value} (one vmapped call per part):")
        print("| part | grid-calls/s | us per grid | MFLOP per grid | MB accessed per grid |")
        print("|---|---|---|---|---|")
        for name, rate, flops, nbytes in parts:
            print(
                f"| {name} | {_fmt(rate)} | {1e6 / rate:.1f} | "
                f"{flops / 1e6:.2f} | {nbytes / 1e6:.2f} |"
            )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv) -> None:
    del argv
    quick, min_time = _QUICK.value, _MIN_TIME.value * (0.5 if _QUICK.value else 1.0)
    batches = batch_sizes(_MAX_BATCH.value, quick)
    # As the launchers do: threefry as straight-line code on XLA:CPU (launch.threefry_lowering).
    unrolled = unroll_threefry_on_cpu()
    print(f"hardware: {hardware_line()}; threefry {'unrolled' if unrolled else 'rolled'} on CPU")
    print(f"batches {batches}, min_time {min_time:.1f} s per measurement\n", flush=True)
    per_core_batches()  # a bad flag fails before anything is measured
    out = {"rows": [], "peers": {}, "measured": {}, "memory": [], "profiles": {}, "all_cores": []}
    # Under ``timeout`` (SIGTERM) or Ctrl-C, still print what was measured so far.
    signal.signal(signal.SIGTERM, _interrupt)
    start = time.perf_counter()
    interrupted = False
    try:
        collect(batches, min_time, out)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: partial results below")
    report(out)
    print(
        f"\nwall time {time.perf_counter() - start:.0f} s; hardware at the end: {hardware_line()}"
    )
    if interrupted:  # skip interpreter teardown while an XLA compile may still be running
        sys.stdout.flush()
        os._exit(124)


if __name__ == "__main__":
    app.run(main)
