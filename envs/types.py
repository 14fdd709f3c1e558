"""Pytrees shared between the environment and its users (learner, actors, evaluation).

Axis convention everywhere in gridpod: ``[T, B, A, ...]`` — time, batch of grids,
agents. A single environment works on one grid; batching is ``jax.vmap``.
"""

from typing import NamedTuple

import jax
import numpy as np


class Observation(NamedTuple):
    """What the agents see after a step (one grid)."""

    agent_obs: jax.Array  # [A, O] float32, per-agent local view, padded to O
    global_state: jax.Array  # [S] float32, full state for centralised critics


class EnvSpec(NamedTuple):
    """Static description of an environment's agents and spaces (NumPy / Python values only)."""

    num_agents: int  # A
    obs_dim: int  # O
    global_dim: int  # S
    action_dim: int  # U, actions are in [-1, 1]
    num_agent_types: int
    agent_type: np.ndarray  # [A] int32, index into agent_type_names
    agent_mask: np.ndarray  # [A] bool, False for padded agents
    action_mask: np.ndarray  # [A, U] bool, False for padded action dimensions
    agent_type_names: tuple[str, ...]
    agent_type_gamma: tuple[float, ...]  # per-type discount (the hierarchical horizons)
    agent_type_lambda: tuple[float, ...]  # per-type GAE lambda
