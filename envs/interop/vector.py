"""Gymnasium ``VectorEnv`` over B gridpod grids, stepped by one compiled, vmapped call.

    envs = GridVectorEnv.from_config(config.env, num_envs=64)   # or gymnasium.make_vec(...)
    obs, info = envs.reset(seed=0)                                # obs [B, D] float32
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())

Each sub-environment is the single-agent team view of ``GridGymEnv`` (same spaces, same
``observation`` and ``reward`` choices); the B grids live on the device as one batched
state and every ``step`` is one jitted ``vmap`` of the pure env plus one device-to-host copy
of the results, whatever B is.

* Auto-reset: ``AutoresetMode.SAME_STEP``, as the pure env does it. A sub-env that ends
  its episode in a step returns the first observation of its next episode;
  ``info["final_obs"]`` (an object array, ``None`` elsewhere) holds the observation the
  episode ended with, ``info["_final_obs"]`` marks which sub-envs ended.
* ``info``: the env's per-step scalars as ``[B]`` arrays (``cost``, ``max_loading``, ...),
  each with its ``_<key>`` mask (all True), as Gymnasium's vector envs pair them.
* Seeding: ``reset(seed=s)`` gives sub-env ``i`` the episode ``GridGymEnv.reset(seed=s +
  i)`` would give (a list of B seeds sets each one); with the same actions the trajectories
  are the same until that episode ends.
* Actions: ``[B, D]`` in [-1, 1] (clipped); NaN or inf raises ``NonFiniteActionError`` (a
  ``ValueError``) before anything is stepped.
"""

import functools
from typing import ClassVar

import jax
import numpy as np

from envs.interop.core import TeamLayout, require, require_finite_actions

require("gymnasium")

from gymnasium import spaces  # noqa: E402
from gymnasium.utils import seeding  # noqa: E402
from gymnasium.vector import AutoresetMode, VectorEnv  # noqa: E402
from gymnasium.vector.utils import batch_space  # noqa: E402

SEED_BOUND = 2**31 - 1  # runner seeds as GridGymEnv draws them


def _split_each(keys):
    """[B, 2] keys -> (carried [B, 2], used now [B, 2]), as ``GridRunner`` splits its key."""
    pairs = jax.vmap(jax.random.split)(keys)
    return pairs[:, 0], pairs[:, 1]


# Compiled once per (env object, layout, batch size) and shared by every vector env on them.
@functools.partial(jax.jit, static_argnums=(0, 1))
def _reset_batch(env, layout: TeamLayout, seeds, params):
    keys, reset_keys = _split_each(jax.vmap(jax.random.PRNGKey)(seeds))
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
    return keys, state, layout.flat_obs(obs)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _step_batch(env, layout: TeamLayout, keys, state, flat_action, params):
    keys, step_keys = _split_each(keys)
    action = layout.padded_action(flat_action.clip(-1.0, 1.0))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    obs, state, reward, terminated, truncated, info = step(step_keys, state, action, params)
    info = dict(info)
    final_obs = layout.flat_obs(info.pop("final_obs"))
    host = (layout.flat_obs(obs), layout.team_reward(reward), terminated, truncated, final_obs)
    return keys, state, host, info


class GridVectorEnv(VectorEnv):
    metadata: ClassVar[dict] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        grid_env,
        params,
        num_envs: int,
        observation: str = "global",
        reward: str = "mean",
        render_mode: str | None = None,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer):
            raise ValueError(f"num_envs must be an int, got {num_envs!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if render_mode is not None:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported (use envs.render.figures)"
            )
        self.render_mode = None
        self.num_envs = int(num_envs)
        self._env, self._params = grid_env, params
        self._layout = layout = TeamLayout(grid_env.spec(params), observation, reward)
        self.agent_names = layout.names
        self.action_slices = dict(layout.action_slices)
        self.single_observation_space = spaces.Box(
            -np.inf, np.inf, shape=(layout.obs_size,), dtype=np.float32
        )
        self.single_action_space = spaces.Box(
            -1.0, 1.0, shape=(layout.action_size,), dtype=np.float32
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._keys = self._state = None

    @classmethod
    def from_config(cls, env_config, num_envs: int, **kwargs) -> "GridVectorEnv":
        """Build from an ``env`` sub-config (``envs.config.default_env_config()``)."""
        from envs.env import make_env

        return cls(*make_env(env_config), num_envs=num_envs, **kwargs)

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        seeds = self._runner_seeds(seed)
        self._keys, self._state, obs = _reset_batch(self._env, self._layout, seeds, self._params)
        return np.array(obs, np.float32), {}

    def step(self, actions):
        expected = (self.num_envs, self._layout.action_size)
        if np.shape(actions) != expected:
            raise ValueError(f"actions need shape {expected}, got {np.shape(actions)}")
        flat = require_finite_actions(actions, "actions")
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        self._keys, self._state, host, info = _step_batch(
            self._env, self._layout, self._keys, self._state, flat.astype(np.float32), self._params
        )
        (obs, reward, terminated, truncated, final_obs), info = jax.device_get((host, info))
        terminated, truncated = np.array(terminated, bool), np.array(truncated, bool)
        infos: dict = {}
        for key, value in info.items():
            infos[key] = np.array(value)
            infos[f"_{key}"] = np.ones(self.num_envs, bool)
        ended = terminated | truncated
        if ended.any():
            infos["final_obs"] = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(ended):
                infos["final_obs"][i] = np.array(final_obs[i], np.float32)
            infos["_final_obs"] = ended
        obs = np.array(obs, np.float32)
        return obs, np.array(reward, np.float64), terminated, truncated, infos

    def _runner_seeds(self, seed) -> np.ndarray:
        """One int32 seed per sub-env: from ``seed + i`` as ``GridGymEnv.reset`` draws it,
        from a list of seeds, or (``None``) from this env's generator."""
        if seed is None or isinstance(seed, int | np.integer):
            if seed is not None:
                self._np_random, self._np_random_seed = seeding.np_random(int(seed))
                seed = [int(seed) + i for i in range(self.num_envs)]
            else:
                seed = [None] * self.num_envs
        if len(seed) != self.num_envs:
            raise ValueError(f"seed needs one entry per sub-env ({self.num_envs}), got {len(seed)}")
        drawn = [
            (self.np_random if s is None else seeding.np_random(int(s))[0]).integers(SEED_BOUND)
            for s in seed
        ]
        return np.asarray(drawn, np.int32)

    def render(self):
        return None

    def close_extras(self, **kwargs):
        self._keys = self._state = None
