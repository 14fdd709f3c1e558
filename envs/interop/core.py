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
import jax.numpy as jnp
import numpy as np

from envs.types import EnvSpec

INTEROP_HINT = "install gridpod[interop] (pip install 'gridpod[interop]')"
OBSERVATIONS = ("global", "agents")
TEAM_REWARDS = ("mean", "sum")


class NonFiniteActionError(ValueError):
    """An action with NaN or infinite entries (rejected before the env is stepped)."""


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


def require_finite_actions(values, what: str) -> np.ndarray:
    """``values`` as float64, or a ``NonFiniteActionError`` naming where NaN/inf entries are.

    Checked before the float32 cast and the clip to [-1, 1]: clipping would turn +-inf into
    a bound and NaN would spread through the power flow instead of failing where it came in.
    """
    array = np.asarray(values, np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        where = [tuple(int(i) for i in index) for index in np.argwhere(bad)[:3]]
        kinds = sorted({"nan" if np.isnan(v) else "inf" for v in array[bad]})
        more = f" and {int(bad.sum()) - len(where)} more" if bad.sum() > len(where) else ""
        raise NonFiniteActionError(
            f"{what} has non-finite values ({', '.join(kinds)}) at index {where}{more}: "
            "actions must be finite numbers in [-1, 1]"
        )
    return array


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
        self._baseline_acts: dict = {}
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
            values = np.asarray(action).reshape(-1)
            if values.shape != dims.shape:
                raise ValueError(f"agent {name} needs {dims.size} action values, got {values.size}")
            full[agent, dims] = require_finite_actions(values, f"the action of agent {name}")
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

    def baseline_action(self, name: str) -> np.ndarray:
        """The padded ``[A, U]`` action the ``envs.opf.baselines`` operator ``name`` would take now."""
        if self.episode_over:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        if name not in BASELINES:
            raise ValueError(f"baseline {name!r} is not one of {BASELINES}")
        interface = self.params.consts.action_interface
        if interface != "setpoints":
            raise ValueError(
                f"baseline actions are setpoints, but this env's action_interface is "
                f"{interface!r} (with bids, a zero action is the myopic OPF)"
            )
        if name not in self._baseline_acts:
            from envs.opf import baselines

            act = getattr(baselines, name)(self.params)  # reads the layout: concrete params
            self._baseline_acts[name] = jax.jit(lambda state: act(None, state, None, None))
        state = jax.tree_util.tree_map(lambda x: x[None], self._state)
        return np.array(self._baseline_acts[name](state)[0], np.float32)


# envs.opf.baselines operators that decide from the current state alone (cheap, on the device).
BASELINES = ("do_nothing", "proportional", "merit_order")


class TeamLayout:
    """The whole team as one agent: a flat action vector and observation, one reward.

    The flat action holds every live agent's real (unmasked) action dimensions in agent
    order, which is ``spec.action_mask``'s row-major order. Methods take NumPy or JAX arrays
    with any leading batch axes.
    """

    def __init__(self, spec: EnvSpec, observation: str = "global", reward: str = "mean"):
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation={observation!r} is not one of {OBSERVATIONS}")
        if reward not in TEAM_REWARDS:
            raise ValueError(f"reward={reward!r} is not one of {TEAM_REWARDS}")
        self.observation, self.reward = observation, reward
        self.live_agents = np.flatnonzero(spec.agent_mask)
        self.names = tuple(agent_names(spec))
        mask = spec.action_mask & spec.agent_mask[:, None]
        self.action_agent, self.action_dim = np.nonzero(mask)
        self.action_size = int(self.action_agent.size)
        self.padded_action_shape = (spec.num_agents, spec.action_dim)
        bounds = np.cumsum([0, *mask[self.live_agents].sum(axis=1)])
        self.action_slices = {
            name: slice(int(lo), int(hi))
            for name, lo, hi in zip(self.names, bounds[:-1], bounds[1:], strict=True)
        }
        live_obs = self.live_agents.size * spec.obs_dim
        self.obs_size = spec.global_dim if observation == "global" else live_obs

    def _identity(self) -> tuple:
        arrays = (self.live_agents, self.action_agent, self.action_dim)
        scalars = (self.observation, self.reward, self.obs_size, self.padded_action_shape)
        return (*scalars, *(a.tobytes() for a in arrays))

    # Equal layouts share compiled code (a static argument of the vector env's jitted calls).
    def __eq__(self, other) -> bool:
        return isinstance(other, TeamLayout) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def flat_obs(self, obs):
        """``Observation`` with leading axes ``[...]`` -> ``[..., obs_size]``."""
        if self.observation == "global":
            return obs.global_state
        agents = obs.agent_obs[..., self.live_agents, :]
        return agents.reshape(*agents.shape[:-2], self.obs_size)

    def team_reward(self, reward):
        """Per-agent rewards ``[..., A]`` -> ``[...]`` (mean or sum over live agents)."""
        live = reward[..., self.live_agents]
        return live.mean(axis=-1) if self.reward == "mean" else live.sum(axis=-1)

    def flat_action(self, padded):
        """Padded ``[..., A, U]`` -> flat ``[..., action_size]``."""
        return padded[..., self.action_agent, self.action_dim]

    def padded_action(self, flat):
        """Flat ``[..., action_size]`` JAX array -> padded ``[..., A, U]`` (zeros elsewhere)."""
        padded = jnp.zeros((*flat.shape[:-1], *self.padded_action_shape), flat.dtype)
        return padded.at[..., self.action_agent, self.action_dim].set(flat)
