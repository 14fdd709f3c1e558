"""The PTDF of a topology with outages by a low-rank update of the intact one equals the dense
``ptdf_matrix``, islands and the dense fallback included; so do a few of its rows alone."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.powerflow import dc_outages
from envs.powerflow.case import load_case
from envs.powerflow.dc_outages import (
    SMALL_GRID_BRANCHES,
    WIDE_SLOTS,
    WIDER_SLOTS,
    connected_buses,
    few_slots,
)
from envs.powerflow.grid import build_grid
from envs.powerflow.ptdf import ptdf_matrix

# The batch's grids, by row: intact, one outage, two, a bridge (islands its far side), a bridge
# and one more, the wide tier, the wider tier (the dense solve on ieee14), an ill-conditioned
# update (the dense solve), more outages than any tier (the dense solve).
ROWS = ("intact", "one", "two", "island", "island+one", "wide", "wider", "ill", "beyond")
WELL, ILL = 1e-3, 1e-5  # |det(I - H_OO)| of the outages drawn for "wide" and "wider", "ill"


def _topologies(grid):
    """[len(ROWS), L] in-service masks."""
    rng = np.random.default_rng(0)
    bridges = np.flatnonzero(np.asarray(grid.branch_is_bridge))
    # not at the slack either: many outages there cut it off alone (an all-zero PTDF)
    at_slack = (np.asarray(grid.branch_from) == grid.slack) | (
        np.asarray(grid.branch_to) == grid.slack
    )
    non_bridges = np.flatnonzero(~np.asarray(grid.branch_is_bridge) & ~at_slack)
    coupling = np.asarray(grid.branch_ptdf, np.float64)
    beyond = min(WIDER_SLOTS + 2, non_bridges.size)  # ieee14: 17 (> 8, its most)
    counts = {"one": 1, "two": 2, "island+one": 1, "wide": WIDE_SLOTS - 1, "beyond": beyond}
    counts["wider"] = counts["ill"] = WIDE_SLOTS + 3

    def draw(k, accept):
        for _ in range(1000):
            out = rng.choice(non_bridges, k, replace=False)
            if accept(abs(np.linalg.det(np.eye(k) - coupling[np.ix_(out, out)]))):
                return out
        raise AssertionError(f"no outage set of {k} found")

    in_service = np.ones((len(ROWS), grid.n_branch), bool)
    for row, name in enumerate(ROWS):
        k = counts.get(name, 0)
        if name == "wide" or (name == "wider" and grid.n_branch > SMALL_GRID_BRANCHES):
            out = draw(k, lambda det: det > WELL)  # the update serves
        elif name == "ill":
            out = draw(k, lambda det: det < ILL)
        else:
            out = rng.choice(non_bridges, k, replace=False)
        in_service[row, out] = False
        if name.startswith("island"):
            in_service[row, bridges[0]] = False
    return jnp.asarray(in_service)


@functools.cache
def _grid(case):
    return build_grid(load_case(case))


def _rows(grid, in_service):
    """Four branch indices per grid: the first, the last, one out of service and a middle one
    (a correction asks for its most loaded branches, in no order)."""
    out = jnp.argmin(in_service)  # 0 on the intact grid
    return jnp.stack([grid.n_branch // 2, out, 0, grid.n_branch - 1])


@functools.cache
def _compare(case):
    """One jitted program per case: the batched ``outage_ptdf``, the first tier's update alone
    (|det| with it) and the dense reference."""
    grid = _grid(case)

    def one(in_service):
        energised = connected_buses(grid, in_service)
        first = dc_outages._low_rank_ptdf(grid, in_service, energised, few_slots(grid))
        dense = ptdf_matrix(grid, in_service, energised)
        rows = dc_outages.outage_ptdf_rows(grid, _rows(grid, in_service), in_service, energised)
        return dc_outages.outage_ptdf(grid, in_service, energised), first, dense, energised, rows

    return jax.jit(jax.vmap(one))


@pytest.mark.parametrize("case", ["ieee14", "ieee118"])
def test_low_rank_ptdf_equals_the_dense_ptdf(case):
    grid = _grid(case)
    in_service = _topologies(grid)
    ptdf, (first, abs_det), dense, energised, rows = _compare(case)(in_service)
    ptdf, first, dense, energised, rows = map(np.asarray, (ptdf, first, dense, energised, rows))
    np.testing.assert_allclose(ptdf, dense, atol=2e-5, err_msg=case)
    # A few rows alone, in every tier and fallback, are those rows of the whole matrix.
    picked = np.asarray(jax.vmap(_rows, in_axes=(None, 0))(grid, in_service))
    np.testing.assert_allclose(rows, np.take_along_axis(dense, picked[..., None], 1), atol=2e-5)
    assert np.all(rows[1:, 1] == 0.0)  # the branch out of service carries nothing
    np.testing.assert_array_equal(ptdf[0], np.asarray(grid.ptdf))
    # out-of-service branches carry nothing, nor do buses cut off from the slack
    assert np.all(ptdf[~np.asarray(in_service)] == 0.0)
    for row in range(len(ROWS)):
        assert np.all(ptdf[row][:, ~energised[row]] == 0.0)
    assert not energised[ROWS.index("island")].all()  # the bridge did island a bus
    outages = np.sum(~np.asarray(in_service), axis=1)
    assert np.all(energised[outages <= WIDE_SLOTS].sum(axis=1) > grid.n_bus // 2)  # not all 0
    # Within the first tier's slots the update serves alone, islands included (no fallback).
    within = outages <= few_slots(grid)
    assert np.all(np.asarray(abs_det)[within] >= dc_outages.ISLAND_DET_TOL[0])
    np.testing.assert_allclose(first[within], dense[within], atol=2e-5, err_msg=case)


def test_single_grid_low_rank_ptdf_equals_the_dense_ptdf():
    grid = _grid("ieee14")
    in_service = _topologies(grid)

    @jax.jit
    def single(in_service):
        energised = connected_buses(grid, in_service)
        return dc_outages.outage_ptdf(grid, in_service, energised), ptdf_matrix(
            grid, in_service, energised
        )

    for row in (0, ROWS.index("island+one"), ROWS.index("beyond")):
        ptdf, dense = single(in_service[row])
        np.testing.assert_allclose(ptdf, dense, atol=2e-5, err_msg=ROWS[row])
