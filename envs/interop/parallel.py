"""PettingZoo ``ParallelEnv`` over one gridpod grid.

    env = GridParallelEnv.from_config(config.env)        # or GridParallelEnv(grid_env, params)
    obs, infos = env.reset(seed=0)
    obs, rewards, terminations, truncations, infos = env.step({a: space.sample() ...})

Spaces: observation ``Box(-inf, inf, (O,), float32)`` per agent (features are normalised but
not bounded: a line's loading can exceed any fixed number); action ``Box(-1, 1, (n,),
float32)`` with ``n`` the agent's real (unmasked) action dimensions; the same spaces are in
the ``observation_spaces`` / ``action_spaces`` dicts (SuperSuit and RLlib read those).
``state()`` is the global state (for centralised critics), ``state_space`` its Box. Every
agent's ``infos`` entry holds the env's per-step scalars (cost, max_loading,
served_fraction, ...). When the episode ends every agent is terminated or truncated
together, ``agents`` becomes empty and ``reset()`` starts the next episode.
An agent's action with NaN or inf entries raises ``NonFiniteActionError`` (a ``ValueError``
naming the agent) before the grid is stepped.
"""

from typing import ClassVar

import numpy as np

from envs.interop.core import GridRunner, require

require("pettingzoo")
require("gymnasium")

from gymnasium import spaces  # noqa: E402
from pettingzoo import ParallelEnv  # noqa: E402


class GridParallelEnv(ParallelEnv):
    metadata: ClassVar[dict] = {
        "name": "gridpod_grid_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(self, grid_env, params, render_mode: str | None = None):
        if render_mode is not None:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported (use envs.render.figures)"
            )
        self.render_mode = None
        self._runner = GridRunner(grid_env, params)
        spec = self._runner.spec
        self.possible_agents = list(self._runner.names)
        self.agents: list[str] = []
        obs_box = dict(low=-np.inf, high=np.inf, shape=(spec.obs_dim,), dtype=np.float32)
        self.observation_spaces = {a: spaces.Box(**obs_box) for a in self.possible_agents}
        self.action_spaces = {
            a: spaces.Box(-1.0, 1.0, shape=(dims.size,), dtype=np.float32)
            for a, dims in zip(self.possible_agents, self._runner.action_dims, strict=True)
        }
        self.state_space = spaces.Box(-np.inf, np.inf, shape=(spec.global_dim,), dtype=np.float32)
        self._rng = np.random.default_rng()
        self._global_state = np.zeros(spec.global_dim, np.float32)

    @classmethod
    def from_config(cls, env_config, **kwargs) -> "GridParallelEnv":
        """Build from an ``env`` sub-config (``envs.config.default_env_config()``)."""
        from envs.env import make_env

        return cls(*make_env(env_config), **kwargs)

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self.action_spaces[agent]

    def state(self) -> np.ndarray:
        return self._global_state.copy()

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        obs = self._runner.reset(int(self._rng.integers(2**31 - 1)))
        self.agents = list(self.possible_agents)
        self._global_state = obs.global_state
        return self._per_agent_obs(obs), {a: {} for a in self.agents}

    def step(self, actions: dict):
        if not self.agents:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"actions missing for agents {missing}")
        result = self._runner.step(self._runner.scatter([actions[a] for a in self.agents]))
        self._global_state = result.obs.global_state
        obs = self._per_agent_obs(result.obs)
        live = self._runner.live_agents
        rewards = {a: float(result.reward[i]) for a, i in zip(self.agents, live, strict=True)}
        terminations = dict.fromkeys(self.agents, result.terminated)
        truncations = dict.fromkeys(self.agents, result.truncated)
        infos = {a: dict(result.info) for a in self.agents}
        if result.terminated or result.truncated:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def _per_agent_obs(self, obs) -> dict[str, np.ndarray]:
        return {
            a: obs.agent_obs[i].copy()
            for a, i in zip(self.possible_agents, self._runner.live_agents, strict=True)
        }

    def render(self):
        return None

    def close(self):
        pass
