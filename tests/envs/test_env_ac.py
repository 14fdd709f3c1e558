"""AC physics mode: a short jitted episode on ieee14 with real voltages and losses."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.powerflow import network_flow
from envs.powerflow.acpf import ac_power_flow
from envs.powerflow.case import load_case
from envs.powerflow.grid import build_grid
from envs.sim import islands

BATCH = 2


@pytest.fixture(scope="module")
def ac_env():
    """The AC env and its batched reset, compiled once for the module's two env tests.

    ``scenario`` is a reset argument (``params.scenario_id``), not part of the program: the
    episode test's fixed "normal" day and the reset test's sampled one share the compile."""
    config = default_env_config()
    config.physics, config.island_rule = "ac", "slack"
    env, params = make_env(config)
    return env, params, jax.jit(jax.vmap(env.reset, in_axes=(0, None)))


def test_ac_episode_has_losses_real_voltages_and_balances(ac_env):
    env, _, reset = ac_env
    config = default_env_config()
    config.physics, config.island_rule = "ac", "slack"
    config.scenario = "normal"
    _, params = make_env(config)
    spec = env.spec(params)
    keys = jax.random.split(jax.random.PRNGKey(0), BATCH)
    _, state = reset(keys, params)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    # charge batteries a little, no shedding, full renewables, units mid-range
    action = np.zeros((BATCH, spec.num_agents, spec.action_dim), np.float32)
    for i in range(3):
        _, state, reward, _, _, info = step(
            jax.random.split(jax.random.PRNGKey(i + 1), BATCH), state, action, params
        )
        assert np.isfinite(np.asarray(reward)).all()
        assert np.asarray(info["pf_converged"]).all()
        losses = np.asarray(info["losses_mw"])
        demand = np.asarray(info["served_mw"])
        assert ((losses > 0.0) & (losses < 0.1 * demand)).all()  # a few percent, as in AC
        supply = info["gen_mw"] + info["storage_mw"] + info["slack_mw"]
        np.testing.assert_allclose(
            supply, info["served_mw"] + info["shunt_mw"] + info["losses_mw"], atol=0.05
        )
        # the slack unit covers the losses and is paid for it on its own cost curve
        assert (np.asarray(info["slack_cost"]) > 0.0).all()
        parts = ("gen_cost", "shed_cost", "curtailment_cost", "slack_cost", "ufls_cost")
        np.testing.assert_allclose(info["cost"], sum(info[k] for k in parts), rtol=1e-5)
        vm = np.asarray(state.vm)[np.asarray(state.energised)]  # dead buses read 0
        assert vm.std() > 1e-3 and (vm > 0.9).all() and (vm < 1.1).all()


def test_ac_reset_observes_solved_voltages_and_ac_loading(ac_env):
    from envs.powerflow.acpf import ac_power_flow
    from envs.powerflow.network_flow import reactive_demand

    _, params, reset = ac_env
    keys = jnp.stack([jax.random.PRNGKey(3)] * BATCH)  # the batched reset's compile, one key
    _, batch = reset(keys, params)
    state = jax.tree.map(lambda leaf: leaf[0], batch)
    grid = params.grid
    p_bus = grid.gen_to_bus @ state.pg - state.demand
    q_bus = -reactive_demand(grid, state.demand)
    reference = ac_power_flow(grid, p_bus, q_bus, grid.bus_vm_set, np.ones(grid.n_branch, bool))
    assert bool(reference.converged)
    np.testing.assert_allclose(state.vm, reference.vm, atol=1e-5)
    assert np.asarray(state.vm).std() > 1e-3  # not the flat 1.0 p.u. of a DC start
    s_from = np.hypot(reference.p_from_mw, reference.q_from_mvar)
    s_to = np.hypot(reference.p_to_mw, reference.q_to_mvar)
    np.testing.assert_allclose(np.abs(state.flow), np.maximum(s_from, s_to), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("first_iterations", [1, network_flow.FIRST_NEWTON_ITERATIONS])
def test_ac_network_flow_is_the_full_budget_solve_whatever_the_first_pass_leaves(
    monkeypatch, first_iterations
):
    """Grids the first Newton pass leaves unconverged are solved again with the full budget;
    the batch's result is what one full-budget solve gives every grid."""
    monkeypatch.setattr(network_flow, "FIRST_NEWTON_ITERATIONS", first_iterations)
    grid = build_grid(load_case("ieee14"))
    rng = np.random.default_rng(0)
    batch = 16
    scale = rng.uniform(0.3, 1.8, (batch, 1))  # light to heavily loaded (more iterations)
    pg = np.zeros(grid.n_bus)
    np.add.at(pg, np.asarray(grid.gen_bus), np.asarray(grid.gen_pg0))
    p_bus = jnp.asarray((pg - np.asarray(grid.bus_pd)) * scale, jnp.float32)
    q_bus = jnp.asarray(-np.asarray(grid.bus_qd) * scale, jnp.float32)
    in_service = np.ones((batch, grid.n_branch), bool)
    in_service[1::3, rng.choice(grid.n_branch, 2, replace=False)] = False
    in_service = jnp.asarray(in_service)
    first = ac_power_flow(
        grid, p_bus, q_bus, grid.bus_vm_set, in_service, max_iter=first_iterations
    )
    if first_iterations == 1:
        assert not np.asarray(first.converged).all()  # the re-solve path is exercised
    ours = jax.jit(jax.vmap(lambda p, q, s: network_flow.ac_network_flow(grid, p, q, s)))(
        p_bus, q_bus, in_service
    )
    budget = network_flow.MAX_NEWTON_ITERATIONS
    full = ac_power_flow(grid, p_bus, q_bus, grid.bus_vm_set, in_service, max_iter=budget)
    converged = np.asarray(full.converged)
    np.testing.assert_array_equal(np.asarray(ours.converged), converged)
    np.testing.assert_allclose(
        np.asarray(ours.vm)[converged], np.asarray(full.vm)[converged], atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(ours.theta)[converged], np.asarray(full.va)[converged], atol=1e-5
    )


def test_ac_params_keep_the_slacks_island_and_refuse_the_largest_load_rule(ac_env):
    """The AC solve references every island to the slack: AC params keep the slack's island,
    and params built with "largest_load" around the config's check fail in one line."""
    _, params, _ = ac_env
    online = jnp.ones(params.grid.n_gen, bool)
    assert islands.island_choice(params, params.grid.bus_pd, online) is None
    largest = params.replace(consts=dataclasses.replace(params.consts, island_rule="largest_load"))
    with pytest.raises(ValueError, match=r"needs env\.physics='dc'"):
        islands.island_choice(largest, params.grid.bus_pd, online)
