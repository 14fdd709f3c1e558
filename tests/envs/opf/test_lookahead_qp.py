"""The look-ahead DC-OPF: its first period with one period equals the single-step OPF, its
multi-period QP solves (float64) inside every limit and converges in float32 as the env runs
it, bad settings are refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.opf import lookahead_qp, step_qp
from envs.sim import scenarios
from tests.batched_env import reset_to_scenario_batch


def _peak_states(params, n=2):
    keys = scenarios.eval_keys("peak_demand", n, seed=3)
    index = scenarios.scenario_id("peak_demand")
    return reset_to_scenario_batch(keys, params, index)[1]


def test_one_period_on_the_latest_state_is_the_myopic_opf():
    params = make_env(default_env_config())[1]
    states = _peak_states(params)

    def both(state):
        forecast = lookahead_qp.persistence_forecast(state, 1)
        ahead = lookahead_qp.solve_lookahead(state, params, forecast, (1,))
        return ahead, step_qp.solve_myopic_opf(state, params)

    ahead, single = jax.jit(jax.vmap(both))(states)
    assert np.all(np.asarray(ahead.converged)) and np.all(np.asarray(single.converged))
    np.testing.assert_allclose(np.asarray(ahead.pg), np.asarray(single.pg), atol=0.05)
    np.testing.assert_allclose(
        np.asarray(ahead.storage).sum(1), np.asarray(single.storage).sum(1), atol=0.05
    )


def test_the_applied_period_plans_on_what_is_measured_now():
    """The first period is the one the env gets: the latest demand and availability, as the
    single-step OPF sees them; only later periods are forecast (mean weather)."""
    params = make_env(default_env_config())[1]
    states = _peak_states(params)
    forecast = jax.jit(jax.vmap(lambda s: lookahead_qp.operator_forecast(s, params)))(states)
    np.testing.assert_array_equal(np.asarray(forecast.demand[:, 0]), np.asarray(states.demand))
    np.testing.assert_array_equal(
        np.asarray(forecast.available[:, 0]), np.asarray(states.available)
    )
    assert np.any(np.asarray(forecast.demand[:, 1]) != np.asarray(states.demand))


def test_the_multi_period_qp_solves_inside_every_limit(x64):
    params = make_env(default_env_config())[1]
    states = _peak_states(params)
    steps = lookahead_qp.DEFAULT_PERIOD_STEPS

    def solve(state):
        forecast = lookahead_qp.operator_forecast(state, params, steps)
        problem = lookahead_qp.lookahead_problem(state, params, forecast, steps, 0.05)
        x, z, y = step_qp.solve_qp(problem, 40, 1e-8)
        return forecast, problem, x, step_qp.kkt_residual(problem, x, z, y)

    forecast, problem, x, residual = jax.jit(jax.vmap(solve))(states)
    assert np.all(np.asarray(residual) < step_qp.FEASIBILITY_TOL)
    eq, eq_rhs, ineq, rhs = problem.eq, problem.eq_rhs, problem.ineq, problem.ineq_rhs
    slack = np.asarray(rhs) - np.einsum("bij,bj->bi", np.asarray(ineq), np.asarray(x))
    assert slack.min() > -1e-6  # flows, ramps, battery energy and bounds, scaled units
    balance = np.einsum("bij,bj->bi", np.asarray(eq), np.asarray(x)) - np.asarray(eq_rhs)
    assert np.abs(balance).max() < 1e-6
    # peak-demand episodes start in the afternoon: the forecast sees the evening rise
    demand = np.asarray(forecast.demand).sum(-1)
    assert demand.shape == (2, len(steps)) and np.all(demand[:, -1] > demand[:, 0] + 5.0)


def test_the_multi_period_qp_converges_in_float32_on_the_operator_forecast():
    params = make_env(default_env_config())[1]
    states = _peak_states(params, n=4)

    def solve(state):
        forecast = lookahead_qp.operator_forecast(state, params)
        return lookahead_qp.solve_lookahead(state, params, forecast)

    solved = jax.jit(jax.vmap(solve))(states)
    assert solved.pg.dtype == jnp.float32
    assert np.all(np.asarray(solved.converged)), np.asarray(solved.residual)


def test_bad_period_steps_are_refused():
    with pytest.raises(ValueError, match="period_steps"):
        lookahead_qp.check_period_steps((2, 4))
    with pytest.raises(ValueError, match="period_steps"):
        lookahead_qp.check_period_steps(())
    state = type("S", (), {"demand": jnp.zeros((3, 2)), "available": jnp.zeros((3, 1))})
    with pytest.raises(ValueError, match="forecast has 3 periods"):
        lookahead_qp.solve_lookahead(
            None, None, lookahead_qp.Forecast(state.demand, state.available), (1, 1)
        )
