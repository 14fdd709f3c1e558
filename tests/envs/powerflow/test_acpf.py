"""AC power flow: parity with PYPOWER's runpf, outages, islands, float32, failure modes."""

import jax
import numpy as np
import pytest
from jax import numpy as jnp

from envs.powerflow.acpf import ac_power_flow
from envs.powerflow.case import Case, load_case
from envs.powerflow.grid import build_grid
from envs.powerflow.matpower import parse_matpower
from tests.envs.powerflow.test_matpower import ODD_CASE

VM_TOL = 1e-6
VA_TOL_DEG = 1e-5
FLOW_TOL_MW = 1e-4
CASES = ["ieee14", "ieee30", "ieee118", "odd"]

ac_jit = jax.jit(ac_power_flow, static_argnames=("max_iter", "tol"))


def _case(name: str) -> Case:
    if name == "odd":
        return Case.from_matpower(parse_matpower(ODD_CASE), name="odd")
    return load_case(name)


@pytest.fixture(scope="module")
def grids64():
    with jax.enable_x64(True):
        yield {name: (_case(name), build_grid(_case(name), jnp.float64)) for name in CASES}


def _injections(grid, load_level=1.0):
    """Case dispatch; reactive generation only where it is not solved for (PQ buses)."""
    p = grid.gen_to_bus @ grid.gen_pg0 - load_level * grid.bus_pd
    q_gen = jnp.where(grid.bus_type == 1, grid.gen_to_bus @ grid.gen_qg0, 0.0)
    return p, q_gen - load_level * grid.bus_qd


def _runpf(ppc: dict) -> dict:
    from pypower.api import ppoption, runpf

    options = ppoption(VERBOSE=0, OUT_ALL=0, ENFORCE_Q_LIMS=0, PF_TOL=1e-11)
    result, success = runpf(ppc, options)
    assert success
    return result


def _in_service_rows(case: Case) -> np.ndarray:
    return np.flatnonzero(case.branch[:, 10] != 0)


def _assert_matches(flow, case, result, live_bus=None, live_branch=None):
    bus, branch = result["bus"], result["branch"][_in_service_rows(case)]
    live_bus = np.ones(len(bus), bool) if live_bus is None else live_bus
    live_branch = np.ones(len(branch), bool) if live_branch is None else live_branch
    assert bool(flow.converged) and float(flow.mismatch) < 1e-8
    np.testing.assert_allclose(flow.vm[live_bus], bus[live_bus, 7], atol=VM_TOL, rtol=0)
    va = np.rad2deg(np.asarray(flow.va))
    np.testing.assert_allclose(va[live_bus], bus[live_bus, 8], atol=VA_TOL_DEG, rtol=0)
    for ours, column in ((flow.p_from_mw, 13), (flow.q_from_mvar, 14), (flow.p_to_mw, 15)):
        expected = np.where(live_branch, branch[:, column], 0.0)
        np.testing.assert_allclose(ours, expected, atol=FLOW_TOL_MW, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_matches_runpf(x64, grids64, name):
    case, grid = grids64[name]
    p, q = _injections(grid)
    flow = ac_jit(grid, p, q, grid.bus_vm_set)
    result = _runpf(case.to_ppc())
    _assert_matches(flow, case, result)
    # Reactive generation per voltage-controlled bus equals PYPOWER's generator Qg.
    gen_on = result["gen"][:, 7] > 0
    gen_q = np.zeros(grid.n_bus)
    rows = {number: i for i, number in enumerate(case.bus[:, 0])}
    for number, qg in zip(result["gen"][gen_on, 0], result["gen"][gen_on, 2], strict=True):
        gen_q[rows[number]] += qg
    controlled = np.asarray(grid.bus_type) != 1
    np.testing.assert_allclose(flow.qg_bus_mvar[controlled], gen_q[controlled], atol=1e-4)
    outside = (gen_q > grid.gen_to_bus @ grid.gen_qmax + 1e-3) | (
        gen_q < grid.gen_to_bus @ grid.gen_qmin - 1e-3
    )
    assert bool(flow.q_limit_violated) == bool(np.any(outside & controlled))


OUTAGES = {"ieee14": (2, 9), "ieee118": (3, 100), "odd": (0, 5)}


@pytest.mark.parametrize("name", sorted(OUTAGES))
def test_outages_match_runpf_on_the_reduced_case(x64, grids64, name):
    case, grid = grids64[name]
    out = np.array(OUTAGES[name])
    ppc = case.to_ppc()
    ppc["branch"][_in_service_rows(case)[out], 10] = 0
    mask = np.ones(grid.n_branch, bool)
    mask[out] = False
    p, q = _injections(grid)
    flow = ac_jit(grid, p, q, grid.bus_vm_set, jnp.asarray(mask))
    _assert_matches(flow, case, _runpf(ppc), live_branch=mask)


def test_island_is_left_out_and_the_rest_matches_runpf(x64, grids64):
    case, grid = grids64["ieee14"]
    bridge = int(np.flatnonzero(np.asarray(grid.branch_is_bridge))[0])
    dead_bus = 7
    mask = jnp.ones(grid.n_branch, bool).at[bridge].set(False)
    p, q = _injections(grid)
    flow = ac_jit(grid, p, q, grid.bus_vm_set, mask)
    assert float(flow.vm[dead_bus]) == 0.0 and float(flow.p_from_mw[bridge]) == 0.0
    ppc = case.to_ppc()
    ppc["bus"][dead_bus, 1] = 4
    ppc["branch"][bridge, 10] = 0
    ppc["gen"][ppc["gen"][:, 0] == 8, 7] = 0
    live_bus = np.arange(grid.n_bus) != dead_bus
    _assert_matches(flow, case, _runpf(ppc), live_bus, np.arange(grid.n_branch) != bridge)


def test_batch_with_a_failing_grid_stays_finite(x64, grids64):
    _, grid = grids64["ieee30"]
    levels = jnp.array([1.0, 1.1, 40.0])[:, None]  # the last one has no solution
    p = (grid.gen_to_bus @ grid.gen_pg0)[None] - levels * grid.bus_pd[None]
    q = -levels * grid.bus_qd[None]
    vm = jnp.broadcast_to(grid.bus_vm_set, p.shape)
    flow = ac_jit(grid, p, q, vm)
    np.testing.assert_array_equal(flow.converged, [True, True, False])
    assert int(flow.iterations[0]) < int(flow.iterations[2])
    for field in (flow.vm, flow.va, flow.p_from_mw, flow.mismatch):
        assert bool(jnp.all(jnp.isfinite(field)))
    single = ac_jit(grid, p[1], q[1], vm[1])
    np.testing.assert_allclose(flow.vm[1], single.vm, atol=1e-12)


def test_float32_close_to_runpf():
    case = load_case("ieee118")
    grid = build_grid(case, jnp.float32)
    p, q = _injections(grid)
    flow = ac_jit(grid, p, q, grid.bus_vm_set)
    result = _runpf(case.to_ppc())
    assert flow.vm.dtype == jnp.float32
    assert bool(flow.converged)
    np.testing.assert_allclose(flow.vm, result["bus"][:, 7], atol=1e-3)
    np.testing.assert_allclose(np.rad2deg(flow.va), result["bus"][:, 8], atol=1e-2)
    np.testing.assert_allclose(flow.p_from_mw, result["branch"][:, 13], atol=0.05)


def test_sparse_lu_solves_like_a_dense_solve(x64, grids64):
    from envs.powerflow.acpf import _lu_factor, _lu_solve

    _, grid = grids64["ieee30"]
    st = grid.ac_jacobian
    n_var, n_entries = st.var_bus.shape[0], st.lu_source.shape[0]
    rng = np.random.default_rng(0)
    values = rng.normal(size=(n_entries, 2)) + 8.0 * np.asarray(st.lu_is_diag)[:, None]
    rows, cols = np.zeros(n_entries, int), np.zeros(n_entries, int)
    for k in range(n_var):  # recover (row, col) of every entry from the schedule
        rows[st.pivot_diag[k]], cols[st.pivot_diag[k]] = k, k
        steps = zip(st.pivot_rows[k], st.pivot_lower[k], st.pivot_upper[k], strict=True)
        for i, lower, upper in steps:
            if int(i) < n_var:
                rows[lower], cols[lower] = i, k
                rows[upper], cols[upper] = k, i
    rhs = rng.normal(size=(n_var, 2))
    padded = jnp.concatenate([jnp.asarray(values), jnp.zeros((1, 2))])
    x = _lu_solve(st, _lu_factor(st, padded), jnp.asarray(rhs))
    for b in range(2):
        dense = np.zeros((n_var, n_var))
        dense[rows, cols] = values[:, b]
        np.testing.assert_allclose(x[:, b], np.linalg.solve(dense, rhs[:, b]), atol=1e-10)
