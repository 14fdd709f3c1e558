"""Single-step DC-OPF solves per second: the batched JAX solvers (``envs.opf.step_qp``) against
HiGHS.

    python -m benchmarks.opf                                  # ieee14, ieee118; batch 1..1024
    python -m benchmarks.opf --solvers=clearing               # the env's clearing solver only
    python -m benchmarks.opf --batches=1,16,256,1024,4096     # 4096 too (minutes on 2 cores)
    python -m benchmarks.opf --evaluation                     # also time the ieee118 evaluation
    python -m benchmarks.opf --out=opf.json

States are what the env meets: ``env.reset`` over B keys (every scenario), then a few steps
with zero actions, all under ``jax.vmap``, in float32 as the env runs. HiGHS solves the same
single-step problem (``highs_reference.myopic_model``: branch limits with the myopic margin,
ramps, batteries, shedding) one state per call, exactly as ``myopic_opf_highs`` does, on the
first ``--highs_solves`` states of the case, in the same process. The JAX solvers are the jitted
``vmap`` of ``solve_myopic_opf`` (``clearing``: bounds as boxes, screened branch rows, what the
env clears bids with) and of ``solve_myopic_opf_dense`` (``dense``: qpax on every row, the
reference); each compile is timed apart, then ``--repeats`` timed calls
(``block_until_ready``), the median kept. Accuracy compares the two on the states both solved
(the JAX QP converged, HiGHS returned): the relative error of the dispatch's cost (units' cost
curves, curtailed renewable output, shed load at VOLL) and the largest MW difference of a
conventional unit (renewables, batteries and shedding by their totals: units with equal offers
are interchangeable), and the largest flow above a branch's full rating after clearing
(the QP holds flows within the rating less the myopic margin).

``--evaluation`` times ``envs.evaluation.suite.run_suite`` on ieee118 (every scenario, the default
baselines and the oracle, no checkpoint) in a child process, stopped after
``--evaluation_timeout`` seconds with the per-method progress reached so far.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import NamedTuple

import numpy as np
from absl import app, flags

from benchmarks.harness import define_once, describe, describe_line

CASES = ("ieee14", "ieee118")


_CASES = define_once(flags.DEFINE_list, "cases", list(CASES), "cases to measure")
_BATCHES = define_once(
    flags.DEFINE_list,
    "batches",
    ["1", "16", "256", "1024"],
    "batch sizes (4096 is available: add it here)",
)
_HIGHS_SOLVES = define_once(
    flags.DEFINE_integer, "highs_solves", 30, "HiGHS solves (distinct states)"
)
_REPEATS = define_once(
    flags.DEFINE_integer, "repeats", 5, "timed calls of the JAX solver per batch"
)
_WARM_STEPS = define_once(
    flags.DEFINE_integer, "warm_steps", 4, "zero-action env steps before measuring"
)
_SOLVERS = define_once(
    flags.DEFINE_list, "solvers", ["clearing", "dense"], "JAX solvers: clearing, dense"
)
_OUT = define_once(flags.DEFINE_string, "out", None, "write the results as JSON to this path")
_EVALUATION = define_once(
    flags.DEFINE_bool, "evaluation", False, "also time the ieee118 evaluation"
)
_EVALUATION_TIMEOUT = define_once(
    flags.DEFINE_integer, "evaluation_timeout", 600, "seconds after which the evaluation is stopped"
)
_LOOKAHEAD = define_once(
    flags.DEFINE_list,
    "lookahead_iterations",
    [],
    "also measure the look-ahead QP on ieee14 (32 states, default periods, operator forecast) "
    "at these interior-point iteration counts, e.g. 24,32,40",
)

SOLVERS = ("clearing", "dense")
TARGET_CPU_RATIO = 10.0  # x HiGHS at batch 256 and 1024 on ieee118, on CPU
TARGET_GPU_RATIO = 1000.0  # on one H100, batch 4096
TARGET_BATCHES, TARGET_CASE, TARGET_GPU_BATCH = (256, 1024), "ieee118", 4096
TARGET_CONVERGED = 0.995
TARGET_COST_REL = 1e-3
TARGET_OVERLOAD_MW = 0.5
TARGET_IEEE14_RATE = 50_000.0  # solves/s at batch 1024
TARGET_EVALUATION_S = 180.0
EVAL_EPISODES, EVAL_HORIZON = 2, 96


class BenchmarkError(ValueError):
    """A flag or argument the benchmark cannot run with."""


class CaseSetup(NamedTuple):
    params: object  # EnvParams (float32)
    states: object  # EnvState with a leading batch axis of the largest batch


def check_batches(batches) -> list[int]:
    try:
        values = [int(b) for b in batches]
    except ValueError as err:
        raise BenchmarkError(f"--batches must be integers, got {list(batches)}") from err
    if not values or min(values) < 1:
        raise BenchmarkError(f"--batches must be positive, got {values}")
    return values


def check_solvers(solvers) -> list[str]:
    unknown = [s for s in solvers if s not in SOLVERS]
    if unknown or not solvers:
        raise BenchmarkError(f"--solvers: unknown {unknown}; allowed: {', '.join(SOLVERS)}")
    return list(solvers)


def check_cases(cases) -> list[str]:
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise BenchmarkError(f"--cases: unknown {unknown}; allowed: {', '.join(CASES)}")
    return list(cases)


def make_states(case: str, batch: int, warm_steps: int, seed: int = 0) -> CaseSetup:
    """``batch`` env states of ``case``: reset over ``batch`` keys, then ``warm_steps`` steps
    with zero actions (demand, weather and outputs moved on, as the env meets them)."""
    import jax
    import jax.numpy as jnp

    from envs.config import default_env_config
    from envs.env import make_env

    config = default_env_config()
    config.case = case
    env, params = make_env(config)
    spec = env.spec(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), batch)

    @jax.jit
    def advance(keys):
        _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        action = jnp.zeros((batch, spec.num_agents, spec.action_dim), jnp.float32)
        step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

        def body(state, key):
            return step(jax.random.split(key, batch), state, action, params)[1], None

        if warm_steps == 0:  # no step to compile (the CI test)
            return state
        return jax.lax.scan(body, state, jax.random.split(keys[0], warm_steps))[0]

    return CaseSetup(params, jax.block_until_ready(advance(keys)))


def take(states, count: int):
    import jax

    return jax.tree.map(lambda x: x[:count], states)


def highs_solve(params, states, count: int):
    """``(solves/s, {index: (pg, battery, shed)})``: HiGHS on the first ``count`` states, one per
    call. The topology is the one the JAX QP dispatches for (a branch whose cooldown ends
    recloses); a state HiGHS fails on is left out of the accuracy and counted in the rate."""
    from envs.opf import highs_reference

    model = highs_reference.myopic_model(params)
    is_renewable = np.asarray(params.devices.is_renewable, bool)
    host = highs_reference.HostStates.of(states)
    solutions = {}
    started = time.perf_counter()
    for b in range(count):
        try:
            solutions[b] = highs_reference.solve_myopic_highs(model, is_renewable, host, b)
        except RuntimeError:  # the LP failed: the state is reported as unsolved
            continue
    return count / (time.perf_counter() - started), solutions


def dispatch_cost(params, pg, shed, available, energised) -> np.ndarray:
    """$/h of dispatches ``[B, G]`` on the objective both solvers minimise, without constant
    terms: conventional units' cost curves, curtailed renewable output, shed energised load."""
    import jax.numpy as jnp

    from envs.powerflow.grid import generation_cost

    grid, consts = params.grid, params.consts
    renewable = np.asarray(params.devices.is_renewable, bool)
    fed = energised[:, np.asarray(grid.gen_bus)]
    available = np.where(fed, available, 0.0)
    pg = np.asarray(pg, np.float64)
    cost = lambda p: np.asarray(generation_cost(grid, jnp.asarray(p, jnp.float32)), np.float64)  # noqa: E731
    units = cost(pg) - cost(np.zeros_like(pg))
    curtailed = np.where(renewable, available - pg, 0.0)
    shed = np.where(energised, np.asarray(shed, np.float64), 0.0)
    return (
        np.sum(np.where(renewable, 0.0, units), axis=-1)
        + consts.curtailment_cost * np.sum(curtailed, axis=-1)
        + consts.voll * np.sum(shed, axis=-1)
    )


def accuracy(params, states, ours, highs: dict) -> dict:
    """Max relative cost error and MW differences over the states both solvers solved."""
    from envs.opf import highs_reference
    from envs.powerflow.connectivity import energised_buses

    converged = np.asarray(ours.converged)
    both = [b for b in sorted(highs) if converged[b]]
    if not both:
        return {"compared": 0, "cost_rel_error": None, "unit_mw": None, "total_mw": None}
    model = highs_reference.myopic_model(params)
    in_service = np.asarray(states.branch_in_service) | (np.asarray(states.branch_cooldown) == 1)
    energised = energised_buses(model.network, in_service[both])
    available = np.asarray(states.available, np.float64)[both]
    highs_pg, highs_battery, highs_shed = (
        np.stack(x) for x in zip(*(highs[b] for b in both), strict=True)
    )
    our_pg, our_battery, our_shed = (
        np.asarray(x, np.float64)[both] for x in (ours.pg, ours.storage, ours.shed)
    )
    highs_cost = dispatch_cost(params, highs_pg, highs_shed, available, energised)
    our_cost = dispatch_cost(params, our_pg, our_shed, available, energised)
    rel = np.abs(our_cost - highs_cost) / np.maximum(np.abs(highs_cost), 1.0)
    renewable = np.asarray(params.devices.is_renewable, bool)
    unit_mw = np.max(np.abs(our_pg - highs_pg)[:, ~renewable])
    highs_shed = np.where(energised, highs_shed, 0.0)  # load in islands is outside the QP
    totals = [
        (our_pg[:, renewable].sum(1), highs_pg[:, renewable].sum(1)),
        (our_battery.sum(1), highs_battery.sum(1)),
        (our_shed.sum(1), highs_shed.sum(1)),
    ]
    total_mw = max(float(np.max(np.abs(a - b))) for a, b in totals)
    return {
        "compared": len(both),
        "cost_rel_error": float(np.max(rel)),
        "unit_mw": float(unit_mw),
        "total_mw": total_mw,
    }


def solver_function(solver: str):
    from envs.opf import step_qp

    return {"clearing": step_qp.solve_myopic_opf, "dense": step_qp.solve_myopic_opf_dense}[solver]


def jax_rates(params, states, batches: list[int], repeats: int, solver: str) -> list[dict]:
    """Per batch: compile seconds, median seconds per call, solves/s, share converged."""
    import jax

    rows = []
    for batch in batches:
        solve = jax.jit(jax.vmap(solver_function(solver), in_axes=(0, None)))
        part = take(states, batch)
        started = time.perf_counter()
        compiled = solve.lower(part, params).compile()
        compile_s = time.perf_counter() - started
        result = jax.block_until_ready(compiled(part, params))  # first run: not timed
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            jax.block_until_ready(compiled(part, params))
            times.append(time.perf_counter() - started)
        seconds = float(np.median(times))
        rows.append(
            {
                "solver": solver,
                "batch": batch,
                "compile_s": compile_s,
                "call_s": seconds,
                "solves_per_s": batch / seconds,
                "converged": float(np.mean(np.asarray(result.converged))),
                "max_overload_mw": max_overload_mw(params, part, result),
                "result": result,
            }
        )
        progress(f"{solver}, batch {batch}: {batch / seconds:,.0f} solves/s")
    return rows


def max_overload_mw(params, states, result) -> float:
    """The largest MW by which a branch's flow under the cleared dispatch exceeds its full
    rating, over the grids whose QP converged (0 where none does)."""
    import jax
    import jax.numpy as jnp

    from envs.opf import step_qp

    def overload(state, pg, storage, shed):
        problem = step_qp.clearing_problem(state, params, 0.0)
        x = jnp.concatenate([pg, storage, shed]) / step_qp.MW_SCALE
        flows = step_qp.branch_flows(problem, x) * step_qp.MW_SCALE
        return jnp.max(jnp.abs(flows) - params.grid.branch_rating)

    over = jax.jit(jax.vmap(overload))(states, result.pg, result.storage, result.shed)
    over = np.where(np.asarray(result.converged), np.asarray(over), -np.inf)
    return float(max(np.max(over), 0.0))


def lookahead_rates(iterations: list[int], batch: int = 32, repeats: int = 3) -> list[dict]:
    """Per iteration count: the share of ieee14 look-ahead QPs (default periods, the operator's
    forecast) that converge in float32, and grids solved per second."""
    import jax

    from envs.opf import lookahead_qp

    setup = make_states("ieee14", batch, 4)
    params = setup.params
    rows = []
    for count in iterations:

        def solve(state, count=count):
            forecast = lookahead_qp.operator_forecast(state, params)
            return lookahead_qp.solve_lookahead(state, params, forecast, max_iter=count)

        compiled = jax.jit(jax.vmap(solve)).lower(setup.states).compile()
        result = jax.block_until_ready(compiled(setup.states))
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            jax.block_until_ready(compiled(setup.states))
            times.append(time.perf_counter() - started)
        converged = float(np.mean(np.asarray(result.converged)))
        rate = batch / float(np.median(times))
        rows.append({"iterations": count, "converged": converged, "solves_per_s": rate})
        progress(f"look-ahead, {count} iterations: {converged:.1%} converged, {rate:,.0f}/s")
    return rows


def measure_case(
    case: str,
    batches: list[int],
    highs_solves: int,
    repeats: int,
    warm_steps: int,
    solvers: tuple[str, ...] = SOLVERS,
) -> dict:
    """One case's figures: HiGHS's rate, and per batch the JAX rate, ratio and accuracy."""
    if highs_solves < 1 or repeats < 1:
        raise BenchmarkError("--highs_solves and --repeats must be positive")
    largest = max(max(batches), highs_solves)
    setup = make_states(case, largest, warm_steps)
    highs_rate, highs = highs_solve(setup.params, setup.states, highs_solves)
    progress(f"{case}: HiGHS {highs_rate:,.1f} solves/s ({len(highs)}/{highs_solves} solved)")
    rows = [
        row
        for solver in solvers
        for row in jax_rates(setup.params, setup.states, batches, repeats, solver)
    ]
    for row in rows:
        result = row.pop("result")
        shared = {b: v for b, v in highs.items() if b < row["batch"]}
        row["accuracy"] = accuracy(setup.params, take(setup.states, row["batch"]), result, shared)
        row["vs_highs"] = row["solves_per_s"] / highs_rate
    return {
        "case": case,
        "highs": {"solves_per_s": highs_rate, "states": highs_solves, "solved": len(highs)},
        "rows": rows,
    }


def format_case(result: dict) -> list[str]:
    highs = result["highs"]
    lines = [
        f"## {result['case']}",
        f"HiGHS one state per call: {highs['solves_per_s']:,.1f} solves/s "
        f"({highs['solved']}/{highs['states']} states solved)",
        "",
        "| solver | batch | compile s | JAX solves/s | vs HiGHS | converged | compared "
        "| max cost rel. err | max unit MW | max total MW | max MW above rating |",
        "|---" * 11 + "|",
    ]
    for row in result["rows"]:
        acc = row["accuracy"]
        lines.append(
            f"| {row['solver']} | {row['batch']} | {row['compile_s']:.1f} "
            f"| {row['solves_per_s']:,.0f} "
            f"| {row['vs_highs']:,.1f}x | {100 * row['converged']:.1f} % | {acc['compared']} "
            f"| {_sci(acc['cost_rel_error'])} | {_sci(acc['unit_mw'])} "
            f"| {_sci(acc['total_mw'])} | {row['max_overload_mw']:.2f} |"
        )
    return lines


def _sci(value) -> str:
    return "-" if value is None else f"{value:.2e}"


def target_lines(results: list[dict], machine: dict, evaluation: dict | None) -> list[str]:
    """Each target's status with its numbers (the clearing solver's rows)."""
    lines = ["## Targets"]
    gpu = machine["backend"] == "gpu"
    rows = {
        (r["case"], row["batch"]): row
        for r in results
        for row in r["rows"]
        if row.get("solver", "clearing") == "clearing"
    }
    goal = TARGET_GPU_RATIO if gpu else TARGET_CPU_RATIO
    where = "on one GPU" if gpu else "on CPU"
    for batch in (TARGET_GPU_BATCH,) if gpu else TARGET_BATCHES:
        lines.append(_ieee118_line(rows.get((TARGET_CASE, batch)), batch, goal, where))
    row = rows.get(("ieee14", 1024))
    if row is None:
        lines.append(f"- ieee14 >= {TARGET_IEEE14_RATE:,.0f} solves/s at batch 1024: not measured")
    else:
        status = "met" if row["solves_per_s"] >= TARGET_IEEE14_RATE else "NOT met"
        lines.append(
            f"- ieee14 >= {TARGET_IEEE14_RATE:,.0f} solves/s at batch 1024: {status} "
            f"({row['solves_per_s']:,.0f}/s)"
        )
    if not gpu:
        lines.append(f"- >= {TARGET_GPU_RATIO:,.0f}x HiGHS on one H100: not measured (no GPU)")
    if evaluation is None:
        lines.append(
            f"- ieee118 evaluation within {TARGET_EVALUATION_S:.0f} s: not measured (--evaluation)"
        )
    elif evaluation["finished"]:
        status = "met" if evaluation["seconds"] <= TARGET_EVALUATION_S else "NOT met"
        lines.append(
            f"- ieee118 evaluation within {TARGET_EVALUATION_S:.0f} s: {status} "
            f"({evaluation['seconds']:.0f} s)"
        )
    else:
        lines.append(
            f"- ieee118 evaluation within {TARGET_EVALUATION_S:.0f} s: NOT met (stopped "
            f"unfinished after {evaluation['seconds']:.0f} s)"
        )
    return lines


def _ieee118_line(row, batch: int, goal: float, where: str) -> str:
    head = f"- {TARGET_CASE} at batch {batch} {where}: >= {goal:,.0f}x HiGHS, "
    head += f">= {TARGET_CONVERGED:.1%} converged, cost within {TARGET_COST_REL:g}, "
    head += f"<= {TARGET_OVERLOAD_MW} MW above a rating: "
    if row is None:
        return head + "not measured (add the case and batch)"
    cost = row.get("accuracy", {}).get("cost_rel_error")
    checks = [
        row["vs_highs"] >= goal,
        row.get("converged", 1.0) >= TARGET_CONVERGED,
        cost is None or cost <= TARGET_COST_REL,
        row.get("max_overload_mw", 0.0) <= TARGET_OVERLOAD_MW,
    ]
    status = "met" if all(checks) else "NOT met"
    return head + (
        f"{status} ({row['vs_highs']:,.1f}x, {row.get('converged', 1.0):.1%}, "
        f"{_sci(cost)}, {row.get('max_overload_mw', 0.0):.2f} MW)"
    )


def evaluation_child() -> None:
    """The full ieee118 evaluation of the default baselines and the oracle (no checkpoint)."""
    from envs.config import default_env_config
    from envs.env import make_env
    from envs.evaluation.registry import DEFAULT_BASELINES, baseline_methods
    from envs.evaluation.suite import OracleSolver, default_oracle_workers, run_suite
    from envs.opf import oracle
    from envs.sim import scenarios
    from launch.threefry_lowering import unroll_threefry_on_cpu

    unroll_threefry_on_cpu()  # as launch.evaluate does
    config = default_env_config()
    config.case = "ieee118"
    _, params = make_env(config)
    methods = baseline_methods(params, DEFAULT_BASELINES)
    oracles = OracleSolver(oracle.dispatch_model(params), default_oracle_workers())
    try:
        run_suite(
            params, methods, None, scenarios.scenario_names(), EVAL_EPISODES, EVAL_HORIZON, oracles
        )
    finally:
        oracles.close()


def time_evaluation(timeout_s: float) -> dict:
    """Wall seconds of ``evaluation_child`` in its own process group (its oracle workers too),
    with the time each progress line appeared; stopped after ``timeout_s``."""
    code = "from benchmarks.opf import evaluation_child; evaluation_child()"
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    events = []
    finished = False
    try:
        for line in child.stderr:
            if line.startswith("[evaluate]"):
                elapsed = time.perf_counter() - started
                events.append((round(elapsed, 1), line.strip()))
                progress(f"+{elapsed:.0f} s {line.strip()}")
            if time.perf_counter() - started > timeout_s:
                break
        else:
            finished = child.wait() == 0
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait()
    return {"seconds": time.perf_counter() - started, "finished": finished, "events": events}


def progress(message: str) -> None:
    print(f"[opf] {message}", file=sys.stderr, flush=True)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        cases = check_cases(_CASES.value)
        batches = check_batches(_BATCHES.value)
        solvers = check_solvers(_SOLVERS.value)
        machine = describe()
        print("# Batched single-step DC-OPF: JAX QP vs HiGHS\n")
        print(f"hardware: {describe_line(machine)}")
        print("dtype: float32 (as the env runs); HiGHS in float64, one state per call")
        from envs.opf import step_qp

        print(
            f"JAX solvers: clearing (at most {step_qp.MAX_ITER} interior-point iterations, "
            f"{step_qp.SCREENED_BRANCHES} screened branch rows on large grids), dense (qpax, "
            f"{step_qp.DENSE_MAX_ITER} iterations)"
        )
        if max(batches) < 4096:
            print("batch 4096 left out by default (slow here): --batches=...,4096 adds it")
        print("", flush=True)
        results = []
        for case in cases:
            results.append(
                measure_case(
                    case,
                    batches,
                    _HIGHS_SOLVES.value,
                    _REPEATS.value,
                    _WARM_STEPS.value,
                    tuple(solvers),
                )
            )
            print("\n".join(format_case(results[-1])) + "\n", flush=True)
        lookahead = lookahead_rates(check_batches(_LOOKAHEAD.value)) if _LOOKAHEAD.value else []
        if lookahead:
            print("## ieee14 look-ahead QP (32 states, float32)\n")
            print("| iterations | converged | solves/s |\n|---|---|---|")
            for row in lookahead:
                print(
                    f"| {row['iterations']} | {row['converged']:.1%} | {row['solves_per_s']:,.0f} |"
                )
            print("", flush=True)
        evaluation = time_evaluation(_EVALUATION_TIMEOUT.value) if _EVALUATION.value else None
    except BenchmarkError as err:
        sys.exit(f"benchmarks.opf: {err}")
    if evaluation is not None:
        print(
            "## ieee118 evaluation (6 scenarios, 2 episodes, 96 steps, default baselines, oracle)"
        )
        for elapsed, line in evaluation["events"]:
            print(f"+{elapsed:7.1f} s  {line}")
        state = "finished" if evaluation["finished"] else "stopped unfinished"
        print(f"total {evaluation['seconds']:.1f} s ({state})\n")
    machine["load_average_end"] = list(os.getloadavg())
    print("\n".join(target_lines(results, machine, evaluation)))
    load = machine["load_average_end"]
    print(f"\nload average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if _OUT.value:
        record = {
            "machine": machine,
            "cases": results,
            "lookahead": lookahead,
            "evaluation": evaluation,
        }
        with open(_OUT.value, "w") as out:
            json.dump(record, out, indent=2)


if __name__ == "__main__":
    app.run(main)
