"""Gymnasium ``Env`` over one gridpod grid: the whole team as one single-agent problem.

    env = GridGymEnv.from_config(config.env)             # or GridGymEnv(grid_env, params)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

* action: ``Box(-1, 1, (D,), float32)``, the real (unmasked) action dimensions of every live
  agent concatenated in agent order (``agent_names`` says the order, ``action_slices`` where
  each agent's part is); values outside [-1, 1] are clipped, as the env's actions are bounded;
* observation: ``observation="global"`` (default) the env's global state ``[S]``;
  ``observation="agents"`` the live agents' observations concatenated ``[A * O]``; unbounded
  Box (normalised features, not capped);
* reward: the mean (``reward="mean"``) or sum (``reward="sum"``) of the live agents' rewards;
* ``info``: the env's per-step scalars (cost, max_loading, served_fraction, ...).

The step that ends an episode returns the observation it ended with; the next call must be
``reset()`` (SB3's vector envs and Gymnasium's wrappers do this). An action with NaN or inf
entries raises ``NonFiniteActionError`` (a ``ValueError``) before the grid is stepped.
``baseline_action("do_nothing")`` is the flat action an ``envs.opf.baselines`` operator would
take in the current state (a reference to compare a policy with, or to start one from).
Registered as ``gridpod/Grid-v0`` (``envs.interop.registration``).
"""

from typing import ClassVar

import numpy as np

from envs.interop.core import GridRunner, TeamLayout, require, require_finite_actions

require("gymnasium")

import gymnasium as gym  # noqa: E402
from gymnasium import spaces  # noqa: E402


class GridGymEnv(gym.Env):
    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(
        self,
        grid_env,
        params,
        observation: str = "global",
        reward: str = "mean",
        render_mode: str | None = None,
    ):
        if render_mode is not None:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported (use envs.render.figures)"
            )
        self.render_mode = None
        self._runner = GridRunner(grid_env, params)
        self._layout = TeamLayout(self._runner.spec, observation, reward)
        self.agent_names = self._layout.names
        self.action_slices = dict(self._layout.action_slices)
        obs_shape = (self._layout.obs_size,)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=obs_shape, dtype=np.float32)
        self.action_space = spaces.Box(
            -1.0, 1.0, shape=(self._layout.action_size,), dtype=np.float32
        )

    @classmethod
    def from_config(cls, env_config, **kwargs) -> "GridGymEnv":
        """Build from an ``env`` sub-config (``envs.config.default_env_config()``)."""
        from envs.env import make_env

        return cls(*make_env(env_config), **kwargs)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs = self._runner.reset(int(self.np_random.integers(2**31 - 1)))
        return self._layout.flat_obs(obs).copy(), {}

    def step(self, action):
        if np.size(action) != self.action_space.shape[0]:
            raise ValueError(
                f"action needs {self.action_space.shape[0]} values, got shape {np.shape(action)}"
            )
        flat = require_finite_actions(np.reshape(action, -1), "action")
        parts = [flat[s] for s in self.action_slices.values()]
        result = self._runner.step(self._runner.scatter(parts))
        reward = float(self._layout.team_reward(result.reward))
        obs = self._layout.flat_obs(result.obs).copy()
        return obs, reward, result.terminated, result.truncated, dict(result.info)

    def baseline_action(self, name: str = "do_nothing") -> np.ndarray:
        """The flat action ``[D]`` the ``envs.opf.baselines`` operator ``name`` takes now
        (one of ``envs.interop.core.BASELINES``)."""
        return self._layout.flat_action(self._runner.baseline_action(name))

    def render(self):
        return None
