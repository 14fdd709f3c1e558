"""Library-neutral core of the adapters: one grid, compiled reset/step, NumPy in and out.

Agents: only agents with ``spec.agent_mask`` set are exposed, named ``<type>_<k>`` where
``k`` counts agents of that type in agent order (``operational_0``, ``producer_2``, ...).
Actions: each agent's action is its unmasked dimensions only (``spec.action_mask``), in
[-1, 1]; they are scattered into the env's padded ``[A, U]`` action with zeros elsewhere.
Episodes end: when the pure env reports ``terminated`` or ``truncated`` the runner returns
``info["final_obs"]`` (the observation the episode ended with, not the auto-reset one) and
refuses further steps until ``reset``.
"""

import functools
from typing import NamedTuple

import jax
import numpy as np

from envs.types import EnvSpec

INTEROP_HINT = "install gridpod[interop] (pip install 'gridpod[interop]')"


def require(module_name: str):
    """Import an optional interop dependency or raise an ImportError that says how to get it."""
    try:
        return __import__(module_name)
    except ImportError as err:
        raise ImportError(f"{module_name} is needed for envs.interop: {INTEROP_HINT}") from err


# Compiled once per (env object, params structure) and shared by every adapter instance on it;
# ``params`` is an argument (not a closure constant) so the grid data is not baked into the code.
@functools.partial(jax.jit, static_argnums=0)
def _reset(env, key, params):
    return env.reset(key, params)


@functools.partial(jax.jit, static_argnums=0)
def _step(env, key, state, action, params):
    _, state, reward, terminated, truncated, info = env.step(key, state, action, params)
    info = dict(info)
    final_obs = info.pop("final_obs")
    return final_obs, state, reward, terminated, truncated, info


class HostObservation(NamedTuple):
    agent_obs: np.ndarray  # [A, O] float32 (all agents, padded ones included)
    global_state: np.ndarray  # [S] float32


class HostStep(NamedTuple):
    obs: HostObservation  # the observation after the step (the final one if the episode ended)
    reward: np.ndarray  # [A] float32
    terminated: bool
    truncated: bool
    info: dict  # str -> float


def agent_names(spec: EnvSpec) -> list[str]:
    """``<type>_<k>`` for every live agent, in agent order."""
    counts: dict[str, int] = {}
    names = []
    for a in np.flatnonzero(spec.agent_mask):
        type_name = spec.agent_type_names[int(spec.agent_type[a])]
        names.append(f"{type_name}_{counts.get(type_name, 0)}")
        counts[type_name] = counts.get(type_name, 0) + 1
    return names


def _to_host_obs(obs) -> HostObservation:
    # np.array copies: the caller owns what it gets (device_get may return read-only views).
    return HostObservation(
        np.array(obs.agent_obs, np.float32), np.array(obs.global_state, np.float32)
    )


class GridRunner:
    """One grid of a ``GridEnv``: seeded reset, masked-action scatter, episode-end handling."""

    def __init__(self, env, params):
        self.env, self.params = env, params
        self.spec: EnvSpec = env.spec(params)
        self.live_agents = np.flatnonzero(self.spec.agent_mask)
        self.names = agent_names(self.spec)
        self.action_dims = [np.flatnonzero(self.spec.action_mask[a]) for a in self.live_agents]
        self._state = None
        self._key = None
        self.episode_over = True

    def reset(self, seed: int) -> HostObservation:
        """Start an episode whose whole course is a function of ``seed`` (and the actions)."""
        self._key, key_reset = jax.random.split(jax.random.PRNGKey(seed))
        obs, self._state = _reset(self.env, key_reset, self.params)
        self.episode_over = False
        return _to_host_obs(jax.device_get(obs))

    def scatter(self, per_agent_actions) -> np.ndarray:
        """Live agents' unmasked action vectors (agent order) -> padded [A, U] float32."""
        full = np.zeros((self.spec.num_agents, self.spec.action_dim), np.float32)
        rows = zip(self.names, self.live_agents, self.action_dims, per_agent_actions, strict=True)
        for name, agent, dims, action in rows:
            values = np.asarray(action, np.float32).reshape(-1)
            if values.shape != dims.shape:
                raise ValueError(f"agent {name} needs {dims.size} action values, got {values.size}")
            full[agent, dims] = values
        if not np.all(np.isfinite(full)):
            raise ValueError("actions must be finite")
        return np.clip(full, -1.0, 1.0)

    def step(self, full_action: np.ndarray) -> HostStep:
        if self.episode_over:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        self._key, key_step = jax.random.split(self._key)
        out = _step(self.env, key_step, self._state, full_action, self.params)
        final_obs, self._state, reward, terminated, truncated, info = out
        final_obs, reward, terminated, truncated, info = jax.device_get(
            (final_obs, reward, terminated, truncated, info)
        )
        self.episode_over = bool(terminated) or bool(truncated)
        return HostStep(
            obs=_to_host_obs(final_obs),
            reward=np.array(reward, np.float32),
            terminated=bool(terminated),
            truncated=bool(truncated),
            info={k: float(v) for k, v in info.items()},
        )
