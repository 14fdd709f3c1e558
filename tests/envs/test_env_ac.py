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
