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
``reset()`` (SB3's vector envs and Gymnasium's wrappers do this).
"""

from typing import ClassVar

import numpy as np

from envs.interop.core import GridRunner, require

require("gymnasium")

import gymnasium as gym  # noqa: E402
from gymnasium import spaces  # noqa: E402

OBSERVATIONS = ("global", "agents")
REWARDS = ("mean", "sum")


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
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation={observation!r} is not one of {OBSERVATIONS}")
        if reward not in REWARDS:
            raise ValueError(f"reward={reward!r} is not one of {REWARDS}")
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is not supported (use envs.render)")
        self.render_mode = None
        self._runner = GridRunner(grid_env, params)
        self._observation_mode, self._reward_mode = observation, reward
        spec, live = self._runner.spec, self._runner.live_agents
        sizes = [dims.size for dims in self._runner.action_dims]
        bounds = np.cumsum([0, *sizes])
        self.agent_names = tuple(self._runner.names)
        self.action_slices = {
            name: slice(int(lo), int(hi))
            for name, lo, hi in zip(self.agent_names, bounds[:-1], bounds[1:], strict=True)
        }
        obs_dim = spec.global_dim if observation == "global" else live.size * spec.obs_dim
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(int(bounds[-1]),), dtype=np.float32)

    @classmethod
    def from_config(cls, env_config, **kwargs) -> "GridGymEnv":
        """Build from an ``env`` sub-config (``envs.config.default_env_config()``)."""
        from envs.env import make_env

        return cls(*make_env(env_config), **kwargs)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs = self._runner.reset(int(self.np_random.integers(2**31 - 1)))
        return self._flat_obs(obs), {}

    def step(self, action):
        flat = np.asarray(action, np.float32).reshape(-1)
        if flat.shape != self.action_space.shape:
            raise ValueError(
                f"action needs {self.action_space.shape[0]} values, got shape {np.shape(action)}"
            )
        parts = [flat[s] for s in self.action_slices.values()]
        result = self._runner.step(self._runner.scatter(parts))
        rewards = result.reward[self._runner.live_agents]
        reward = rewards.mean() if self._reward_mode == "mean" else rewards.sum()
        obs = self._flat_obs(result.obs)
        return obs, float(reward), result.terminated, result.truncated, dict(result.info)

    def _flat_obs(self, obs) -> np.ndarray:
        if self._observation_mode == "global":
            return obs.global_state
        return obs.agent_obs[self._runner.live_agents].reshape(-1)

    def render(self):
        return None
