"""``gridpod/Grid-v0`` through Gymnasium: registration, the batched vector env, NaN actions.

Every env here is made with the same keywords, so they share one built env and each
compiled call (``envs.interop.registration.built_env``): the module compiles the single
env's reset/step once and the vector env's once.
"""

import warnings

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402
from gymnasium.vector import AutoresetMode  # noqa: E402

import envs.interop.core as interop_core  # noqa: E402
import envs.interop.vector as interop_vector  # noqa: E402
from envs.interop import GridGymEnv, GridVectorEnv  # noqa: E402
from envs.interop.core import NonFiniteActionError  # noqa: E402
from envs.interop.registration import ENV_ID, UnknownEnvKeywordError  # noqa: E402

HORIZON = 4
NUM_ENVS = 3
KEYWORDS = dict(case="ieee14", horizon=HORIZON, scenario="normal")


def _time_feature(obs):
    """Last global feature is t / horizon (envs.sim.layouts feature vector)."""
    return obs[..., -1]


@pytest.fixture(scope="module")
def vector_env():
    return gymnasium.make_vec(ENV_ID, num_envs=NUM_ENVS, **KEYWORDS)


def _actions(seed, steps, size):
    return np.random.default_rng(seed).uniform(-1, 1, (steps, NUM_ENVS, size)).astype(np.float32)


def test_make_and_make_vec_give_gridpod_envs_with_matching_spaces(vector_env):
    single = gymnasium.make(ENV_ID, **KEYWORDS)
    assert isinstance(single.unwrapped, GridGymEnv)
    assert isinstance(vector_env, GridVectorEnv)
    assert vector_env.num_envs == NUM_ENVS
    assert vector_env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert vector_env.single_observation_space == single.observation_space
    assert vector_env.single_action_space == single.action_space
    assert vector_env.action_space.shape == (NUM_ENVS, *single.action_space.shape)
    # Gymnasium's "module:id" form imports the registering module itself.
    assert gymnasium.make(f"envs.interop:{ENV_ID}", **KEYWORDS).spec.id == ENV_ID


def test_registered_env_passes_gymnasium_check_env():
    env = gymnasium.make(ENV_ID, **KEYWORDS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    # Unbounded observation Box is a documented choice; anything else is a finding.
    assert [str(w.message) for w in caught if "infinity" not in str(w.message)] == []


def test_keywords_are_env_config_fields_and_bad_ones_fail_clearly():
    env = gymnasium.make(ENV_ID, observation="agents", team_reward="sum", **KEYWORDS)
    assert env.unwrapped._runner.params.consts.horizon == HORIZON
    with pytest.raises(UnknownEnvKeywordError, match="'horizn'"):
        gymnasium.make(ENV_ID, horizn=5)
    with pytest.raises(ValueError, match="horizon='5' has the wrong type: expected int"):
        gymnasium.make(ENV_ID, horizon="5")
    with pytest.raises(ValueError, match="ieee9"):
        gymnasium.make(ENV_ID, case="ieee9")
    with pytest.raises(ValueError, match="num_envs"):
        gymnasium.make_vec(ENV_ID, num_envs=0, **KEYWORDS)


def test_vector_shapes_and_determinism_under_a_seed(vector_env):
    actions = _actions(0, 2, vector_env.single_action_space.shape[0])

    def run(seed):
        obs, info = vector_env.reset(seed=seed)
        assert info == {} and obs.shape == vector_env.observation_space.shape
        assert obs.dtype == np.float32
        out = [obs]
        for action in actions:
            obs, reward, terminated, truncated, info = vector_env.step(action)
            assert reward.shape == terminated.shape == truncated.shape == (NUM_ENVS,)
            assert info["cost"].shape == (NUM_ENVS,) and info["_cost"].all()
            out += [obs, reward]
        return out

    first, again, other = run(5), run(5), run(6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    # Sub-envs of one reset draw different episodes.
    assert not np.array_equal(first[0][0], first[0][1])


def test_sub_env_follows_the_single_env_with_the_same_seed_and_actions(vector_env):
    single = gymnasium.make(ENV_ID, **KEYWORDS).unwrapped
    actions = _actions(1, HORIZON, vector_env.single_action_space.shape[0])
    index = 1
    vector_obs, _ = vector_env.reset(seed=20)
    single_obs, _ = single.reset(seed=20 + index)
    np.testing.assert_allclose(vector_obs[index], single_obs, rtol=1e-5, atol=1e-5)
    for action in actions:
        vector_obs, reward, _, truncated, info = vector_env.step(action)
        single_obs, single_reward, _, single_truncated, _ = single.step(action[index])
        assert truncated[index] == single_truncated
        assert reward[index] == pytest.approx(single_reward, rel=1e-5, abs=1e-5)
    # The single env stops at the episode's end; the vector env keeps its final observation.
    np.testing.assert_allclose(info["final_obs"][index], single_obs, rtol=1e-5, atol=1e-5)


def test_same_step_autoreset_keeps_the_final_observation(vector_env):
    vector_env.reset(seed=3)
    zeros = np.zeros(vector_env.action_space.shape, np.float32)
    for step in range(1, HORIZON + 1):
        obs, _, terminated, truncated, info = vector_env.step(zeros)
        if step < HORIZON:
            assert not truncated.any() and "final_obs" not in info
    assert truncated.all() and not terminated.any()
    assert info["_final_obs"].all()
    final = np.stack(info["final_obs"])
    np.testing.assert_allclose(_time_feature(final), 1.0)  # t = horizon: the ended episode
    np.testing.assert_array_equal(_time_feature(obs), 0.0)  # the next episode's start
    obs, _, _, truncated, _ = vector_env.step(zeros)  # steps on without a reset
    assert not truncated.any()
    np.testing.assert_allclose(_time_feature(obs), 1.0 / HORIZON)


def test_stepping_is_one_compiled_call_with_no_per_grid_objects(vector_env, monkeypatch):
    calls = []
    compiled_step = interop_vector._step_batch

    def counting_step(*args):
        calls.append(args[4].shape)
        return compiled_step(*args)

    def no_runner(*args, **kwargs):
        raise AssertionError("the vector env built a per-grid runner")

    monkeypatch.setattr(interop_vector, "_step_batch", counting_step)
    monkeypatch.setattr(interop_core.GridRunner, "__init__", no_runner)
    vector_env.reset(seed=0)
    for _ in range(2):
        vector_env.step(np.zeros(vector_env.action_space.shape, np.float32))
    assert calls == [vector_env.action_space.shape] * 2


def test_vector_env_rejects_non_finite_and_misshaped_actions_before_stepping(vector_env):
    vector_env.reset(seed=0)
    keys_before = np.asarray(vector_env._keys)
    actions = np.zeros(vector_env.action_space.shape, np.float32)
    actions[1, 2] = np.nan
    actions[2, 0] = -np.inf
    with pytest.raises(NonFiniteActionError, match=r"inf, nan\) at index \[\(1, 2\), \(2, 0\)\]"):
        vector_env.step(actions)
    np.testing.assert_array_equal(np.asarray(vector_env._keys), keys_before)
    with pytest.raises(ValueError, match="actions need shape"):
        vector_env.step(actions[:, :-1])
    with pytest.raises(ValueError, match="one entry per sub-env"):
        vector_env.reset(seed=[1, 2])
