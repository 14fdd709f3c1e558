"""The batched evaluation rollout: any policies over the same held-out episodes.

A policy is an ``ActFn``: ``act(obs, state, key, args) -> action [B, A, U]`` on a batch of
grids (leading axis B on every leaf of ``obs`` and ``state``); ``args`` is a pytree the
rollout passes through (a trained policy's parameters; ``None`` for baselines).

``rollout`` runs one or several policies over the same episodes: ``jax.vmap`` over grids,
``lax.scan`` over time, the policy picked by ``lax.switch`` so every policy in a tuple shares
one compilation. The record keeps each episode's exogenous trajectory too
(``oracle_inputs``), for the perfect-foresight oracle (``envs.opf.oracle``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from envs.env import GridEnv, reset_to_scenario, split_step_key
from envs.opf import oracle
from envs.sim import exogenous as exo
from envs.sim.transition import transition
from envs.types import EnvParams, EnvState, Observation

ActFn = Callable[[Observation, EnvState, jax.Array, Any], jax.Array]


class Rollout(NamedTuple):
    """A batch of evaluated episodes, axes [T, B, ...]; states are pre-reset (no auto-reset).

    After a blackout the episode's grid keeps being stepped (masked out by ``alive``), so the
    exogenous fields (demand, availability, outages) cover the whole horizon.
    """

    info: dict  # {name: [T, B]} the env's step info
    alive: jax.Array  # [T, B] bool: the step belongs to the episode (up to and incl. its end)
    terminated: jax.Array  # [T, B] bool
    action: jax.Array  # [T, B, A, U]
    pg: jax.Array  # [T, B, G]
    storage_p: jax.Array  # [T, B, S]
    soc: jax.Array  # [T, B, S]
    shed: jax.Array  # [T, B, N]
    demand: jax.Array  # [T, B, N]
    available: jax.Array  # [T, B, G]
    flow: jax.Array  # [T, B, L]
    branch_in_service: jax.Array  # [T, B, L] after protection
    theta: jax.Array  # [T, B, N]
    vm: jax.Array  # [T, B, N]
    freq_dev: jax.Array  # [T, B]
    exo_branch_in_service: jax.Array  # [T, B, L] exogenous outages only (no protective trips)
    gen_online: jax.Array  # [T, B, G]
    pg0: jax.Array  # [B, G] dispatch at reset
    soc0: jax.Array  # [B, S]


def _env_step(key, state, exo_cooldown, action, params):
    """``GridEnv.step`` without auto-reset (same key use), plus the exogenous topology.

    The exogenous branch cooldown is advanced like the env's but without protective trips,
    with the same random draws, so it holds the outages no policy can avoid.
    """
    key_step, _ = split_step_key(key)
    topo = exo.step_topology(
        exo.draw_step_noise(key_step, params.grid),
        state.t + 1,
        exo_cooldown,
        state.gen_cooldown,
        state.episode,
        params,
    )
    next_state, _, terminated, info = transition(key_step, state, action, params)
    obs = GridEnv().observe(next_state, params)
    return obs, next_state, terminated, info, topo


@partial(jax.jit, static_argnames=("policies", "horizon"))
def rollout(
    params: EnvParams,
    policies: tuple[ActFn, ...],
    policy_index: jax.Array,
    reset_keys: jax.Array,
    scenario: jax.Array,
    horizon: int,
    policy_args: Any = None,
) -> Rollout:
    """Run ``policies[policy_index]`` on episodes ``reset_keys`` [B, 2] of ``scenario`` (one
    scenario index for every grid, or one per grid [B]).

    Step keys are ``oracle.step_keys(reset_key, horizon)``. Every policy of the tuple compiles
    once into the same program; the index is a traced value.
    """
    scenario = jnp.broadcast_to(scenario, reset_keys.shape[:1])
    _, state = jax.vmap(reset_to_scenario, in_axes=(0, None, 0))(reset_keys, params, scenario)
    obs = jax.vmap(GridEnv().observe, in_axes=(0, None))(state, params)
    keys = jax.vmap(oracle.step_keys, in_axes=(0, None))(reset_keys, horizon)  # [B, T, 2]
    act_keys = jax.random.split(jax.random.fold_in(reset_keys[0], 2), horizon)
    step = jax.vmap(_env_step, in_axes=(0, 0, 0, 0, None))

    def body(carry, xs):
        obs, state, exo_cooldown, alive = carry
        step_key, act_key = xs
        branches = [partial(p, obs, state, act_key, policy_args) for p in policies]
        action = jax.lax.switch(policy_index, branches)
        obs, state, terminated, info, topo = step(step_key, state, exo_cooldown, action, params)
        truncated = state.t >= params.consts.horizon
        record = (
            info,
            alive,
            terminated,
            action,
            state.pg,
            state.storage_p,
            state.soc,
            state.shed,
            state.demand,
            state.available,
            state.flow,
            state.branch_in_service,
            state.theta,
            state.vm,
            state.freq_dev,
            topo.branch_in_service,
            topo.gen_online,
        )
        carry = (obs, state, topo.branch_cooldown, alive & ~terminated & ~truncated)
        return carry, record

    carry = (obs, state, state.branch_cooldown, jnp.ones(reset_keys.shape[0], bool))
    _, records = jax.lax.scan(body, carry, (jnp.swapaxes(keys, 0, 1), act_keys))
    return Rollout(*records, pg0=state.pg, soc0=state.soc)


def oracle_inputs(record: Rollout, episode: int) -> oracle.EpisodeInputs:
    """The exogenous trajectory of one recorded episode, for ``oracle.solve_oracle``."""
    pick = lambda x: np.asarray(x)[:, episode]  # noqa: E731
    return oracle.EpisodeInputs(
        demand_mw=pick(record.demand),
        available_mw=pick(record.available),
        gen_online=pick(record.gen_online),
        branch_in_service=pick(record.exo_branch_in_service),
        pg0_mw=np.asarray(record.pg0)[episode],
        soc0_mwh=np.asarray(record.soc0)[episode],
    )
