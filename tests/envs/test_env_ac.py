"""AC physics mode: a short jitted episode on ieee14 with real voltages and losses."""

import jax
import numpy as np

from envs.config import default_env_config
from envs.env import make_env

BATCH = 2


def test_ac_episode_has_losses_real_voltages_and_balances():
    config = default_env_config()
    config.physics = "ac"
    config.scenario = "normal"
    env, params = make_env(config)
    spec = env.spec(params)
    keys = jax.random.split(jax.random.PRNGKey(0), BATCH)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
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


def test_ac_reset_observes_solved_voltages_and_ac_loading():
    from envs.acpf import ac_power_flow
    from envs.dynamics.flows import reactive_demand

    config = default_env_config()
    config.physics = "ac"
    env, params = make_env(config)
    _, state = jax.jit(env.reset)(jax.random.PRNGKey(3), params)
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
