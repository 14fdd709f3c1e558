"""Layered reward.

Three terms, each at most 1 and O(1) in normal operation, combined per agent with the
layout's weights (default 50% safety, 30% cost, 20% uptime)::

    safety = 1 - min(overload + frequency + voltage + unserved, 11)
        overload  = overload_weight (1) x sum over in-service branches of max(loading - 1, 0)
        frequency = max(|df| - band, 0) / band
        voltage   = sum over buses of (max(V - Vmax, 0) + max(Vmin - V, 0)) / 0.01   (AC only)
        unserved  = 5 x share of demand lost in islands (de-energised buses) or to
                    under-frequency load shedding
    cost   = 1 - log(1 + step cost / reference step cost)   (clipped below at -10)
        step cost = generation + VOLL x (shed + under-frequency shed) energy + curtailment
                    price x spilled energy + the slack bus's energy on the slack unit's cost
                    curve ($),
        reference = cost of serving the case's base load for one step (per case); the
        log keeps the term O(1) and informative when shedding at VOLL dominates the bill
    uptime = 0.5 x share of branches in service + 0.5 x min(reserve margin / target, 1)

    reward_a = clip(w_a . (safety, cost, uptime), -10, 1), or ``blackout_penalty`` (-10)
    on the step that ends in a blackout.

With ``reward="operator"`` every agent gets the operator's objective instead, linear in cost::

    reward = clip(1 - operator cost / reference step cost - badness, OPERATOR_LOW, 1)
        operator cost = step cost + VOLL x energy lost in islands

(``badness`` as in the safety term). The operator cost is what the evaluation charges a step
(``envs.evaluation.metrics``): load cut off by a cascade is priced like load shed on purpose,
else a policy is paid to let protection island load rather than shed it (on ieee118 an
islanded MWh cost ~75x less reward than a shed one). A blackout step earns ``OPERATOR_LOW``
(or ``blackout_penalty`` if lower) for itself and for every step of the day it ends: the
evaluation charges the rest of the day's demand at VOLL, and a step serving nothing is at the
floor. Charged one floor step, a blackout would pay a team facing a day of islanded load at
the floor to end the day. A 10 % saving moves the reward by 0.1 per step, where the layered
reward's log-compressed cost term weighted 0.3 moved by 0.03 beside exogenous swings of the
safety and uptime terms.

Each term is reported in ``info`` separately. There is no running normalisation here;
the learner normalises.
"""

import jax
import jax.numpy as jnp

REWARD_LOW, REWARD_HIGH = -10.0, 1.0
# A step shedding load at VOLL costs ~15-20 reference steps on ieee14: keep it linear that far.
OPERATOR_LOW = -50.0


def safety_term(
    loading: jax.Array,
    in_service: jax.Array,
    freq_dev_hz: jax.Array,
    freq_band_hz: float,
    voltage_violation_pu: jax.Array,
    unserved_share: jax.Array,
    overload_weight: float = 1.0,
) -> jax.Array:
    overload = jnp.sum(jnp.where(in_service, jnp.maximum(loading - 1.0, 0.0), 0.0))
    overload = overload_weight * overload
    frequency = jnp.maximum(jnp.abs(freq_dev_hz) - freq_band_hz, 0.0) / freq_band_hz
    voltage = voltage_violation_pu / 0.01
    badness = overload + frequency + voltage + 5.0 * unserved_share
    return 1.0 - jnp.minimum(badness, 11.0)


def cost_term(step_cost: jax.Array, reference_step_cost: float) -> jax.Array:
    return jnp.maximum(1.0 - jnp.log1p(step_cost / reference_step_cost), -10.0)


def uptime_term(
    in_service: jax.Array, reserve_margin: jax.Array, reserve_target: float
) -> jax.Array:
    lines = jnp.mean(in_service.astype(jnp.float32))
    reserve = jnp.clip(reserve_margin / reserve_target, 0.0, 1.0)
    return 0.5 * lines + 0.5 * reserve


def agent_rewards(
    terms: jax.Array, weights: jax.Array, blackout: jax.Array, blackout_penalty: float
) -> jax.Array:
    """Per-agent reward [A] from terms [3] and weights [A, 3]."""
    mixed = jnp.clip(weights @ terms, REWARD_LOW, REWARD_HIGH)
    return jnp.where(blackout, jnp.float32(blackout_penalty), mixed)


def operator_rewards(
    step_cost: jax.Array,
    reference_step_cost: float,
    safety: jax.Array,
    n_agents: int,
    blackout: jax.Array,
    blackout_penalty: float,
    steps_left: jax.Array,
) -> jax.Array:
    """Per-agent reward [A]: ``1 - cost / reference - badness`` (``safety = 1 - badness``);
    ``step_cost`` is the operator cost (islanded energy at VOLL included), ``steps_left`` the
    steps of the day after this one (a blackout is charged the floor for each)."""
    value = 1.0 - step_cost / reference_step_cost - (1.0 - safety)
    value = jnp.clip(value, OPERATOR_LOW, REWARD_HIGH)
    floor = jnp.float32(min(blackout_penalty, OPERATOR_LOW))
    day_lost = floor * (1.0 + jnp.maximum(steps_left, 0).astype(jnp.float32))
    value = jnp.where(blackout, day_lost, value)
    return jnp.full((n_agents,), value, jnp.float32)
