"""Solve one power flow of a shipped case or a MATPOWER file at its own dispatch.

    python -m envs.powerflow --case=ieee118 --mode=ac
    python -m envs.powerflow --case=path/to/case.m --mode=dc --json

The human-readable report gives convergence, iterations, the largest mismatch,
the voltage range and the ten most loaded branches. ``--json`` prints
{"converged", "vm" (p.u.), "va" (deg), "pf" (MW, from-end active flow)} with
buses and in-service branches in the case file's order. Bad input ends with a
one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from absl import app, flags

_CASE = flags.DEFINE_string("case", None, "ieee14, ieee30, ieee118 or a path to a MATPOWER .m file")
_MODE = flags.DEFINE_enum("mode", "ac", ["ac", "dc"], "AC (Newton-Raphson) or DC power flow")
_JSON = flags.DEFINE_bool("json", False, "print the solution as JSON")
_X64 = flags.DEFINE_bool("x64", True, "solve in float64 (false: float32)")
_MAX_ITER = flags.DEFINE_integer("max_iter", 20, "Newton iterations at most (AC)")
_TOL = flags.DEFINE_float("tol", 1e-8, "largest power mismatch accepted, p.u. (AC)")
EXIT_BAD_INPUT = 2
TOP_BRANCHES = 10


def solve(
    case_name: str, mode: str, x64: bool = True, max_iter: int = 20, tol: float = 1e-8
) -> dict:
    """Loads and solves a case at its own dispatch; returns NumPy results."""
    from envs.powerflow.case import load_case

    case = load_case(case_name)  # before importing JAX, so bad input fails fast
    import jax
    from jax import numpy as jnp

    from envs.powerflow.acpf import ac_power_flow
    from envs.powerflow.dcpf import dc_power_flow
    from envs.powerflow.grid import build_grid

    jax.config.update("jax_enable_x64", x64)
    grid = build_grid(case, jnp.float64 if x64 else jnp.float32)
    p_bus = grid.gen_to_bus @ grid.gen_pg0 - grid.bus_pd
    common = {"grid": grid, "bus_numbers": case.bus[:, 0].astype(int)}
    if mode == "dc":
        flow = jax.jit(dc_power_flow)(grid, p_bus)
        loading_mva = np.abs(np.asarray(flow.flow_mw))
        return {
            **common,
            "converged": not bool(flow.islanded),
            "iterations": 1,
            "mismatch": 0.0,
            "vm": np.where(np.asarray(flow.bus_energised), 1.0, 0.0),
            "va_deg": np.rad2deg(np.asarray(flow.theta)),
            "pf_mw": np.asarray(flow.flow_mw),
            "loading_mva": loading_mva,
        }
    q_bus = jnp.where(grid.bus_type == 1, grid.gen_to_bus @ grid.gen_qg0, 0.0) - grid.bus_qd
    solver = jax.jit(ac_power_flow, static_argnames=("max_iter", "tol"))
    flow = solver(grid, p_bus, q_bus, grid.bus_vm_set, max_iter=max_iter, tol=tol)
    s_from = np.hypot(np.asarray(flow.p_from_mw), np.asarray(flow.q_from_mvar))
    s_to = np.hypot(np.asarray(flow.p_to_mw), np.asarray(flow.q_to_mvar))
    return {
        **common,
        "converged": bool(flow.converged),
        "iterations": int(flow.iterations),
        "mismatch": float(flow.mismatch),
        "vm": np.asarray(flow.vm),
        "va_deg": np.rad2deg(np.asarray(flow.va)),
        "pf_mw": np.asarray(flow.p_from_mw),
        "loading_mva": np.maximum(s_from, s_to),
        "q_limit_violated": bool(flow.q_limit_violated),
    }


def report(result: dict, mode: str) -> str:
    grid = result["grid"]
    rating = np.asarray(grid.branch_rating)
    loading = result["loading_mva"] / rating
    vm = result["vm"][result["vm"] > 0]
    lines = [
        f"case {grid.name}: {grid.n_bus} buses, {grid.n_branch} branches, {grid.n_gen} generators",
        f"{mode.upper()} power flow: {'converged' if result['converged'] else 'NOT converged'}"
        f" in {result['iterations']} iteration(s), max mismatch {result['mismatch']:.3e} p.u.",
        f"Vm range: {vm.min():.4f} .. {vm.max():.4f} p.u.",
    ]
    if "q_limit_violated" in result:
        lines.append(f"generator reactive limits violated: {result['q_limit_violated']}")
    lines.append(f"{TOP_BRANCHES} most loaded branches (loading = flow / rating):")
    lines.append(
        f"  {'branch':>6} {'from':>5} {'to':>5} {'flow MVA':>10} {'rating':>8} {'loading':>8}"
    )
    number = result["bus_numbers"]
    for index in np.argsort(-loading)[:TOP_BRANCHES]:
        lines.append(
            f"  {index:>6d} {number[int(grid.branch_from[index])]:>5d} "
            f"{number[int(grid.branch_to[index])]:>5d} {result['loading_mva'][index]:>10.2f} "
            f"{rating[index]:>8.1f} {100 * loading[index]:>7.1f}%"
        )
    return "\n".join(lines)


def main(argv) -> None:
    del argv
    if _CASE.value is None:
        _fail("--case is required (ieee14, ieee30, ieee118 or a .m file)")
    try:
        result = solve(_CASE.value, _MODE.value, _X64.value, _MAX_ITER.value, _TOL.value)
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
    if _JSON.value:
        payload = {
            "converged": result["converged"],
            "vm": result["vm"].tolist(),
            "va": result["va_deg"].tolist(),
            "pf": result["pf_mw"].tolist(),
        }
        print(json.dumps(payload))
    else:
        print(report(result, _MODE.value))


def _fail(message: str) -> None:
    print(f"powerflow: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def run() -> None:
    """Console-script entry point (pyproject [project.scripts])."""
    app.run(main)


if __name__ == "__main__":
    run()
