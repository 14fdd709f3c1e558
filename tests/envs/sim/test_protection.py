"""Protection rules and a real three-branch cascade on ieee14, checked against NumPy DC solves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.powerflow.case import load_case
from envs.powerflow.dcpf import dc_power_flow
from envs.powerflow.grid import build_grid
from envs.sim import exogenous, protection

STEPS_TO_TRIP = 3


def test_instant_and_timed_trip_rules():
    loading = jnp.array([1.6, 1.2, 1.2, 0.9, 2.0])
    in_service = jnp.array([True, True, True, True, False])
    count = jnp.array([0, STEPS_TO_TRIP - 1, 0, 5, 0])
    trips = protection.protection_trips(loading, in_service, count, STEPS_TO_TRIP, 1.5)
    # 150%+ trips at once; 120% trips only once the count completes; out-of-service never
    np.testing.assert_array_equal(trips, [True, True, False, False, False])
    np.testing.assert_array_equal(
        protection.next_overload_count(loading, in_service, count), [1, STEPS_TO_TRIP, 1, 0, 0]
    )


def _numpy_flows(grid, p_bus, out):
    """Reference DC flows with the branches in ``out`` removed (intact connectivity assumed)."""
    keep = np.ones(grid.n_branch, bool)
    keep[list(out)] = False
    b = np.where(keep, np.asarray(grid.branch_dc_b, np.float64), 0.0)
    incidence = np.asarray(grid.branch_bus, np.float64)
    bbus = incidence.T @ (b[:, None] * incidence)
    live = np.arange(grid.n_bus) != grid.slack
    theta = np.zeros(grid.n_bus)
    theta[live] = np.linalg.solve(bbus[np.ix_(live, live)], p_bus[live] / grid.base_mva)
    return b * (incidence @ theta) * grid.base_mva


def _connected(grid, out) -> bool:
    f, t = np.asarray(grid.branch_from), np.asarray(grid.branch_to)
    keep = ~np.isin(np.arange(grid.n_branch), out)
    reached = {grid.slack}
    for _ in range(grid.n_bus):
        reached |= {int(t[i]) for i in np.flatnonzero(keep & np.isin(f, list(reached)))}
        reached |= {int(f[i]) for i in np.flatnonzero(keep & np.isin(t, list(reached)))}
    return len(reached) == grid.n_bus


@pytest.fixture(scope="module")
def chain():
    """A branch chain a -> b -> c where each trip overloads the next one."""
    grid = build_grid(load_case("ieee14"))
    case_gen = np.zeros(grid.n_gen)
    case_gen[:] = np.asarray(grid.gen_pg0)
    p_bus = np.asarray(grid.gen_to_bus, np.float64) @ case_gen - np.asarray(grid.bus_pd)
    p_bus[grid.slack] -= p_bus.sum()  # balanced: the slack takes the losses-free mismatch
    bridge = np.asarray(grid.branch_is_bridge)
    flows = [np.abs(_numpy_flows(grid, p_bus, []))]
    a = int(np.argmax(np.where(bridge, -1.0, flows[0])))
    chosen = [a]
    for _ in range(2):
        flows.append(np.abs(_numpy_flows(grid, p_bus, chosen)))
        before = np.max(np.stack(flows[:-1]), axis=0)
        taken = np.isin(np.arange(grid.n_branch), chosen)
        splits = np.array([not _connected(grid, [*chosen, i]) for i in range(grid.n_branch)])
        gain = np.where(bridge | taken | splits, -1.0, flows[-1] - before)
        nxt = int(np.argmax(gain))
        assert gain[nxt] > 1.0, "ieee14 should offer a next branch that picks up flow"
        chosen.append(nxt)
    flows.append(np.abs(_numpy_flows(grid, p_bus, chosen)))
    return grid, p_bus, chosen, flows


def _ratings_and_counts(grid, chosen, flows):
    a, b, c = chosen
    rating = np.full(grid.n_branch, 1e4)
    rating[a] = flows[0][a] / 1.6  # instant trip in the first round
    # b and c sit under their rating until the redistribution, and have been loaded
    # for STEPS_TO_TRIP - 1 steps already, so a fresh overload trips them at once
    rating[b] = 0.5 * (flows[0][b] + flows[1][b])
    rating[c] = 0.5 * (max(flows[0][c], flows[1][c]) + flows[2][c])
    count = np.zeros(grid.n_branch, np.int32)
    count[[b, c]] = STEPS_TO_TRIP - 1
    return jnp.asarray(rating, jnp.float32), jnp.asarray(count)


def _cascade(grid, p_bus, rating, count, rounds):
    def solve(in_service, energised, active):
        return dc_power_flow(grid, jnp.asarray(p_bus, jnp.float32), in_service)

    return protection.run_cascade(
        solve,
        jnp.ones(grid.n_branch, bool),
        jnp.ones(grid.n_bus, bool),
        count,
        rating,
        STEPS_TO_TRIP,
        1.5,
        rounds,
    )


def test_cascade_propagates_to_the_branches_the_redistribution_overloads(chain):
    grid, p_bus, chosen, flows = chain
    rating, count = _ratings_and_counts(grid, chosen, flows)
    in_service, flow, _ = _cascade(grid, p_bus, rating, count, rounds=4)
    expected = np.ones(grid.n_branch, bool)
    expected[chosen] = False
    np.testing.assert_array_equal(np.asarray(in_service), expected)
    np.testing.assert_allclose(np.abs(np.asarray(flow.flow_mw)), flows[3], atol=0.05)


def test_cascade_stops_after_the_round_budget(chain):
    grid, p_bus, chosen, flows = chain
    rating, count = _ratings_and_counts(grid, chosen, flows)
    in_service, flow, _ = _cascade(grid, p_bus, rating, count, rounds=2)
    expected = np.ones(grid.n_branch, bool)
    expected[chosen[:2]] = False  # two re-solves: a and b are out, c's trip stays pending
    np.testing.assert_array_equal(np.asarray(in_service), expected)
    np.testing.assert_allclose(np.abs(np.asarray(flow.flow_mw)), flows[2], atol=0.05)


def test_tripped_branch_recloses_when_its_cooldown_runs_out():
    env, params = make_env(default_env_config())
    _, state = jax.jit(env.reset)(jax.random.PRNGKey(0), params)
    episode = state.episode.replace(
        event_time=jnp.full_like(state.episode.event_time, -1),
        line_failure_rate=jnp.float32(0.0),
        gen_failure_rate=jnp.float32(0.0),
    )
    cooldown = jnp.zeros(params.grid.n_branch, jnp.int32).at[3].set(2)
    gen_cooldown = jnp.zeros(params.grid.n_gen, jnp.int32)
    noise = exogenous.draw_step_noise(jax.random.PRNGKey(1), params.grid)
    first = exogenous.step_topology(noise, 1, cooldown, gen_cooldown, episode, params)
    assert not bool(first.branch_in_service[3]) and int(first.branch_cooldown[3]) == 1
    second = exogenous.step_topology(noise, 2, first.branch_cooldown, gen_cooldown, episode, params)
    assert bool(second.branch_in_service.all())


def test_batched_cascade_with_the_fast_solver_matches_each_grid_alone(chain):
    """Under vmap later rounds re-solve only the grids still cascading, with the env's
    low-rank solver: each grid must end as the dense solve run alone on it ends."""
    from envs.powerflow.dc_outages import dc_flow

    grid, p_bus, chosen, flows = chain
    rating, count = _ratings_and_counts(grid, chosen, flows)
    scales = jnp.asarray([1.0, 0.5, 1.0], jnp.float32)  # cascade, calm, cascade

    def fast(scale):
        def solve(in_service, energised, active, s):
            return dc_flow(grid, s * jnp.asarray(p_bus, jnp.float32), in_service, active)

        start = (jnp.ones(grid.n_branch, bool), jnp.ones(grid.n_bus, bool))
        return protection.run_cascade(
            solve, *start, count, rating, STEPS_TO_TRIP, 1.5, 4, context=(scale,)
        )

    in_service, flow, _ = jax.jit(jax.vmap(fast))(scales)
    expected = np.ones(grid.n_branch, bool)
    expected[chosen] = False
    np.testing.assert_array_equal(
        np.asarray(in_service), [expected, np.ones_like(expected), expected]
    )
    np.testing.assert_allclose(np.abs(np.asarray(flow.flow_mw[0])), flows[3], atol=0.05)
    np.testing.assert_allclose(np.asarray(flow.flow_mw[2]), np.asarray(flow.flow_mw[0]), atol=1e-3)
    intact = dc_power_flow(grid, 0.5 * jnp.asarray(p_bus, jnp.float32))
    np.testing.assert_allclose(np.asarray(flow.flow_mw[1]), np.asarray(intact.flow_mw), atol=0.02)
