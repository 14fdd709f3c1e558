"""Baseline operators: the policies a trained one is judged against.

A baseline is an ``ActFn`` (``envs.evaluation.rollout``): ``act(obs, state, key, args) ->
action [B, A, U]`` on a batch of grids (leading axis B on every leaf of ``obs`` and
``state``); ``args`` is what the rollout passes through (``None`` here). Baselines:

* ``do_nothing``: every conventional unit asks for its current output (AGC still balances),
  renewables run uncurtailed, batteries idle, no shedding;
* ``proportional``: pro-rata dispatch by capacity: each step every online unit runs at the
  same fraction ``lam`` of its range (conventional ``[Pmin, Pmax]``, renewable ``[0,
  available]``) with ``lam`` set so the units cover demand + shunts; renewables are
  curtailed pro rata and batteries idle. (Sharing the net load over the conventional units
  alone would copy ``do_nothing``: the env's AGC already keeps their outputs proportional
  to their headroom.)
* ``merit_order``: copper-plate economic dispatch of the latest demand (``envs.opf.merit_order``):
  conventional units at equal incremental cost inside their reachable bands, renewables
  uncurtailed unless they exceed the load, batteries idle, no shedding, no network check;
* ``myopic_opf_baseline`` (the ``myopic_opf`` of ``envs.evaluation.registry``): the single-step DC-OPF
  of the interval about to be dispatched, on the latest state (persistence forecast of demand
  and availability, current topology, ramp limits from the current output, battery energy),
  solved in JAX for the whole batch on the device (``envs.opf.step_qp``). It keeps
  ``MYOPIC_RATING_MARGIN`` of every branch rating free, as operators do.
* ``myopic_opf_highs``: the same single-step problem solved exactly by HiGHS on the host
  (``envs.opf.highs_reference``) via ``jax.pure_callback`` (one LP per grid per step): the
  reference the JAX solver is tested against, slow on large cases;
* ``lookahead_opf`` (``envs.opf.lookahead_qp``): receding-horizon multi-period DC-OPF on the
  operator's forecast, re-solved every step, the first period applied;
* ``myopic_opf_valued``: the myopic OPF with every battery offering its energy at the price the
  operator's forecast expects at the look-ahead's horizon (``envs.opf.storage_value``): the
  look-ahead's value of stored energy, at the cost of the single-step QP;
* ``myopic_opf_alarm``: the myopic OPF with the alarm rule of the bids' clearing
  (``env.alarm_margin``): a wider rating margin on the step after an overload.

Each baseline decides device set-points (``envs.opf.controls``);
``envs.sim.dispatch.controls_to_action`` writes them into the action slots that drive each
device channel (``envs.sim.layouts``), inverting the env's setpoint action semantics
(setpoint or delta mode for conventional units, curtailment for renewables, battery power,
demand response). A policy's ``ActFn`` returns setpoints too: a policy trained on another
``env.action_interface`` converts its actions with ``GridEnv.setpoints``.

The evaluation rollout and its metrics moved to ``envs.evaluation`` (``rollout``,
``episode_metrics``); they stay importable from here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from envs.deprecation import MYOPIC_RENAME, renamed_attributes

# The evaluation rollout and its metrics lived here: importable from here too.
from envs.evaluation.metrics import episode_metrics  # noqa: F401
from envs.evaluation.rollout import ActFn, Rollout, oracle_inputs, rollout  # noqa: F401
from envs.opf import lookahead_qp as lookahead_lib
from envs.opf import step_qp, storage_value
from envs.opf.controls import (
    EPS,
    MYOPIC_RATING_MARGIN,
    alarm_rating_margin,
    check_rating_margin,
    dispatch_controls,
    gen_controls,
    merit_order_controls,
    myopic_opf_controls,
    opf_controls,
    pad_controls,
)

# The HiGHS reference lived here: importable from here too.
from envs.opf.highs_reference import (  # noqa: F401
    HostStates,
    myopic_highs_dispatch,
    myopic_model,
    solve_myopic_highs,
)
from envs.sim.dispatch import action_map, controls_to_action
from envs.types import EnvParams, EnvState


def _action_map(params: EnvParams):
    n_storage = params.devices.storage_bus.shape[0]
    return action_map(params.layout, params.grid.n_gen, n_storage, params.grid.n_bus)


def single_to_batched(single: Callable, params: EnvParams) -> ActFn:
    """Batch a per-grid ``(state, params) -> controls [C]`` rule into an ActFn."""
    amap = _action_map(params)
    shape = params.layout.ctrl_index.shape

    def act(obs, state, key, args):
        del obs, key, args
        controls = jax.vmap(single, in_axes=(0, None))(state, params)
        return jax.vmap(lambda c: controls_to_action(amap, c, shape))(controls)

    return act


def _hold_controls(state: EnvState, params: EnvParams) -> jax.Array:
    target = jnp.where(params.devices.is_renewable, state.available, state.pg)
    return pad_controls(gen_controls(target, state, params), params)


def proportional_targets(state: EnvState, params: EnvParams) -> jax.Array:
    """Unit targets [G] MW: every online unit at the same fraction ``lam`` of its range.

    The range of a conventional unit is ``[Pmin, Pmax]`` (0 when offline), that of a renewable
    unit ``[0, available]`` (its weather), so ``lam`` shares demand + shunt load over all the
    capacity at hand and renewables are curtailed pro rata whenever ``lam < 1``. ``lam`` is
    chosen each step so the targets sum to the load (clipped to [0, 1]); batteries stay idle.
    """
    devices, grid = params.devices, params.grid
    online = state.available > 0.0
    floor = jnp.where(online & ~devices.is_renewable, devices.pmin, 0.0)
    ceiling = jnp.where(online, state.available, 0.0)
    load = jnp.sum(state.demand) + jnp.sum(grid.bus_gs)
    headroom = jnp.maximum(jnp.sum(ceiling - floor), EPS)
    lam = jnp.clip((load - jnp.sum(floor)) / headroom, 0.0, 1.0)
    return floor + lam * (ceiling - floor)


def _proportional_controls(state: EnvState, params: EnvParams) -> jax.Array:
    return pad_controls(gen_controls(proportional_targets(state, params), state, params), params)


def myopic_rating_margin(rating_margin: float | None) -> float:
    """``rating_margin``, or ``MYOPIC_RATING_MARGIN`` where it is None; raises where it lies
    outside [0, 1)."""
    rating_margin = MYOPIC_RATING_MARGIN if rating_margin is None else rating_margin
    check_rating_margin(rating_margin)
    return rating_margin


def myopic_opf_baseline(
    params: EnvParams, rating_margin: float | None = None, max_iter: int = step_qp.MAX_ITER
) -> ActFn:
    """The myopic OPF: single-step DC-OPF solved in JAX for the whole batch on the device
    (``envs.opf.step_qp``), what ``myopic_opf_highs`` solves with HiGHS on the host, and the
    network-aware prior of ``learner.prior`` (which runs fewer iterations, ``max_iter``). The
    rating margin defaults to ``MYOPIC_RATING_MARGIN``."""
    rating_margin = myopic_rating_margin(rating_margin)
    controls = partial(myopic_opf_controls, rating_margin=rating_margin, max_iter=max_iter)
    return single_to_batched(controls, params)


def myopic_opf_valued(
    params: EnvParams,
    rating_margin: float | None = None,
    max_iter: int = step_qp.MAX_ITER,
    offers=storage_value.valued_offers,
) -> ActFn:
    """The myopic OPF with the batteries' energy offered at the forecast's price
    (``storage_value.valued_offers``): a zero bid under ``env.storage_bid_base="forecast_price"``.
    ``offers=storage_value.banded_offers`` (``myopic_opf_banded``): that price's round-trip
    band, a zero bid under ``"forecast_band"``."""
    rating_margin = myopic_rating_margin(rating_margin)

    def controls(state, params):
        priced = offers(state, params)
        return myopic_opf_controls(state, params, rating_margin, priced, max_iter=max_iter)

    return single_to_batched(controls, params)


def myopic_opf_to_day_end(
    params: EnvParams, rating_margin: float | None = None, max_iter: int = step_qp.MAX_ITER
) -> ActFn:
    """``myopic_opf_valued`` on ``storage_value.day_end_offers``: past the day's end the
    batteries' energy is offered at the evaluation's value of stored energy, whatever the env's
    own settings (a zero bid under ``env.storage_bid_base="forecast_to_day_end"``)."""
    end_value = storage_value.stored_energy_value(params)
    offers = partial(storage_value.day_end_offers, end_value=end_value)
    return myopic_opf_valued(params, rating_margin, max_iter, offers=offers)


# The alarm margin of ``myopic_opf_alarm`` where the env has none (the ieee118 preset's).
ALARM_MARGIN = 0.05


def myopic_opf_alarm(
    params: EnvParams,
    rating_margin: float | None = None,
    alarm_margin: float | None = None,
    max_iter: int = step_qp.MAX_ITER,
) -> ActFn:
    """The myopic OPF with the bids' clearing's alarm rule: on the step after a branch in
    service ran above its rating, ``alarm_margin`` more of every rating is kept free (default:
    the env's ``alarm_margin``, else ``ALARM_MARGIN``). The causal yardstick of a team whose
    bids clear under that rule: what the rule buys without any learning."""
    rating_margin = myopic_rating_margin(rating_margin)
    if alarm_margin is None:
        alarm_margin = params.consts.alarm_margin or ALARM_MARGIN
    check_rating_margin(rating_margin + alarm_margin, "rating_margin + alarm_margin")

    def controls(state, params):
        margin = alarm_rating_margin(state, alarm_margin, rating_margin)
        return myopic_opf_controls(state, params, margin, max_iter=max_iter)

    return single_to_batched(controls, params)


def lookahead_opf(
    params: EnvParams,
    rating_margin: float | None = None,
    period_steps: tuple[int, ...] = lookahead_lib.DEFAULT_PERIOD_STEPS,
    value_stored_energy: bool = False,
) -> ActFn:
    """Receding-horizon DC-OPF on the operator's forecast (``envs.opf.lookahead_qp``), solved in
    JAX for the whole batch every step, its first period applied. The rating margin defaults
    to the myopic OPF's."""
    rating_margin = myopic_rating_margin(rating_margin)
    period_steps = lookahead_lib.check_period_steps(period_steps)

    def controls(state, params):
        forecast = lookahead_lib.operator_forecast(state, params, period_steps)
        solved = lookahead_lib.solve_lookahead(
            state,
            params,
            forecast,
            period_steps,
            rating_margin,
            value_stored_energy=value_stored_energy,
        )
        return opf_controls(solved, state, params)

    return single_to_batched(controls, params)


def merit_order(params: EnvParams) -> ActFn:
    """Copper-plate economic dispatch of the latest demand by merit order, no network check
    (``merit_order.merit_order_targets``)."""
    return single_to_batched(merit_order_controls, params)


def do_nothing(params: EnvParams) -> ActFn:
    """Hold every unit's current output; no curtailment, storage or shedding."""
    return single_to_batched(_hold_controls, params)


def proportional(params: EnvParams) -> ActFn:
    """Share the load over every online unit, renewables included, in proportion to its range
    (``proportional_targets``); batteries idle, no shedding."""
    return single_to_batched(_proportional_controls, params)


def myopic_opf_highs(params: EnvParams, rating_margin: float = MYOPIC_RATING_MARGIN) -> ActFn:
    """Single-step DC-OPF on the latest state, solved exactly by HiGHS on the host through
    ``pure_callback`` (branch limits with a margin: ``myopic_model``): the reference of
    ``myopic_opf_baseline``."""
    model = myopic_model(params, rating_margin)
    is_renewable = np.asarray(params.devices.is_renewable, bool)
    amap, shape = _action_map(params), params.layout.ctrl_index.shape
    devices = params.devices

    def act(obs, state, key, args):
        del obs, key, args
        batch = state.demand.shape[0]
        result_shape = tuple(
            jax.ShapeDtypeStruct((batch, n), jnp.float32)
            for n in (params.grid.n_gen, devices.storage_bus.shape[0], params.grid.n_bus)
        )

        def host(*fields):
            dispatch = myopic_highs_dispatch(model, is_renewable, HostStates.of_arrays(fields))
            return tuple(x.astype(np.float32) for x in dispatch)

        pg, battery, shed = jax.pure_callback(
            host,
            result_shape,
            *(getattr(state, name) for name in HostStates._fields),
            vmap_method="sequential",
        )

        def one(state_b, pg_b, battery_b, shed_b):
            controls = dispatch_controls(pg_b, battery_b, shed_b, state_b, params)
            return controls_to_action(amap, controls, shape)

        return jax.vmap(one)(state, pg, battery, shed)

    return act


# The old name, for one release.
__getattr__ = renamed_attributes(
    globals(), {"step_opf_baseline": "myopic_opf_baseline"}, MYOPIC_RENAME
)
