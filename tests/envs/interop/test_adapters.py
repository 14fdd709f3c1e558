"""PettingZoo and Gymnasium adapters: the libraries' own API checkers, episode ends, seeding.

One ieee14 env with a short horizon (episodes end inside the checks) is built for the module;
the adapters share its compiled reset/step, so the module compiles once.
"""

import importlib
import sys
import warnings

import jax
import numpy as np
import pytest

pytest.importorskip("pettingzoo")
pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from envs.config import default_env_config
from envs.env import make_env
from envs.interop import GridGymEnv, GridParallelEnv
from envs.interop.core import NonFiniteActionError

# The vector-env module's horizon and keywords: the single env's compiled reset and step are
# then the same programs there and here, loaded from the test run's compilation cache.
HORIZON = 4


@pytest.fixture(scope="module")
def grid():
    config = default_env_config()
    config.case = "ieee14"
    config.horizon = HORIZON
    config.scenario = "normal"
    env, params = make_env(config)
    return env, params, env.spec(params)


def _time_feature(global_state):
    """Last global feature is t / horizon (envs.sim.layouts feature vector)."""
    return float(global_state[-1])


def test_parallel_env_passes_pettingzoo_api_test(grid):
    env, params, _ = grid
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports soft problems as warnings
        parallel_api_test(GridParallelEnv(env, params), num_cycles=3 * HORIZON)


def test_gym_env_passes_gymnasium_check_env(grid):
    env, params, _ = grid
    for observation in ("global", "agents"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(GridGymEnv(env, params, observation=observation), skip_render_check=True)
        # Unbounded observation Box is a documented choice; anything else is a finding.
        other = [str(w.message) for w in caught if "infinity" not in str(w.message)]
        assert other == []


def test_parallel_env_names_spaces_and_state(grid):
    env, params, spec = grid
    pz = GridParallelEnv(env, params)
    assert len(pz.possible_agents) == int(spec.agent_mask.sum())
    assert len(set(pz.possible_agents)) == len(pz.possible_agents)
    for name in pz.possible_agents:
        type_name, index = name.rsplit("_", 1)
        assert type_name in spec.agent_type_names and index.isdigit()
    dims = [pz.action_space(a).shape[0] for a in pz.possible_agents]
    assert dims == list(spec.action_mask[spec.agent_mask].sum(axis=1))
    obs, _ = pz.reset(seed=3)
    assert pz.state().shape == pz.state_space.shape == (spec.global_dim,)
    assert all(obs[a] in pz.observation_space(a) for a in pz.agents)


def test_parallel_episode_end_returns_final_obs_and_requires_reset(grid):
    env, params, _ = grid
    pz = GridParallelEnv(env, params)
    obs, _ = pz.reset(seed=1)
    assert _time_feature(pz.state()) == 0.0
    for _ in range(HORIZON):
        actions = {a: np.zeros(pz.action_space(a).shape, np.float32) for a in pz.agents}
        obs, rewards, terms, truncs, infos = pz.step(actions)
        assert set(rewards) == set(terms) == set(truncs) == set(infos) == set(obs)
        assert all(np.isfinite(r) for r in rewards.values())
        assert "cost" in infos[pz.possible_agents[0]]
        if any(terms.values()):
            pytest.fail("a calm normal-scenario episode should not end in a blackout")
    assert all(truncs.values()) and pz.agents == []
    # The observation the episode ended with (t = horizon), not the auto-reset one (t = 0).
    assert _time_feature(pz.state()) == pytest.approx(1.0)
    with pytest.raises(RuntimeError, match="reset"):
        pz.step(actions)
    pz.reset()
    assert _time_feature(pz.state()) == 0.0 and len(pz.agents) == len(pz.possible_agents)


def test_parallel_step_rejects_missing_and_misshaped_actions(grid):
    env, params, _ = grid
    pz = GridParallelEnv(env, params)
    pz.reset(seed=0)
    actions = {a: pz.action_space(a).sample() for a in pz.agents}
    first = pz.agents[0]
    with pytest.raises(ValueError, match="missing"):
        pz.step({a: v for a, v in actions.items() if a != first})
    with pytest.raises(ValueError, match=first):
        pz.step({**actions, first: np.zeros(actions[first].size + 1, np.float32)})


def test_gym_seeding_is_deterministic_and_actions_matter(grid):
    env, params, _ = grid
    gym_env = GridGymEnv(env, params)

    def rollout(seed, action_value):
        obs, _ = gym_env.reset(seed=seed)
        action = np.full(gym_env.action_space.shape, action_value, np.float32)
        states = [obs]
        for _ in range(3):
            states.append(gym_env.step(action)[0])
        return np.stack(states)

    np.testing.assert_array_equal(rollout(11, 0.0), rollout(11, 0.0))
    assert not np.array_equal(rollout(11, 0.0)[0], rollout(12, 0.0)[0])
    assert not np.allclose(rollout(11, -1.0)[1:], rollout(11, 1.0)[1:])


def test_gym_episode_end_and_action_layout(grid):
    env, params, spec = grid
    gym_env = GridGymEnv(env, params, reward="sum")
    assert gym_env.action_space.shape == (int(spec.action_mask[spec.agent_mask].sum()),)
    flat = np.linspace(-0.9, 0.9, gym_env.action_space.shape[0]).astype(np.float32)
    parts = [flat[s] for s in gym_env.action_slices.values()]
    full = gym_env._runner.scatter(parts)
    np.testing.assert_array_equal(full[spec.action_mask], flat)
    assert not full[~spec.action_mask].any()
    gym_env.reset(seed=5)
    for _ in range(HORIZON):
        obs, reward, terminated, truncated, _ = gym_env.step(flat)
        assert isinstance(reward, float) and np.isfinite(reward)
    assert truncated and not terminated
    assert _time_feature(obs) == pytest.approx(1.0)
    with pytest.raises(RuntimeError, match="reset"):
        gym_env.step(flat)
    gym_env.reset(seed=5)
    with pytest.raises(ValueError, match="action needs"):
        gym_env.step(flat[:-1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_gym_env_rejects_non_finite_actions_before_stepping(grid, bad):
    env, params, _ = grid
    gym_env = GridGymEnv(env, params)
    gym_env.reset(seed=2)
    action = np.zeros(gym_env.action_space.shape, np.float32)
    action[3] = bad
    with pytest.raises(
        NonFiniteActionError, match=r"action has non-finite values .* index \[\(3,\)\]"
    ):
        gym_env.step(action)
    obs = gym_env.step(np.zeros_like(action))[0]  # the rejected call did not advance the grid
    assert _time_feature(obs) == pytest.approx(1.0 / HORIZON)


def test_parallel_env_rejects_non_finite_actions_naming_the_agent(grid):
    env, params, _ = grid
    pz = GridParallelEnv(env, params)
    pz.reset(seed=0)
    actions = {a: np.zeros(pz.action_space(a).shape, np.float32) for a in pz.agents}
    second = pz.agents[1]
    actions[second][0] = np.nan
    with pytest.raises(
        NonFiniteActionError, match=f"agent {second} has non-finite values \\(nan\\)"
    ):
        pz.step(actions)
    assert _time_feature(pz.state()) == 0.0


def test_gym_baseline_action_is_a_flat_action_of_the_named_operator(grid):
    env, params, _ = grid
    gym_env = GridGymEnv(env, params)
    gym_env.reset(seed=4)
    hold = gym_env.baseline_action("do_nothing")
    assert hold.shape == gym_env.action_space.shape and hold in gym_env.action_space
    # Holding the current dispatch is not the mid-range set-point an all-zero action asks for.
    assert np.abs(hold).max() > 0
    with pytest.raises(ValueError, match="not one of"):
        gym_env.baseline_action("oracle")


def test_bad_constructor_arguments_are_rejected(grid):
    env, params, _ = grid
    with pytest.raises(ValueError, match="observation"):
        GridGymEnv(env, params, observation="pixels")
    with pytest.raises(ValueError, match="reward"):
        GridGymEnv(env, params, reward="max")
    with pytest.raises(ValueError, match="render_mode"):
        GridParallelEnv(env, params, render_mode="human")


def test_missing_library_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    monkeypatch.delitem(sys.modules, "envs.interop.single")
    with pytest.raises(ImportError, match=r"gridpod\[interop\]"):
        importlib.import_module("envs.interop.single")


def test_gym_env_clears_bids_into_the_dispatch_of_the_myopic_opf():
    """``action_interface="bids"`` through ``gymnasium.make``: the env receives the bids and
    applies the dispatch the single-step OPF clears from them, as a setpoint env would apply
    that dispatch given directly."""
    import gymnasium

    import envs.interop  # noqa: F401  (registers gridpod/Grid-v0)

    fields = dict(case="ieee14", horizon=HORIZON, scenario="normal")
    market = gymnasium.make("gridpod/Grid-v0", action_interface="bids", bid_scale=20.0, **fields)
    direct = gymnasium.make("gridpod/Grid-v0", **fields)
    market.reset(seed=4)
    direct.reset(seed=4)
    runner = market.unwrapped._runner
    bids = np.zeros(market.action_space.shape, np.float32)
    bids[0] = 0.5  # one unit offers 10 $/MWh dearer
    padded = runner.scatter([bids[s] for s in market.unwrapped.action_slices.values()])
    cleared = jax.jit(runner.env.setpoints)(padded, runner._state, runner.params)
    assert np.max(np.abs(np.asarray(cleared) - padded)) > 0.1  # clearing changes the action
    _, _, _, _, got = market.step(bids)
    _, _, _, _, want = direct.step(direct.unwrapped._layout.flat_action(np.asarray(cleared)))
    for name in ("cost", "gen_mw", "storage_mw", "shed_mwh", "max_loading"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-4, err_msg=name)
