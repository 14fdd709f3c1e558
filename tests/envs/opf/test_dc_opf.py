"""DC-OPF and multi-period dispatch against PYPOWER's rundcopf and against each other."""

import numpy as np
import pytest

pypower_api = pytest.importorskip("pypower.api")

from envs.opf import dc_opf  # noqa: E402
from envs.powerflow.case import Case, load_case  # noqa: E402
from envs.powerflow.grid import build_grid  # noqa: E402

_RATE_A, _BR_STATUS = 5, 10


def _case(name: str) -> Case:
    """The shipped case when present, else the same IEEE system from PYPOWER's library."""
    try:
        return load_case(name)
    except (ValueError, FileNotFoundError):
        ppc = getattr(pypower_api, name.replace("ieee", "case"))()
        return Case.from_ppc(ppc, name=name)


def _network_and_ppc(name: str):
    """DC network from the Grid, and a PYPOWER dict with the Grid's finite ratings."""
    case = _case(name)
    grid = build_grid(case)
    ppc = case.to_ppc()
    in_service = ppc["branch"][:, _BR_STATUS] != 0
    ppc["branch"][in_service, _RATE_A] = np.asarray(grid.branch_rating, dtype=float)
    return dc_opf.network_from_grid(grid), ppc


def _rundcopf(ppc):
    result = pypower_api.rundcopf(ppc, pypower_api.ppoption(VERBOSE=0, OUT_ALL=0))
    assert result["success"]
    return result


@pytest.mark.parametrize("name", ["ieee14", "ieee30", "ieee118"])
def test_dc_opf_matches_pypower_objective(name):
    net, ppc = _network_and_ppc(name)
    reference = _rundcopf(ppc)
    load = np.asarray(ppc["bus"][:, 2], dtype=float)
    solution = dc_opf.solve_dc_opf(net, load)
    assert solution.generation_cost_per_h == pytest.approx(reference["f"], rel=1e-4)
    assert np.sum(solution.shed_mw) < 1e-6
    assert np.all(np.abs(solution.flow_mw) <= net.branch_rating_mw + 1e-6)


def test_dc_opf_matches_pypower_when_congestion_binds():
    net, ppc = _network_and_ppc("ieee14")
    unconstrained = dc_opf.solve_dc_opf(net, ppc["bus"][:, 2])
    tight = np.maximum(np.round(0.9 * np.abs(unconstrained.flow_mw) + 2.0), 1.0)
    tight = np.minimum(tight, net.branch_rating_mw)
    ppc["branch"][ppc["branch"][:, _BR_STATUS] != 0, _RATE_A] = tight
    reference = _rundcopf(ppc)
    congested = dc_opf.solve_dc_opf(
        dc_opf.network_from_matpower(
            ppc["baseMVA"], ppc["bus"], ppc["gen"], ppc["branch"], ppc["gencost"]
        ),
        ppc["bus"][:, 2],
    )
    assert congested.generation_cost_per_h > unconstrained.generation_cost_per_h + 1e-3
    assert congested.generation_cost_per_h == pytest.approx(reference["f"], rel=1e-4)


def test_outage_changes_flows_and_respects_ratings():
    net, ppc = _network_and_ppc("ieee14")
    load = ppc["bus"][:, 2]
    in_service = np.ones(net.n_branch, bool)
    in_service[np.argmax(net.branch_rating_mw)] = False
    solution = dc_opf.solve_dc_opf(net, load, branch_in_service=in_service)
    assert abs(solution.flow_mw[~in_service][0]) < 1e-9
    balance = solution.pg_mw.sum() + solution.shed_mw.sum() - solution.spill_mw.sum()
    assert balance == pytest.approx(load.sum() + net.bus_gs_mw.sum(), abs=1e-6)


def test_ramp_limits_hold_from_previous_dispatch():
    net, ppc = _network_and_ppc("ieee14")
    free = dc_opf.solve_dc_opf(net, ppc["bus"][:, 2])
    ramped_net = dc_opf.DCNetwork(**{**vars(net), "gen_ramp_mw_per_min": np.full(net.n_gen, 0.1)})
    prev = np.clip(free.pg_mw + 20.0, net.gen_pmin, net.gen_pmax)
    ramped = dc_opf.solve_dc_opf(ramped_net, ppc["bus"][:, 2], dt_hours=1 / 12, prev_pg_mw=prev)
    assert np.all(np.abs(ramped.pg_mw - prev) <= 0.5 + 1e-6)
    assert ramped.generation_cost_per_h >= free.generation_cost_per_h - 1e-6


def _episode(net, n_steps: int, seed: int):
    rng = np.random.default_rng(seed)
    profile = 0.8 + 0.35 * np.sin(np.linspace(0.0, 2 * np.pi, n_steps))[:, None]
    noise = 1.0 + 0.03 * rng.standard_normal((n_steps, net.n_bus))
    return profile * noise


def test_oracle_never_costs_more_than_myopic_dispatch():
    net, ppc = _network_and_ppc("ieee14")
    net = dc_opf.DCNetwork(**{**vars(net), "gen_ramp_mw_per_min": 0.05 * net.gen_pmax})
    storage = dc_opf.StorageUnits(
        np.array([2]), np.array([30.0]), np.array([60.0]), np.array([0.95]), np.array([0.95])
    )
    load = _episode(net, 24, seed=0) * ppc["bus"][None, :, 2]
    kwargs = dict(dt_hours=0.25, storage=storage, storage_energy0_mwh=np.array([30.0]))
    oracle = dc_opf.solve_dispatch(net, load, prev_pg_mw=net.gen_pg0, **kwargs)
    prev, energy, myopic_cost = net.gen_pg0, np.array([30.0]), 0.0
    for t in range(load.shape[0]):
        step = dc_opf.solve_dc_opf(
            net, load[t], prev_pg_mw=prev, **{**kwargs, "storage_energy0_mwh": energy}
        )
        prev, energy, myopic_cost = (
            step.pg_mw,
            step.storage_energy_mwh,
            myopic_cost + step.step_cost,
        )
    assert oracle.total_cost <= myopic_cost * (1 + 1e-7)
    assert oracle.total_cost >= oracle.lower_bound - 1e-9
    assert np.all(np.abs(np.diff(oracle.pg_mw, axis=0)) <= 0.05 * net.gen_pmax * 15 + 1e-6)
    assert np.all(oracle.storage_energy_mwh <= 60.0 + 1e-6)


def test_bad_input_is_rejected():
    net, _ = _network_and_ppc("ieee14")
    with pytest.raises(ValueError, match="load_mw"):
        dc_opf.solve_dc_opf(net, np.zeros(net.n_bus + 1))


def _nodal_mismatch(net, solution, load):
    """Per-bus injection minus the net flow leaving the bus (MW): zero when Kirchhoff holds."""
    injection = solution.shed_mw - solution.spill_mw - load - net.bus_gs_mw
    np.add.at(injection, net.gen_bus, solution.pg_mw)
    leaving = np.zeros(net.n_bus)
    np.add.at(leaving, net.branch_from, solution.flow_mw)
    np.add.at(leaving, net.branch_to, -solution.flow_mw)
    return injection - leaving


def test_islands_balance_on_their_own_and_the_fallback_solver_agrees(monkeypatch):
    net, ppc = _network_and_ppc("ieee30")
    load = 1.1 * ppc["bus"][:, 2]
    in_service = np.ones(net.n_branch, bool)
    degree = np.bincount(np.concatenate([net.branch_from, net.branch_to]), minlength=net.n_bus)
    leaf = np.flatnonzero((degree == 1) & (load > 0))[0]  # a loaded bus hanging on one branch
    in_service[(net.branch_from == leaf) | (net.branch_to == leaf)] = False
    in_service[np.argmax(net.branch_rating_mw)] = False
    warm = dc_opf.solve_dc_opf(net, load, branch_in_service=in_service)
    np.testing.assert_allclose(_nodal_mismatch(net, warm, load), 0.0, atol=1e-6)
    assert warm.shed_mw[leaf] == pytest.approx(load[leaf], abs=1e-6)  # no unit on the island
    assert np.all(np.abs(warm.flow_mw) <= net.branch_rating_mw + 1e-6)
    monkeypatch.setattr(dc_opf, "_HIGHS", None)  # every round a fresh scipy linprog
    cold = dc_opf.solve_dc_opf(net, load, branch_in_service=in_service)
    assert cold.step_cost == pytest.approx(warm.step_cost, rel=1e-6)
