"""DC power flow: parity with PYPOWER's rundcpf, outages, islanding, batching."""

import jax
import numpy as np
import pytest
from jax import numpy as jnp

from envs.powerflow import dc_outages
from envs.powerflow.case import Case, load_case
from envs.powerflow.connectivity import energised_buses as host_energised_buses
from envs.powerflow.connectivity import slack_component
from envs.powerflow.dcpf import IslandChoice, dc_power_flow, energised_buses
from envs.powerflow.grid import build_grid
from envs.powerflow.matpower import parse_matpower
from tests.envs.powerflow.test_matpower import ODD_CASE

VA_TOL_DEG = 1e-5
FLOW_TOL_MW = 1e-4
CASES = ["ieee14", "ieee30", "ieee118", "odd"]

dc_jit = jax.jit(dc_power_flow)
# The env's low-rank fast path, one grid at a time under vmap.
fast_jit = jax.jit(jax.vmap(dc_outages.dc_flow, in_axes=(None, 0, 0)))


def _masks(n_branch: int, outages) -> jnp.ndarray:
    """[B, L] in-service masks from rows of branch indices (-1: none)."""
    mask = np.ones((len(outages), n_branch), dtype=bool)
    for row, out in enumerate(outages):
        mask[row, [k for k in out if k >= 0]] = False
    return jnp.asarray(mask)


def _case(name: str) -> Case:
    if name == "odd":
        return Case.from_matpower(parse_matpower(ODD_CASE), name="odd")
    return load_case(name)


@pytest.fixture(scope="module")
def grids64():
    with jax.enable_x64(True):
        yield {name: (_case(name), build_grid(_case(name), jnp.float64)) for name in CASES}


def _case_injection(grid) -> jnp.ndarray:
    """Generation - load at the case dispatch (the slack's own value is irrelevant)."""
    return grid.gen_to_bus @ grid.gen_pg0 - grid.bus_pd


def _rundcpf(ppc: dict) -> dict:
    from pypower.api import ppoption, rundcpf

    result, success = rundcpf(ppc, ppoption(VERBOSE=0, OUT_ALL=0))
    assert success
    return result


def _in_service_rows(case: Case) -> np.ndarray:
    return np.flatnonzero(case.branch[:, 10] != 0)


def _assert_matches_pypower(flow, case, result, mask=None):
    rows = _in_service_rows(case)
    expected_flow = result["branch"][rows, 13]
    if mask is not None:
        expected_flow = np.where(mask, expected_flow, 0.0)
    np.testing.assert_allclose(flow.flow_mw, expected_flow, rtol=0, atol=FLOW_TOL_MW)
    np.testing.assert_allclose(np.rad2deg(flow.theta), result["bus"][:, 8], rtol=0, atol=VA_TOL_DEG)
    assert not bool(flow.islanded)
    assert bool(jnp.all(flow.bus_energised))


@pytest.mark.parametrize("name", CASES)
def test_matches_rundcpf(x64, grids64, name):
    case, grid = grids64[name]
    flow = dc_jit(grid, _case_injection(grid))
    _assert_matches_pypower(flow, case, _rundcpf(case.to_ppc()))


# Two branches per case whose joint outage keeps the grid connected.
OUTAGES = {"ieee14": (2, 9), "ieee30": (1, 20), "ieee118": (3, 100), "odd": (0, 5)}


@pytest.mark.parametrize("name", CASES)
def test_branch_outages_match_rundcpf_on_the_reduced_case(x64, grids64, name):
    case, grid = grids64[name]
    out = np.array(OUTAGES[name])
    ppc = case.to_ppc()
    ppc["branch"][_in_service_rows(case)[out], 10] = 0
    result = _rundcpf(ppc)
    mask = np.ones(grid.n_branch, dtype=bool)
    mask[out] = False
    p_bus = _case_injection(grid)
    _assert_matches_pypower(dc_jit(grid, p_bus, jnp.asarray(mask)), case, result, mask)
    fast = fast_jit(grid, p_bus[None], jnp.asarray(mask)[None])
    _assert_matches_pypower(jax.tree_util.tree_map(lambda x: x[0], fast), case, result, mask)


def test_float32_close_to_float64():
    case = load_case("ieee118")
    grid32 = build_grid(case, jnp.float32)
    flow32 = dc_jit(grid32, _case_injection(grid32))
    result = _rundcpf(case.to_ppc())
    np.testing.assert_allclose(flow32.flow_mw, result["branch"][:, 13], atol=0.05)
    assert flow32.flow_mw.dtype == jnp.float32


def test_single_outage_fast_path_equals_rebuilt_topology(x64, grids64):
    _, grid = grids64["ieee14"]
    p_bus = jnp.broadcast_to(_case_injection(grid), (grid.n_branch, grid.n_bus))
    masks = ~jnp.eye(grid.n_branch, dtype=bool)
    post = fast_jit(grid, p_bus, masks).flow_mw  # [L, L]: row k is the grid after k trips
    rebuilt = dc_jit(grid, p_bus, masks)
    keep = ~np.asarray(grid.branch_is_bridge)
    np.testing.assert_allclose(post[keep], rebuilt.flow_mw[keep], atol=1e-8)
    assert not bool(jnp.any(rebuilt.islanded[keep]))
    assert bool(jnp.all(rebuilt.islanded[~keep]))


def _isolated_bus_case(case: Case, bus_row: int, branch_row: int) -> dict:
    """PYPOWER reference for an island: the cut-off bus made isolated (type 4)."""
    ppc = case.to_ppc()
    ppc["bus"][bus_row, 1] = 4
    ppc["branch"][branch_row, 10] = 0
    ppc["gen"][ppc["gen"][:, 0] == ppc["bus"][bus_row, 0], 7] = 0
    return ppc


def test_islanding_is_flagged_zeroed_and_rest_matches_pypower(x64, grids64):
    case, grid = grids64["ieee14"]
    bridge = int(np.flatnonzero(np.asarray(grid.branch_is_bridge))[0])
    dead_bus = 7  # bus 8 of the file hangs on the bridge 7-8
    mask = jnp.ones(grid.n_branch, dtype=bool).at[bridge].set(False)
    p_bus = _case_injection(grid)
    flow = dc_jit(grid, p_bus, mask)
    assert bool(flow.islanded)
    assert not bool(flow.bus_energised[dead_bus]) and int(flow.bus_energised.sum()) == 13
    assert bool(jnp.all(jnp.isfinite(flow.flow_mw))) and bool(jnp.all(jnp.isfinite(flow.theta)))
    assert float(flow.flow_mw[bridge]) == 0.0 and float(flow.theta[dead_bus]) == 0.0
    result = _rundcpf(_isolated_bus_case(case, dead_bus, bridge))
    live = np.arange(grid.n_branch) != bridge
    np.testing.assert_allclose(flow.flow_mw[live], result["branch"][live, 13], atol=FLOW_TOL_MW)
    # The low-rank fast path grounds the island and keeps the rest.
    batch = fast_jit(
        grid,
        jnp.broadcast_to(p_bus, (2, grid.n_bus)),
        _masks(grid.n_branch, [[bridge, -1], [2, 9]]),
    )
    np.testing.assert_allclose(batch.flow_mw[0], flow.flow_mw, atol=1e-9)
    np.testing.assert_array_equal(batch.islanded, [True, False])
    # Every grid of the batch islanding.
    batch = fast_jit(
        grid,
        jnp.broadcast_to(p_bus, (2, grid.n_bus)),
        _masks(grid.n_branch, [[bridge, -1], [bridge, 2]]),
    )
    np.testing.assert_allclose(batch.flow_mw[0], flow.flow_mw, atol=1e-9)
    np.testing.assert_array_equal(batch.islanded, [True, True])
    assert float(batch.flow_mw[1, 2]) == 0.0


def test_random_outage_masks_conserve_power_and_never_nan():
    grid = build_grid(load_case("ieee30"))
    rng = np.random.default_rng(0)
    masks = rng.random((16, grid.n_branch)) > 0.15
    p_bus = jnp.broadcast_to(_case_injection(grid), (16, grid.n_bus))
    flow = dc_jit(grid, p_bus, jnp.asarray(masks))
    assert bool(jnp.all(jnp.isfinite(flow.flow_mw))) and bool(jnp.all(jnp.isfinite(flow.theta)))
    f, t = np.asarray(grid.branch_from), np.asarray(grid.branch_to)
    expected = np.stack([slack_component(grid.n_bus, f, t, grid.slack, m) for m in masks])
    np.testing.assert_array_equal(flow.bus_energised, expected)
    assert 0 < int(flow.islanded.sum()) < 16  # the draw must exercise both outcomes
    np.testing.assert_array_equal(np.asarray(flow.flow_mw)[~masks], 0.0)
    # Kirchhoff: at every energised non-slack bus, flow out = injection - Gs.
    flow_out = np.einsum("bl,ln->bn", np.asarray(flow.flow_mw), np.asarray(grid.branch_bus))
    injection = np.asarray(p_bus) - np.asarray(grid.bus_gs)
    check = expected.copy()
    check[:, grid.slack] = False
    np.testing.assert_allclose(flow_out[check], injection[check], atol=2e-3)


def test_vmap_equals_batched_call():
    grid = build_grid(load_case("ieee14"))
    rng = np.random.default_rng(1)
    p_bus = jnp.asarray(rng.normal(size=(2, 3, grid.n_bus)) * 20, dtype=jnp.float32)
    masks = jnp.asarray(rng.random((2, 3, grid.n_branch)) > 0.1)
    batched = dc_jit(grid, p_bus, masks)
    mapped = jax.vmap(jax.vmap(dc_power_flow, in_axes=(None, 0, 0)), in_axes=(None, 0, 0))
    single = mapped(grid, p_bus, masks)
    np.testing.assert_allclose(batched.flow_mw, single.flow_mw, atol=1e-3)
    np.testing.assert_array_equal(batched.islanded, single.islanded)
    assert batched.flow_mw.shape == (2, 3, grid.n_branch)
    fixed = dc_jit(grid, p_bus)
    assert fixed.flow_mw.shape == (2, 3, grid.n_branch) and fixed.islanded.shape == (2, 3)


def test_energised_buses_on_a_chain():
    grid = build_grid(load_case("ieee14"))
    everything = energised_buses(grid, jnp.ones(grid.n_branch, dtype=bool))
    nothing = energised_buses(grid, jnp.zeros(grid.n_branch, dtype=bool))
    assert bool(jnp.all(everything))
    np.testing.assert_array_equal(nothing, np.arange(grid.n_bus) == grid.slack)


def test_energised_buses_equal_the_slack_component_under_random_outages():
    grid = build_grid(load_case("ieee118"))
    f, t = np.asarray(grid.branch_from), np.asarray(grid.branch_to)
    rng = np.random.default_rng(7)
    masks = np.ones((300, grid.n_branch), bool)
    for row in masks:
        row[rng.choice(grid.n_branch, rng.integers(0, 40), replace=False)] = False
    ours = np.asarray(jax.jit(lambda m: energised_buses(grid, m))(jnp.asarray(masks)))
    assert 0 < (~ours).sum()  # some outage sets island buses
    for row, mask in enumerate(masks):  # the host's connectivity (scipy's components)
        host = slack_component(grid.n_bus, f, t, grid.slack, mask)
        np.testing.assert_array_equal(ours[row], host)


def test_the_island_kept_by_demand_equals_the_hosts_under_random_outages():
    grid = build_grid(load_case("ieee118"))
    rng = np.random.default_rng(8)
    masks = np.ones((200, grid.n_branch), bool)
    for row in masks:  # up to 120 of 186 branches out: the grid falls apart
        row[rng.choice(grid.n_branch, rng.integers(0, 120), replace=False)] = False
    demand = rng.uniform(0.0, 100.0, (200, grid.n_bus)).astype(np.float32)
    has_unit = rng.random((200, grid.n_bus)) < 0.2
    choose = jax.jit(lambda m, d, u: energised_buses(grid, m, IslandChoice(d, u)))
    ours = np.asarray(choose(jnp.asarray(masks), jnp.asarray(demand), jnp.asarray(has_unit)))
    host = host_energised_buses(grid, masks, demand, has_unit)
    np.testing.assert_array_equal(ours, host)
    assert (~ours[:, grid.slack]).sum() > 5  # some draws keep an island without the slack


def test_one_injection_broadcasts_over_several_outage_masks():
    grid = build_grid(load_case("ieee14"))
    p_bus = _case_injection(grid)
    masks = _masks(grid.n_branch, [[2, 9], [9, 2], [2, -1]])
    flows = dc_jit(grid, p_bus, masks)  # one injection shared by three outage sets
    assert flows.flow_mw.shape == (3, grid.n_branch)
    assert bool(jnp.all(jnp.isfinite(flows.flow_mw)))
    np.testing.assert_allclose(flows.flow_mw[0], flows.flow_mw[1], atol=1e-4)
    single_mask = jnp.ones(grid.n_branch, bool).at[2].set(False)
    np.testing.assert_allclose(
        flows.flow_mw[2], dc_jit(grid, p_bus, single_mask).flow_mw, atol=1e-3
    )


def test_small_solver_matches_numpy_and_needs_pivoting(x64):
    from envs.powerflow.dc_outages import solve_small

    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(4, 3, 3))
    matrix[0] = [[0, 1, 2], [1, 0, 0], [3, 1, 1]]  # zero leading pivot
    matrix[1] = [[1, 2, 3], [2, 4, 6], [0, 1, 1]]  # singular
    rhs = rng.normal(size=(4, 3))
    solution, abs_det = solve_small(jnp.asarray(matrix), jnp.asarray(rhs))
    np.testing.assert_allclose(abs_det, np.abs(np.linalg.det(matrix)), atol=1e-12)
    regular = [0, 2, 3]
    expected = np.linalg.solve(matrix[regular], rhs[regular][..., None])[..., 0]
    np.testing.assert_allclose(solution[np.array(regular)], expected, atol=1e-12)
    assert bool(jnp.all(jnp.isfinite(solution)))


def test_masked_solve_by_cholesky_equals_the_pivoted_lu(x64, grids64):
    _, grid = grids64["ieee118"]
    assert grid.dc_susceptance_positive  # every shipped case: Cholesky
    rng = np.random.default_rng(3)
    masks = jnp.asarray(rng.random((32, grid.n_branch)) > 0.1)  # many island some buses
    p_bus = jnp.broadcast_to(_case_injection(grid), (32, grid.n_bus))
    cholesky = dc_jit(grid, p_bus, masks)
    lu = dc_jit(grid.replace(dc_susceptance_positive=False), p_bus, masks)
    assert 0 < int(cholesky.islanded.sum()) < 32
    np.testing.assert_allclose(cholesky.flow_mw, lu.flow_mw, rtol=0, atol=1e-8)
    np.testing.assert_allclose(cholesky.theta, lu.theta, rtol=0, atol=1e-10)


def test_series_capacitor_takes_the_pivoted_solve_and_matches_rundcpf(x64):
    case = load_case("ieee14")
    case.branch[3, 3] = -0.5 * case.branch[3, 3]  # branch 2-4 series-compensated past zero
    with jax.enable_x64(True):
        grid = build_grid(case, jnp.float64)
    assert not grid.dc_susceptance_positive
    out = np.array(OUTAGES["ieee14"])
    ppc = case.to_ppc()
    ppc["branch"][_in_service_rows(case)[out], 10] = 0
    mask = np.ones(grid.n_branch, dtype=bool)
    mask[out] = False
    flow = dc_jit(grid, _case_injection(grid), jnp.asarray(mask))
    _assert_matches_pypower(flow, case, _rundcpf(ppc), mask)
