"""A NaN or infinite action never reaches the state: its controls hold, and info counts it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.sim import dispatch as dsp


def _env(layout):
    """(jitted step, params, a reset state)."""
    config = default_env_config()
    config.layout = layout
    env, params = make_env(config)
    _, state = jax.jit(env.reset)(jax.random.PRNGKey(0), params)
    return jax.jit(env.step), params, state


@pytest.fixture(scope="module")
def stepped():
    """One compiled step (the hierarchical layout: group channels feed devices too)."""
    return _env("hierarchical")


@pytest.fixture(scope="module", params=["per_node", "hierarchical"])
def env_and_state(request):
    """(jitted step, params, a reset state) per layout."""
    return _env(request.param)


def _finite(tree) -> bool:
    leaves = jax.tree_util.tree_leaves(tree)
    return all(
        bool(jnp.all(jnp.isfinite(x))) for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_an_all_bad_action_keeps_state_obs_reward_and_info_finite(stepped, bad):
    step, params, state = stepped
    mask = params.layout.action_mask
    action = jnp.where(mask, jnp.float32(bad), jnp.float32(0.0))
    obs, next_state, reward, _, _, info = step(jax.random.PRNGKey(1), state, action, params)
    assert _finite((obs, next_state, reward, info))
    assert int(info["nonfinite_actions"]) == int(np.sum(mask))
    # Batteries idle: their energy moves only by what the step's balance needs (nothing here).
    np.testing.assert_allclose(next_state.soc, state.soc, atol=1e-3)


def test_a_finite_action_counts_zero(stepped):
    step, params, state = stepped
    action = jnp.zeros(params.layout.action_mask.shape, jnp.float32)
    *_, info = step(jax.random.PRNGKey(1), state, action, params)
    assert int(info["nonfinite_actions"]) == 0


def test_only_the_controls_a_bad_entry_feeds_are_held(env_and_state):
    _, params, state = env_and_state
    layout, grid = params.layout, params.grid
    n_storage = params.devices.storage_bus.shape[0]
    rng = np.random.default_rng(0)
    action = jnp.asarray(rng.uniform(-1, 1, layout.action_mask.shape), jnp.float32)
    agent, unit = np.argwhere(np.asarray(layout.action_mask))[0]
    poisoned = action.at[agent, unit].set(jnp.nan)
    hold = dsp.holding_controls(state, params.devices, params.consts.gen_action, grid.n_bus)
    args = (layout, grid.n_gen, n_storage, grid.n_bus)
    clean = dsp.decode_controls(action, *args)
    safe, count = dsp.decode_finite_controls(poisoned, *args, hold)
    assert int(count) == 1
    # Which slots the entry feeds: decode an indicator of it.
    indicator = jnp.zeros_like(action).at[agent, unit].set(1.0)
    fed = dsp.decode_controls(indicator, *args)
    held_any = False
    for name in ("gen", "storage", "shed", "signals"):
        touched = np.asarray(getattr(fed, name)) != 0
        np.testing.assert_allclose(
            np.asarray(getattr(safe, name))[~touched], np.asarray(getattr(clean, name))[~touched]
        )
        np.testing.assert_allclose(
            np.asarray(getattr(safe, name))[touched], np.asarray(getattr(hold, name))[touched]
        )
        held_any |= bool(touched.any())
    assert held_any


def test_holding_controls_keep_a_conventional_unit_at_its_output(env_and_state):
    _, params, state = env_and_state
    devices = params.devices
    hold = dsp.holding_controls(state, devices, "setpoint", params.grid.n_bus)
    target = dsp.conventional_target(hold.gen, state.pg, devices, "setpoint")
    conventional = ~np.asarray(devices.is_renewable) & (np.asarray(devices.pmax) > 0)
    np.testing.assert_allclose(
        np.asarray(target)[conventional], np.asarray(state.pg)[conventional], atol=1e-3
    )
