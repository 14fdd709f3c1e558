"""The env's batched DC flow (compensated where it can, dense where it must) equals dcpf's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.powerflow.case import load_case
from envs.powerflow.dc_outages import WIDER_SLOTS, dc_flow
from envs.powerflow.dcpf import dc_power_flow
from envs.powerflow.grid import build_grid

BATCH = 64


def _mixed_batch(grid, islands: int):
    """Mostly intact grids, some with 1-11 outages (every tier of slots; the dense solve on
    ieee14), ``islands`` cut at a bridge, one N-k beyond every tier (the dense solve)."""
    rng = np.random.default_rng(0)
    p_bus = rng.normal(0.0, 20.0, (BATCH, grid.n_bus))
    in_service = np.ones((BATCH, grid.n_branch), bool)
    non_bridges = np.flatnonzero(~np.asarray(grid.branch_is_bridge))
    for b in range(BATCH):
        k = (0, 0, 1, 2, 3, 6, 0, 11)[b % 8]
        in_service[b, rng.choice(non_bridges, k, replace=False)] = False
    bridge = int(np.flatnonzero(np.asarray(grid.branch_is_bridge))[0])
    in_service[:islands, bridge] = False
    in_service[-1, : WIDER_SLOTS + 2] = False  # more outages than slots
    return jnp.asarray(p_bus, jnp.float32), jnp.asarray(in_service)


def _assert_same(fast, reference):
    np.testing.assert_allclose(fast.flow_mw, reference.flow_mw, atol=0.02)
    np.testing.assert_allclose(fast.theta, reference.theta, atol=1e-4)
    np.testing.assert_array_equal(fast.bus_energised, reference.bus_energised)
    np.testing.assert_array_equal(fast.islanded, reference.islanded)


@pytest.mark.parametrize("case", ["ieee14", "ieee118"])
def test_batched_flow_matches_the_dense_solve_for_any_number_of_islands(case):
    grid = build_grid(load_case(case))
    batched = jax.jit(jax.vmap(lambda p, s: dc_flow(grid, p, s)))
    # 1 to 40 of the 64 grids islanded (connectivity sweep for them; low-rank flows), and
    # the N-k grid beyond the outage slots (dense solve)
    for islands in (1, 8, 25, 40):
        p_bus, in_service = _mixed_batch(grid, islands)
        _assert_same(batched(p_bus, in_service), dc_power_flow(grid, p_bus, in_service))


def test_single_grid_flow_matches_the_dense_solve():
    grid = build_grid(load_case("ieee14"))
    single = jax.jit(lambda p, s: dc_flow(grid, p, s))
    p_bus, in_service = _mixed_batch(grid, 1)
    for b in (0, 3, BATCH - 1):  # intact, compensated, dense
        _assert_same(single(p_bus[b], in_service[b]), dc_power_flow(grid, p_bus[b], in_service[b]))


def test_active_grids_are_exact_whatever_the_inactive_ones_need():
    grid = build_grid(load_case("ieee14"))
    batched = jax.jit(jax.vmap(lambda p, s, a: dc_flow(grid, p, s, a)))
    p_bus, in_service = _mixed_batch(grid, 40)  # 41 grids need the dense solve
    active = np.zeros(BATCH, bool)
    active[[0, 3, 5, BATCH - 1]] = True  # island, outage, intact, N-k
    fast = batched(p_bus, in_service, jnp.asarray(active))
    reference = dc_power_flow(grid, p_bus, in_service)
    pick = lambda flow: jax.tree_util.tree_map(lambda x: np.asarray(x)[active], flow)  # noqa: E731
    _assert_same(pick(fast), pick(reference))
