"""The merit-order dispatch and the single-step DC-OPF in JAX against hand numbers and HiGHS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import baselines, dcpf, merit_order, scenarios, step_opf
from envs.config import default_env_config
from envs.env import GridEnv, make_env, reset_to_scenario
from envs.grid import generation_cost


@pytest.fixture(scope="module")
def env_params():
    return make_env(default_env_config())[1]


def test_economic_dispatch_runs_units_at_equal_incremental_cost():
    c2, c1 = jnp.array([1.0, 1.0]), jnp.array([10.0, 20.0])
    lo, hi = jnp.zeros(2), jnp.full(2, 100.0)
    # lambda = 10 + 2 p1 = 20 + 2 p2 and p1 + p2 = 10: lambda = 25, p = (7.5, 2.5).
    p = merit_order.economic_dispatch(jnp.float32(10.0), lo, hi, c2, c1)
    np.testing.assert_allclose(p, [7.5, 2.5], atol=1e-4)
    np.testing.assert_allclose(merit_order.system_lambda(p, lo, hi, c2, c1), 25.0, atol=1e-3)
    # The cheap unit capped at 5 MW: the other covers the rest.
    p = merit_order.economic_dispatch(jnp.float32(10.0), lo, jnp.array([5.0, 100.0]), c2, c1)
    np.testing.assert_allclose(p, [5.0, 5.0], atol=1e-4)
    # More load than capacity: every unit at its maximum.
    p = merit_order.economic_dispatch(jnp.float32(500.0), lo, hi, c2, c1)
    np.testing.assert_allclose(p, [100.0, 100.0], atol=1e-4)


def test_merit_order_targets_cover_the_latest_load(env_params):
    _, state = reset_to_scenario(jax.random.PRNGKey(0), env_params, 0)
    targets = baselines.merit_order_targets(state, env_params)
    load = float(jnp.sum(state.demand) + jnp.sum(env_params.grid.bus_gs))
    assert float(jnp.sum(targets)) == pytest.approx(load, rel=1e-4)


def test_ptdf_reproduces_the_dc_power_flow(env_params):
    grid = env_params.grid
    p_bus = jax.random.normal(jax.random.PRNGKey(1), (grid.n_bus,)) * 20.0
    p_bus = p_bus.at[grid.slack].add(-jnp.sum(p_bus))
    ptdf = step_opf.ptdf_matrix(grid, jnp.ones(grid.n_branch, bool), jnp.ones(grid.n_bus, bool))
    reference = dcpf.dc_power_flow(grid, p_bus).flow_mw
    shift_free = jnp.all(grid.branch_shift == 0.0)
    assert bool(shift_free)
    np.testing.assert_allclose(ptdf @ p_bus, reference, atol=1e-3)


_STATES = {}


def _states(env_params, scenario: str, n: int, steps: int):
    """``n`` states of ``scenario`` after ``steps`` steps of the myopic OPF's JAX twin (made
    once per scenario: the scan compiles the QP)."""
    if scenario not in _STATES:
        _STATES[scenario] = _advanced_states(env_params, scenario, n, steps)
    return _STATES[scenario]


def _advanced_states(env_params, scenario: str, n: int, steps: int):
    act = baselines.step_opf_baseline(env_params)
    keys = scenarios.eval_keys(scenario, n, seed=7)
    reset = jax.vmap(reset_to_scenario, in_axes=(0, None, None))
    _, state = reset(keys, env_params, scenarios.scenario_id(scenario))
    step = jax.vmap(GridEnv().step, in_axes=(0, 0, 0, None))

    @jax.jit
    def advance(state):
        def body(state, key):
            action = act(None, state, None, None)
            return step(jax.random.split(key, n), state, action, env_params)[1], None

        return jax.lax.scan(body, state, jax.random.split(keys[0], steps))[0]

    return advance(state)


@pytest.mark.parametrize("scenario", ["normal", "peak_demand"])
def test_step_opf_matches_the_highs_myopic_opf(env_params, scenario):
    """Same single-step problem (rating margin, ramps, batteries, shedding) on both solvers."""
    states = _states(env_params, scenario, 4, 6)
    solved = jax.jit(jax.vmap(step_opf.solve_step_opf, in_axes=(0, None)))(states, env_params)
    assert bool(jnp.all(solved.converged))
    model = baselines.myopic_model(env_params)
    is_renewable = np.asarray(env_params.devices.is_renewable, bool)
    args = (states.demand, states.available, states.branch_in_service, states.pg, states.soc)
    pg, battery, shed = baselines._myopic_host(
        model, is_renewable, *(np.asarray(x, np.float64) for x in args)
    )

    def cost(p):
        per_unit = np.asarray(generation_cost(env_params.grid, jnp.asarray(p, jnp.float32)))
        return np.sum(per_unit * ~is_renewable, axis=1)

    voll = env_params.consts.voll
    ours = cost(solved.pg) + voll * np.sum(np.asarray(solved.shed), 1)
    highs = cost(pg) + voll * np.sum(shed, 1)
    np.testing.assert_allclose(ours, highs, rtol=2e-3, atol=5.0)
    np.testing.assert_allclose(np.sum(np.asarray(solved.pg), 1), np.sum(pg, 1), atol=1.0)
    # Batteries with the same (zero) offer are interchangeable: only their total is unique.
    np.testing.assert_allclose(np.sum(np.asarray(solved.storage), 1), np.sum(battery, 1), atol=1.0)


def test_step_opf_keeps_every_branch_inside_its_margin(env_params):
    states = _states(env_params, "peak_demand", 4, 6)
    solved = jax.jit(jax.vmap(step_opf.solve_step_opf, in_axes=(0, None)))(states, env_params)
    grid = env_params.grid
    for b in range(4):
        state = jax.tree.map(lambda x, b=b: x[b], states)
        injection = grid.gen_to_bus @ solved.pg[b] + solved.shed[b] - state.demand - grid.bus_gs
        injection = injection.at[env_params.devices.storage_bus].add(solved.storage[b])
        in_service = state.branch_in_service | (state.branch_cooldown == 1)
        flow = dcpf.masked_flow(grid, injection, in_service).flow_mw
        limit = (1.0 - baselines.MYOPIC_RATING_MARGIN) * grid.branch_rating
        assert np.all(np.abs(np.asarray(flow)) <= np.asarray(limit) + 0.5)


def test_solved_flags_an_infeasible_point():
    # min x^2 s.t. x = 1, x <= 2: the optimum is x = 1 with multipliers y = -2, z = 0.
    problem = (jnp.eye(1) * 2.0, jnp.zeros(1), jnp.ones((1, 1)), jnp.ones(1), jnp.ones((1, 1)),
               jnp.full(1, 2.0))  # fmt: skip
    ok = step_opf.solved(problem, jnp.ones(1), jnp.zeros(1), jnp.full(1, -2.0))
    assert bool(ok)
    assert not bool(step_opf.solved(problem, jnp.full(1, 1.5), jnp.zeros(1), jnp.full(1, -2.0)))
    assert not bool(step_opf.solved(problem, jnp.full(1, jnp.nan), jnp.zeros(1), jnp.zeros(1)))
