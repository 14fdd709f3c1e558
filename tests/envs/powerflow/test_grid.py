"""build_grid indexing and modelling rules, generation cost, shipped ratings and layouts."""

import dataclasses
import re

import numpy as np
import pytest
from jax import numpy as jnp

from envs.powerflow import ratings
from envs.powerflow.case import SHIPPED_CASES, Case, CaseError, load_case
from envs.powerflow.grid import build_grid, check_case, generation_cost
from envs.powerflow.matpower import parse_matpower
from tests.envs.powerflow.test_matpower import ODD_CASE


@pytest.fixture(scope="module")
def odd_case():
    return Case.from_matpower(parse_matpower(ODD_CASE), name="odd")


@pytest.fixture(scope="module")
def odd_grid(odd_case):
    return build_grid(odd_case)


def test_indexing_is_file_order_without_out_of_service_elements(odd_grid):
    grid = odd_grid
    assert (grid.n_bus, grid.n_branch, grid.n_gen) == (6, 8, 4)
    # file bus numbers 10 20 7 42 5 99 -> 0..5; the 9th branch (20-5) is out of service
    np.testing.assert_array_equal(grid.branch_from, [0, 0, 1, 1, 3, 2, 4, 3])
    np.testing.assert_array_equal(grid.branch_to, [1, 2, 2, 3, 4, 4, 5, 5])
    np.testing.assert_array_equal(grid.gen_bus, [0, 1, 1, 4])  # gen at bus 42 is off
    assert grid.slack == 0
    np.testing.assert_array_equal(grid.bus_type, [3, 2, 1, 1, 2, 1])
    assert grid.pv_buses == (1, 4) and grid.pq_buses == (2, 3, 5)


def test_branch_and_bus_parameters(odd_grid):
    grid = odd_grid
    np.testing.assert_allclose(grid.branch_tap, [1, 1, 1, 1, 0.978, 1.05, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(grid.branch_shift[5], np.deg2rad(-3.0), rtol=1e-6)
    np.testing.assert_allclose(grid.branch_dc_b[4], 1 / (0.25 * 0.978), rtol=1e-6)
    np.testing.assert_allclose(grid.bus_gs, [0, 0, 5, 0, 0, 0])
    np.testing.assert_allclose(grid.bus_bs, [0, 0, 19, 0, -5, 0])
    np.testing.assert_allclose(grid.bus_vm_set, [1.04, 1.02, 1.0, 1.0, 1.01, 1.0], rtol=1e-6)
    np.testing.assert_allclose(grid.bus_va0[0], np.deg2rad(5.0), rtol=1e-6)
    np.testing.assert_allclose(grid.branch_rating, [100, 80, 80, 80, 60, 60, 50, 50])
    np.testing.assert_allclose(grid.gen_ramp, [5, 2, 0, 0])


def test_incidence_matrices(odd_grid):
    grid = odd_grid
    np.testing.assert_array_equal(np.asarray(grid.gen_to_bus).sum(axis=0), np.ones(4))
    assert grid.gen_to_bus[1, 1] == 1 and grid.gen_to_bus[1, 2] == 1
    branch_bus = np.asarray(grid.branch_bus)
    np.testing.assert_array_equal(branch_bus.sum(axis=1), np.zeros(8))
    assert branch_bus[4, 3] == 1 and branch_bus[4, 4] == -1


def test_pv_bus_without_generator_becomes_pq(odd_case):
    gen = odd_case.gen.copy()
    gen[3, 7] = 0  # the only generator of bus 5
    grid = build_grid(dataclasses.replace(odd_case, gen=gen))
    assert int(grid.bus_type[4]) == 1
    assert grid.n_gen == 3


def test_generation_cost_by_hand(odd_grid):
    pg = jnp.array([[50.0, 40.0, 30.0, 90.0], [0.0, 0.0, 0.0, 30.0], [0.0, 0.0, 0.0, 130.0]])
    cost = np.asarray(generation_cost(odd_grid, pg))
    np.testing.assert_allclose(cost[0, 0], 0.01 * 50**2 + 20 * 50 + 100, rtol=1e-6)
    np.testing.assert_allclose(cost[0, 1], 0.02 * 40**2 + 25 * 40 + 50, rtol=1e-6)
    np.testing.assert_allclose(cost[0, 2], 30 * 30, rtol=1e-6)
    np.testing.assert_allclose(cost[0, 3], 1500 + (3800 - 1500) * 30 / 60, rtol=1e-6)
    np.testing.assert_allclose(cost[1, 3], 1500 * 30 / 60, rtol=1e-6)
    np.testing.assert_allclose(cost[2, 3], 3800 + (3800 - 1500) * 10 / 60, rtol=1e-6)
    assert bool(odd_grid.gen_cost_is_pwl[3]) and not bool(odd_grid.gen_cost_is_pwl[0])


def test_piecewise_cost_padding_repeats_last_point():
    text = ODD_CASE.replace("\t2\t0\t0\t3\t0.01\t20\t100;", "\t1\t0\t0\t2\t0\t0\t300\t6000;")
    grid = build_grid(Case.from_matpower(parse_matpower(text), name="pwl"))
    assert grid.gen_cost_pwl_mw.shape == (4, 3)
    np.testing.assert_allclose(grid.gen_cost_pwl_mw[0], [0, 300, 300])
    cost = generation_cost(grid, jnp.array([150.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(cost[0], 3000.0, rtol=1e-6)


def test_missing_ratings_are_derived_finite(odd_case):
    branch = odd_case.branch.copy()
    branch[:, 5] = 0
    grid = build_grid(dataclasses.replace(odd_case, branch=branch))
    rating = np.asarray(grid.branch_rating)
    assert np.all(np.isfinite(rating)) and np.all(rating >= 1)


@pytest.mark.parametrize("name", sorted(SHIPPED_CASES))
def test_shipped_cases_have_finite_positive_ratings_and_layouts(name):
    grid = build_grid(load_case(name))
    rating = np.asarray(grid.branch_rating)
    assert np.all(np.isfinite(rating)) and np.all(rating > 0)
    assert not np.any(ratings.needs_rating(rating))
    xy = np.asarray(grid.bus_xy)
    assert xy.shape == (grid.n_bus, 2) and np.all((xy >= 0) & (xy <= 1))
    assert len(np.unique(np.round(xy, 6), axis=0)) > 0.9 * grid.n_bus  # buses spread out


def _scaled_ppc(case: Case, load_level: float) -> dict:
    """The documented dispatch rule: loads and case dispatch scaled together."""
    ppc = case.to_ppc()
    ppc["bus"][:, 2:4] *= load_level
    ppc["gen"][:, 1] *= load_level
    return ppc


def _pypower_loading(case: Case, load_level: float, mode: str) -> np.ndarray:
    """Branch flow / rateA under the dispatch rule, solved by PYPOWER (DC: |P|, AC: max |S|)."""
    from pypower.api import ppoption, rundcpf, runpf

    options = ppoption(VERBOSE=0, OUT_ALL=0, ENFORCE_Q_LIMS=0)
    solve = rundcpf if mode == "dc" else runpf
    result, success = solve(_scaled_ppc(case, load_level), options)
    assert success
    branch = result["branch"][result["branch"][:, 10] != 0]
    if mode == "dc":
        flow = np.abs(branch[:, 13])
    else:
        flow = np.maximum(
            np.hypot(branch[:, 13], branch[:, 14]), np.hypot(branch[:, 15], branch[:, 16])
        )
    return flow / branch[:, 5]


@pytest.mark.parametrize("name", ["ieee14", "ieee118"])
def test_derived_ratings_congest_at_peak_but_not_at_base_load(name):
    case = load_case(name)
    for mode in ("dc", "ac"):
        assert np.max(_pypower_loading(case, 1.0, mode)) <= 1.0
        assert np.max(_pypower_loading(case, 0.8, mode)) <= 1.0
    assert np.sum(_pypower_loading(case, ratings.PEAK_LOAD, "dc") > 1.0) >= 1


def test_case30_keeps_its_own_ratings_and_is_not_overloaded_at_base():
    import pypower.api as pp

    case = load_case("ieee30")
    np.testing.assert_array_equal(case.branch[:, 5], pp.case30()["branch"][:, 5])
    assert np.max(_pypower_loading(case, 1.0, "dc")) <= 1.0


def test_bridge_branches_are_flagged():
    grid = build_grid(load_case("ieee14"))
    bridges = np.flatnonzero(np.asarray(grid.branch_is_bridge))
    # bus 8 (index 7) hangs on branch 7-8 only
    assert len(bridges) == 1
    assert {int(grid.branch_from[bridges[0]]), int(grid.branch_to[bridges[0]])} == {6, 7}
    lodf = np.asarray(grid.lodf)
    assert np.all(lodf[:, bridges[0]] == 0)
    non_bridge = np.setdiff1d(np.arange(grid.n_branch), bridges)
    np.testing.assert_allclose(np.diag(lodf)[non_bridge], -1.0)


def _odd_with(odd_case, edits: dict):
    arrays = {field: getattr(odd_case, field).copy() for field in ("bus", "gen", "branch")}
    for (field, row, column), value in edits.items():
        arrays[field][row, column] = value
    return dataclasses.replace(odd_case, **arrays)


@pytest.mark.parametrize(
    "edits, message",
    [
        ({("gen", g, 8): 0.0 for g in range(5)}, "has no controllable unit"),
        ({("bus", 0, 1): 1, ("bus", 1, 1): 1, ("bus", 4, 1): 1}, "has no slack"),
        ({("branch", 6, 10): 0, ("branch", 7, 10): 0}, "islanded at base load: bus(es) 99"),
        ({("branch", 2, 3): 0.0}, "zero reactance x, the first from bus 20 to bus 7"),
        ({("branch", 4, 5): -10.0}, "negative rating rateA, the first from bus 42 to bus 5"),
    ],
    ids=["no-unit", "no-slack", "island", "zero-x", "negative-rating"],
)
def test_a_grid_the_env_cannot_run_is_one_clear_error(odd_case, edits, message):
    case = _odd_with(odd_case, edits)
    for check in (check_case, build_grid):
        with pytest.raises(CaseError, match=re.escape(message)) as caught:
            check(case)
        assert "\n" not in str(caught.value) and "case odd" in str(caught.value)


def test_the_odd_case_needs_nothing_derived(odd_case):
    assert check_case(odd_case) == ()


def test_first_pv_bus_becomes_the_slack_and_is_reported(odd_case):
    case = _odd_with(odd_case, {("bus", 0, 1): 2})  # bus 10 was the reference
    notes = check_case(case)
    assert build_grid(case).slack == 0
    assert any("bus 10, the first PV bus with one, is the slack" in n for n in notes), notes
    case = _odd_with(odd_case, {("bus", 0, 1): 1})  # now bus 20 (2nd row) is the first PV
    assert build_grid(case).slack == 1
    assert any("bus 20" in n for n in check_case(case))


def test_unlimited_ratings_are_derived_and_reported(odd_case):
    case = _odd_with(odd_case, {("branch", 0, 5): 0.0, ("branch", 3, 5): 9900.0})
    (note,) = check_case(case)
    assert note.startswith("2 of 8 in-service branches have no rating")
    rating = np.asarray(build_grid(case).branch_rating)
    np.testing.assert_allclose(rating[[1, 2, 4, 5, 6, 7]], [80, 80, 60, 60, 50, 50])
    assert rating[0] not in (0.0, 9900.0) and rating[3] not in (0.0, 9900.0)
    assert np.all(np.isfinite(rating)) and np.all(rating >= 1)


def test_build_time_flows_equal_dc_power_flow(x64, odd_case):
    """The NumPy flow that rates branches while building a Grid is the public DC flow."""
    from envs.powerflow.dcpf import dc_power_flow
    from envs.powerflow.grid import _dc_matrices, _network_numpy, dc_flows_numpy

    net = _network_numpy(odd_case)
    net.update(_dc_matrices(net))
    grid = build_grid(odd_case, jnp.float64)
    injection = np.asarray(grid.gen_to_bus @ grid.gen_pg0 - grid.bus_pd)
    host = dc_flows_numpy(net, injection - net["bus_gs"], odd_case.base_mva)
    np.testing.assert_allclose(host, dc_power_flow(grid, jnp.asarray(injection)).flow_mw, atol=1e-9)
    assert np.any(np.asarray(grid.branch_shift) != 0) or np.any(net["bus_gs"] != 0)
