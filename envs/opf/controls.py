"""Dispatch targets in MW as the env's device controls in [-1, 1], and the OPF rules that
produce them (the myopic OPF and the merit order).

The controls vector is ``gen [G] | storage [S] | shed [N]`` (``envs.sim.dispatch``): setpoint or
delta for conventional units, the share of availability kept for renewables, battery power
over its rating, shed share of the curtailable load. These functions invert that decoding, so
the baselines and the env's own action interfaces (``envs.action_interface``) all speak to the
env through the same channels.
"""

import jax
import jax.numpy as jnp

from envs.deprecation import MYOPIC_RENAME, renamed_attributes
from envs.opf import merit_order as merit_order_lib
from envs.opf import step_qp
from envs.types import EnvParams, EnvState

EPS = 1e-6

# Share of each branch rating the myopic OPF keeps free. The env moves flows after dispatch
# (AGC picks up the demand noise, ramps and clipping bind), so an LP that loads a line to
# exactly 100 % sees it overloaded, and tripped, steps later; operators dispatch against a
# reliability margin below the thermal rating for the same reason.
MYOPIC_RATING_MARGIN = 0.05


def alarm_rating_margin(state: EnvState, alarm_margin: float, rating_margin: float):
    """``rating_margin``, plus ``alarm_margin`` on the step after a branch in service ended
    above its rating (``env.alarm_margin``). Protection trips a branch after
    ``overload_steps_to_trip`` steps above its rating, and an outage that lands on a
    neighbourhood loaded near its ratings cascades: an overload is the alarm that the dispatch
    has no headroom left, and the next clearing buys it back."""
    if not alarm_margin:
        return rating_margin
    alarm = jnp.any(state.branch_in_service & (state.overload_count > 0))
    return jnp.where(alarm, rating_margin + alarm_margin, rating_margin)


def check_rating_margin(margin: float, name: str = "rating_margin") -> None:
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {margin}")


def gen_controls(target_mw, state: EnvState, params: EnvParams) -> jax.Array:
    """Unit targets [G] MW -> gen channel values: setpoint/delta for conventional units,
    output share of availability for renewables (0 = uncurtailed, -1 = all spilled)."""
    devices = params.devices
    if params.consts.gen_action == "delta":
        conv = (target_mw - state.pg) / jnp.maximum(devices.ramp, EPS)
    else:
        span = jnp.maximum(devices.pmax - devices.pmin, EPS)
        conv = 2.0 * (target_mw - devices.pmin) / span - 1.0
    share = target_mw / jnp.maximum(state.available, EPS) - 1.0
    renewable = jnp.where(state.available > EPS, jnp.minimum(share, 0.0), 0.0)
    return jnp.clip(jnp.where(devices.is_renewable, renewable, conv), -1.0, 1.0)


def pad_controls(gen, params: EnvParams, storage=None, shed=None) -> jax.Array:
    """``gen [G] | storage [S] | shed [N]``, batteries idle and no shedding where not given."""
    n_storage = params.devices.storage_bus.shape[0]
    storage = jnp.zeros(n_storage, gen.dtype) if storage is None else storage
    shed = jnp.zeros(params.grid.n_bus, gen.dtype) if shed is None else shed
    return jnp.concatenate([gen, storage, shed])


def dispatch_controls(pg, storage_mw, shed_mw, state: EnvState, params: EnvParams) -> jax.Array:
    """An OPF's dispatch of the coming step (``pg [G]``, battery ``storage_mw [S]`` + discharge,
    ``shed_mw [N]``) as controls [C]. Channels that merely must not act sit at the far end of
    their "off" range (renewables uncurtailed: +1, no shedding: -1; the env treats them like 0),
    so a residual or bid added to them acts only when it is deliberate."""
    devices = params.devices
    gen = gen_controls(pg, state, params)
    uncurtailed = devices.is_renewable & (pg >= state.available - 1e-2)
    gen = jnp.where(uncurtailed, 1.0, gen)
    storage = storage_mw / jnp.maximum(devices.storage_pmax, EPS)
    curtailable = devices.shed_max * state.demand
    shed = jnp.where(
        (curtailable > EPS) & (shed_mw > 1e-2), shed_mw / jnp.maximum(curtailable, EPS), -1.0
    )
    return pad_controls(gen, params, storage, shed)


def opf_controls(solved: step_qp.StepOPF, state: EnvState, params: EnvParams) -> jax.Array:
    """A JAX OPF's solution (single-step or look-ahead) as controls [C]."""
    return dispatch_controls(solved.pg, solved.storage, solved.shed, state, params)


def merit_order_controls(state: EnvState, params: EnvParams) -> jax.Array:
    """``merit_order_targets`` as controls [C] (renewables uncurtailed unless they exceed the
    load, no shedding, both at the far end of their range as in ``dispatch_controls``)."""
    targets = merit_order_lib.merit_order_targets(state, params)
    gen = gen_controls(targets, state, params)
    uncurtailed = params.devices.is_renewable & (targets >= state.available - EPS)
    gen = jnp.where(uncurtailed, 1.0, gen)
    n_bus = params.grid.n_bus
    return pad_controls(gen, params, shed=-jnp.ones(n_bus, gen.dtype))


def myopic_opf_controls(
    state: EnvState,
    params: EnvParams,
    rating_margin: float,
    price_offset=None,
    max_iter: int = step_qp.MAX_ITER,
) -> jax.Array:
    """The single-step DC-OPF of the latest state solved in JAX (``envs.opf.step_qp``, with
    optional offers ``price_offset [G + S]`` $/MWh, ``max_iter`` interior-point iterations) as
    controls [C]."""
    solved = step_qp.solve_myopic_opf(state, params, rating_margin, price_offset, max_iter=max_iter)
    return opf_controls(solved, state, params)


# The old name, for one release.
__getattr__ = renamed_attributes(
    globals(), {"step_opf_controls": "myopic_opf_controls"}, MYOPIC_RENAME
)
