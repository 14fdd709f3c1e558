"""The env's low-rank DC flow (outages removed, islands grounded) and its connectivity test
against the dense masked solve, on islanding outage sets and beyond the outage slots."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.powerflow import dc_outages
from envs.powerflow.case import load_case
from envs.powerflow.connectivity import energised_buses
from envs.powerflow.dcpf import IslandChoice, dc_power_flow
from envs.powerflow.grid import build_grid
from envs.powerflow.ptdf import dc_sensitivities, incidence_matrix


def _boundary(grid, buses):
    """Branches with exactly one end in ``buses``: cutting them all islands that set."""
    f, t = np.asarray(grid.branch_from), np.asarray(grid.branch_to)
    inside_f, inside_t = np.isin(f, buses), np.isin(t, buses)
    return np.flatnonzero(inside_f != inside_t)


def _internal(grid, buses):
    f, t = np.asarray(grid.branch_from), np.asarray(grid.branch_to)
    return np.flatnonzero(np.isin(f, buses) & np.isin(t, buses))


def _pair_island(grid):
    """Two adjacent non-slack buses whose boundary is 2..4 branches (a multi-branch cut)."""
    f, t = np.asarray(grid.branch_from), np.asarray(grid.branch_to)
    for u, v in zip(f, t, strict=True):
        pair = [int(u), int(v)]
        if grid.slack not in pair and 2 <= len(_boundary(grid, pair)) <= 4:
            return pair
    raise AssertionError("the case should have a two-bus island with a small cut")


def _outage_sets(grid):
    """Name -> branches out; every set islands buses except 'no island' and 'beyond slots'."""
    bridge = int(np.flatnonzero(np.asarray(grid.branch_is_bridge))[0])
    pair = _pair_island(grid)
    cut = _boundary(grid, pair)
    other = [i for i in range(grid.n_branch) if i not in cut and i not in _internal(grid, pair)]
    rng = np.random.default_rng(3)
    extra = [i for i in other if i != bridge and not grid.branch_is_bridge[i]][:2]
    return {
        "no island": np.asarray(extra),
        "bridge": np.asarray([bridge]),
        "two-bus island (cut of several branches)": cut,
        "two one-bus islands (an outage with both ends dead)": np.r_[cut, _internal(grid, pair)],
        "island plus other outages": np.r_[cut, extra],
        "island and a bridge": np.r_[cut, bridge],
        "beyond slots": rng.choice(grid.n_branch, dc_outages.WIDE_SLOTS + 3, replace=False),
    }


@pytest.fixture(scope="module")
def cases():
    grid = build_grid(load_case("ieee14"))
    sets = _outage_sets(grid)
    in_service = np.ones((len(sets), grid.n_branch), bool)
    for row, out in enumerate(sets.values()):
        in_service[row, out] = False
    rng = np.random.default_rng(0)
    p_bus = rng.normal(0.0, 30.0, (len(sets), grid.n_bus)).astype(np.float32)
    return grid, list(sets), jnp.asarray(p_bus), jnp.asarray(in_service)


def _assert_same(fast, reference, names):
    fast = jax.tree_util.tree_map(np.asarray, fast)
    reference = jax.tree_util.tree_map(np.asarray, reference)
    for row, name in enumerate(names):
        ours = jax.tree_util.tree_map(lambda x, r=row: x[r], fast)
        theirs = jax.tree_util.tree_map(lambda x, r=row: x[r], reference)
        np.testing.assert_array_equal(ours.bus_energised, theirs.bus_energised, err_msg=name)
        np.testing.assert_array_equal(ours.islanded, theirs.islanded, err_msg=name)
        np.testing.assert_allclose(ours.flow_mw, theirs.flow_mw, atol=0.02, err_msg=name)
        np.testing.assert_allclose(ours.theta, theirs.theta, atol=1e-4, err_msg=name)


def test_outage_sets_island_what_the_names_say(cases):
    grid, names, _, in_service = cases
    reference = dc_power_flow(grid, jnp.zeros((len(names), grid.n_bus)), in_service)
    dead = (~np.asarray(reference.bus_energised)).sum(axis=-1)
    expected_dead = {"no island": 0, "bridge": 1, "two-bus island (cut of several branches)": 2}
    for name, count in expected_dead.items():
        assert dead[names.index(name)] == count, name
    assert dead[names.index("two one-bus islands (an outage with both ends dead)")] == 2


@pytest.mark.parametrize("tier", ["few", "wide", "wider"])
def test_low_rank_update_solves_islands_without_the_dense_fallback(cases, tier):
    grid, names, p_bus, in_service = cases
    slots, solve = {
        "few": (dc_outages.few_slots(grid), None),
        "wide": (dc_outages.WIDE_SLOTS, None),
        "wider": (dc_outages.WIDER_SLOTS, dc_outages._solve_qr),  # the LAPACK QR of the third tier
    }[tier]
    outages = (~np.asarray(in_service)).sum(axis=-1)
    within = [i for i in range(len(names)) if outages[i] <= slots]
    assert len(within) >= 2  # the few-slot tier: "no island" and "bridge"
    p_bus, in_service = p_bus[np.asarray(within)], in_service[np.asarray(within)]
    reference = dc_power_flow(grid, p_bus, in_service)
    energised = reference.bus_energised
    low_rank = jax.vmap(lambda p, s, e: dc_outages._low_rank(grid, p, s, e, slots, solve))
    flow, abs_det = jax.jit(low_rank)(p_bus, in_service, energised)
    # well conditioned, so dc_flow keeps these results instead of solving densely
    assert np.all(np.asarray(abs_det) > dc_outages._tolerance(abs_det.dtype))
    _assert_same(flow, reference, [names[i] for i in within])


def test_connectivity_and_flows_match_the_dense_solve_batched_and_single(cases):
    grid, names, p_bus, in_service = cases
    reference = dc_power_flow(grid, p_bus, in_service)
    batched = jax.jit(jax.vmap(lambda p, s: dc_outages.dc_flow(grid, p, s)))
    _assert_same(batched(p_bus, in_service), reference, names)
    energised = jax.jit(jax.vmap(lambda s: dc_outages.connected_buses(grid, s)))(in_service)
    np.testing.assert_array_equal(energised, reference.bus_energised)
    single = jax.jit(lambda p, s: dc_outages.dc_flow(grid, p, s))
    for row in (names.index("two one-bus islands (an outage with both ends dead)"), len(names) - 1):
        one = single(p_bus[row], in_service[row])
        expected = jax.tree_util.tree_map(lambda x: x[row : row + 1], reference)  # noqa: B023
        _assert_same(jax.tree_util.tree_map(lambda x: x[None], one), expected, [names[row]])


def test_an_island_kept_without_the_slack_is_solved_at_its_own_reference():
    """ieee14 with both of the slack's branches out (1-2, 1-5): under the largest-load choice
    the other 13 buses are kept. The env's flow (the dense solve, referenced inside the island)
    and its PTDF equal the host's reduced solve referenced at bus 2; the device's connectivity
    equals the host's, and without a choice the slack's island (bus 1 alone) is kept. The
    angles are held at bus 2: with the slack kept as the reference of a dark island, the
    singular solve still gives the flows but leaves the angles floating."""
    grid = build_grid(load_case("ieee14"))
    in_service = np.ones(grid.n_branch, bool)
    in_service[_boundary(grid, [grid.slack])] = False
    demand = np.asarray(grid.bus_pd, np.float64)
    has_unit = np.isin(np.arange(grid.n_bus), np.asarray(grid.gen_bus))
    choice = IslandChoice(jnp.asarray(demand, jnp.float32), jnp.asarray(has_unit))
    kept = jax.jit(lambda s: dc_outages.connected_buses(grid, s, choice))(jnp.asarray(in_service))
    host = energised_buses(grid, in_service, demand, has_unit)
    np.testing.assert_array_equal(kept, host)
    np.testing.assert_array_equal(host, np.arange(grid.n_bus) != grid.slack)
    slack_only = dc_outages.connected_buses(grid, jnp.asarray(in_service))
    np.testing.assert_array_equal(slack_only, np.arange(grid.n_bus) == grid.slack)
    # a balanced injection on the kept island (the env balances the island it keeps)
    rng = np.random.default_rng(3)
    p_bus = np.where(host, rng.normal(0.0, 30.0, grid.n_bus), 0.0)
    p_bus[1] -= p_bus.sum()
    p_bus += np.asarray(grid.bus_gs)
    flow = jax.jit(lambda p, s, e: dc_outages.dc_flow(grid, p, s, energised=e))(
        jnp.asarray(p_bus, jnp.float32), jnp.asarray(in_service), kept
    )
    incidence = incidence_matrix(grid.n_bus, np.asarray(grid.branch_from), grid.branch_to)
    susceptance = np.where(in_service, np.asarray(grid.branch_dc_b, np.float64), 0.0)
    solved = host & (np.arange(grid.n_bus) != 1)  # bus 2 the reference
    host_model = dc_sensitivities(incidence, susceptance, solved)
    ptdf = host_model.ptdf
    injection_pu = (p_bus - np.asarray(grid.bus_gs)) / grid.base_mva
    expected = ptdf @ injection_pu * grid.base_mva
    np.testing.assert_allclose(flow.flow_mw, expected, atol=2e-3)
    assert np.abs(expected).max() > 10.0  # the island carries flow
    # the angles too: held at bus 2 (the slack's case angle there), not left to a singular solve
    theta = np.asarray(flow.theta) - float(grid.bus_va0[grid.slack])
    host_theta = host_model.bus_inverse @ injection_pu
    np.testing.assert_allclose(theta[host], host_theta[host], atol=1e-5)
    env_ptdf = dc_outages.outage_ptdf(grid, jnp.asarray(in_service), kept)
    np.testing.assert_allclose(
        np.asarray(env_ptdf) @ injection_pu * grid.base_mva, expected, atol=2e-3
    )
