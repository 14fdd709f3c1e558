"""A tiny deterministic environment with GridEnv's API, for runtime tests.

Episodes last exactly ``horizon`` steps (truncated); agent ``a`` earns reward ``a + 1`` per
step and the info carries a constant ``cost`` of 0.5 per step, so episode totals are known.
Every episode is of scenario ``SCENARIO``.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from envs.types import EnvSpec, Observation

NUM_AGENTS, OBS_DIM, GLOBAL_DIM, ACTION_DIM = 2, 3, 4, 2
SCENARIO = 4


class FakeState(NamedTuple):
    t: jax.Array  # [] int32


class FakeEnv:
    def __init__(self, horizon: int):
        self.horizon = horizon

    def spec(self, params=None) -> EnvSpec:
        return EnvSpec(
            num_agents=NUM_AGENTS,
            obs_dim=OBS_DIM,
            global_dim=GLOBAL_DIM,
            action_dim=ACTION_DIM,
            num_agent_types=1,
            agent_type=np.zeros(NUM_AGENTS, np.int32),
            agent_mask=np.ones(NUM_AGENTS, bool),
            action_mask=np.ones((NUM_AGENTS, ACTION_DIM), bool),
            agent_type_names=("unit",),
            agent_type_gamma=(0.99,),
            agent_type_lambda=(0.95,),
        )

    def observe(self, t):
        tf = t.astype(jnp.float32)
        return Observation(
            agent_obs=jnp.full((NUM_AGENTS, OBS_DIM), tf),
            global_state=jnp.full((GLOBAL_DIM,), tf),
        )

    def reset(self, key, params=None):
        t = jnp.zeros((), jnp.int32)
        return self.observe(t), FakeState(t)

    def step(self, key, state, action, params=None):
        t = state.t + 1
        truncated = t >= self.horizon
        final_obs = self.observe(t)
        t = jnp.where(truncated, 0, t)
        reward = jnp.arange(1, NUM_AGENTS + 1, dtype=jnp.float32)
        info = {"cost": jnp.float32(0.5), "final_obs": final_obs, "scenario_id": SCENARIO}
        terminated = jnp.zeros((), bool)
        return self.observe(t), FakeState(t), reward, terminated, truncated, info
