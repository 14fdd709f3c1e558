"""Look-ahead (receding-horizon) DC-OPF as one dense QP per grid in JAX (qpax), jit/vmap-able.

What a grid operator's look-ahead dispatch does each interval: optimise the next periods on
the forecast it has, apply the first period, re-solve at the next step with what it then sees::

    min  sum_k n_k [ sum_g (c2 p_gk^2 + c1 p_gk) - curtailment price x renewable output
                     + VOLL x shed_k ]
    s.t. per period k: power balance, |PTDF (injections_k)| <= (1 - margin) rating,
         unit bands (period 1: what each unit reaches this step), renewable forecast,
         0 <= shed_k <= forecast demand_k;
         |p_gk - p_g,k-1| <= ramp_g x (n_k-1 + n_k) / 2 steps;
         soc_k = soc_k-1 + (eta charge_k - discharge_k / eta) n_k dt in [0, Emax]

Period k lasts ``n_k`` env steps (``period_steps``): fine first, coarser further out, as
operators' look-ahead dispatch does, so a few periods cover hours (batteries hold 4 h) at the
QP size of a few steps. Without a terminal value of stored energy, a horizon that ends before
the next peak empties the batteries as the myopic OPF does.

**What it sees (the forecast).** In the first period, the one it applies, the latest
demand and availability, as the single-step OPF does. After it, the known shape of the
future, none of its randomness: demand and renewable availability at each period's middle
step from the env's own exogenous model (``envs.sim.exogenous.exogenous_at``: the daily
profile or chronics row, the episode's load and renewable scale) driven by the weather
expected from today's weather, i.e. every future random draw at its mean, zero (the demand
noise's AR(1) decays towards 0, wind speed towards 8 m/s, cloud towards 0.3). It never sees
the future's noise draws nor any outage that has not happened: the topology is today's (plus
reclosings due this step) in every period, units out now stay out, units online now stay
online.

A grid whose QP does not converge falls back to the single-step OPF (``envs.opf.step_qp``, which
itself falls back to the merit order); ``converged`` and ``residual`` say so per grid.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from envs.opf import step_qp
from envs.opf.merit_order import economic_dispatch, marginal_cost_coefficients, system_lambda
from envs.powerflow.dc_outages import outage_ptdf
from envs.sim import exogenous as exo
from envs.sim.dispatch import reachable_band
from envs.sim.islands import state_kept_buses
from envs.sim.protection import dispatch_topology

# 1, 1, 2, 4, 8 and 16 steps: 32 steps (2 h 40 min of 5-minute steps) in 6 periods, long
# enough for the daily profile's rises and a battery's peak, short enough for a dense QP.
DEFAULT_PERIOD_STEPS = (1, 1, 2, 4, 8, 16)
# A fixed count, as in envs.opf.step_qp. In float32 the duality gap of the default six periods
# reaches 1e-3 of the cost after 32-40 iterations on ieee14 (benchmarks/README.md, "Look-ahead").
MAX_ITER = 40


class Forecast(NamedTuple):
    demand: jax.Array  # [H, N] MW per period
    available: jax.Array  # [H, G] MW per period (renewables: weather; conventional: Pmax if on)


class LookaheadProblemError(ValueError):
    """Bad look-ahead settings (period lengths)."""


def check_period_steps(period_steps) -> tuple[int, ...]:
    steps = tuple(int(n) for n in period_steps)
    if not steps or min(steps) < 1 or steps[0] != 1:
        raise LookaheadProblemError(
            f"period_steps must be positive step counts starting with 1, got {period_steps}"
        )
    return steps


def _middle_steps(period_steps) -> np.ndarray:
    """[H] steps ahead of the period's middle (1 for the first period)."""
    steps = np.asarray(period_steps)
    start = np.concatenate([[0], np.cumsum(steps)[:-1]])
    return start + (steps + 1) // 2


def priced_step_ahead(period_steps=DEFAULT_PERIOD_STEPS) -> int:
    """Steps ahead of the step whose forecast ``end_of_horizon_price`` prices: the last
    period's middle step (24, 2 h, for the default periods)."""
    return int(_middle_steps(check_period_steps(period_steps))[-1])


def operator_forecast(state, params, period_steps=DEFAULT_PERIOD_STEPS) -> Forecast:
    """Demand and availability per period (module doc): the latest measured in the first
    period, then what an operator expects at each later period's middle step."""
    period_steps = check_period_steps(period_steps)
    ahead = _middle_steps(period_steps)
    grid, consts = params.grid, params.consts
    zero = exo.StepNoise(
        load_common=jnp.zeros(()),
        load_local=jnp.zeros(grid.n_bus),
        wind=jnp.zeros(grid.n_gen),
        cloud=jnp.zeros(grid.n_gen),
        line_uniform=jnp.ones(grid.n_branch),
        gen_uniform=jnp.ones(grid.n_gen),
    )
    weather = exo.Weather(state.load_noise, state.wind_speed, state.cloud)
    now = exo.exogenous_at(state.t, weather, state.episode, params)
    renewable = params.devices.is_renewable
    # a renewable unit with weather but no output now is out (outages persist in the forecast)
    renewable_on = (state.available > 0.0) | (now.renewable_available <= 0.0)
    # The first period is the one applied: it plans on what is measured now, as the single-step
    # OPF does. Planned on the forecast, a renewable whose forecast (mean weather) fell below
    # what it delivers now was dispatched to the forecast, i.e. curtailed for nothing
    # (benchmarks/README.md, "Look-ahead").
    demand, available = [state.demand], [state.available]
    for k in range(1, int(ahead[-1]) + 1):
        weather = exo.step_weather(zero, weather, state.episode, consts)
        if k in ahead[1:]:
            inputs = exo.exogenous_at(state.t + k, weather, state.episode, params)
            demand.append(inputs.demand)
            ren = jnp.where(renewable_on, inputs.renewable_available, 0.0)
            available.append(jnp.where(renewable, ren, state.available))
    return Forecast(jnp.stack(demand), jnp.stack(available))


def persistence_forecast(state, periods: int) -> Forecast:
    """The latest demand and availability in every period (what the single-step OPF uses)."""
    return Forecast(
        jnp.broadcast_to(state.demand, (periods, *state.demand.shape)),
        jnp.broadcast_to(state.available, (periods, *state.available.shape)),
    )


def _layout(params):
    n_gen, n_bus = params.grid.n_gen, params.grid.n_bus
    n_storage = params.devices.storage_bus.shape[0]
    return n_gen, n_storage, n_bus, n_gen + 2 * n_storage + n_bus


def _period_bounds(state, params, forecast, energised, dtype):
    """``(lo, hi)`` [H, V] over ``[p (G), discharge (S), charge (S), shed (N)]`` per period."""
    devices, grid = params.devices, params.grid
    periods = forecast.demand.shape[0]
    renewable = devices.is_renewable
    online = (state.available > 0.0) & ~renewable
    first_lo, first_hi = reachable_band(state.pg, online, devices)
    unit_lo = jnp.where(online, devices.pmin, 0.0)
    unit_hi = jnp.where(online, devices.pmax, 0.0)
    lo = jnp.broadcast_to(unit_lo, (periods, grid.n_gen)).at[0].set(first_lo)
    hi = jnp.broadcast_to(unit_hi, (periods, grid.n_gen)).at[0].set(first_hi)
    lo = jnp.where(renewable[None, :], 0.0, lo)
    hi = jnp.where(renewable[None, :], forecast.available, hi)
    fed = energised[grid.gen_bus][None, :]
    lo, hi = jnp.where(fed, lo, 0.0), jnp.where(fed, hi, 0.0)
    battery = jnp.where(energised[devices.storage_bus], devices.storage_pmax, 0.0)
    battery = jnp.broadcast_to(battery, (periods, battery.shape[0]))
    # what the env can shed, as in the single-step OPF (``step_qp.device_bounds``)
    shed = jnp.where(energised[None, :], devices.shed_max[None, :] * forecast.demand, 0.0)
    zeros = jnp.zeros_like
    lo = jnp.concatenate([lo, zeros(battery), zeros(battery), zeros(shed)], axis=1)
    hi = jnp.concatenate([hi, battery, battery, shed], axis=1)
    return lo, jnp.maximum(hi, lo + step_qp.min_band(dtype))


def _objective(params, period_steps, dtype, end_price=None):
    """``(curvature [H V], linear [H V])`` in scaled units, each period weighted by its steps.

    ``end_price`` ($/MWh, or None: 0) values the energy the batteries hold at the horizon's
    end at what it will displace when discharged then, ``end_price`` per MWh delivered: the
    objective loses ``eta x end_price`` per MWh stored. As ``soc_end = soc_0 + sum_k n_k dt
    (eta charge_k - discharge_k / eta)``, that is ``end_price`` per MW of discharge and
    ``eta^2 x end_price`` back per MW of charge in every period (the period weight applied
    below), so a battery discharges now only above the end price and charges below it net of
    its round-trip losses."""
    grid, devices, consts = params.grid, params.devices, params.consts
    _, n_storage, n_bus, _ = _layout(params)
    c2, c1 = marginal_cost_coefficients(grid)
    renewable = devices.is_renewable
    renewable_curv, linear_curv = step_qp.regularising_curvatures(dtype)
    scale = step_qp.MW_SCALE / step_qp.COST_SCALE
    gen_curv = jnp.where(renewable, renewable_curv, c2) * 2.0 * step_qp.MW_SCALE * scale
    gen_lin = jnp.where(renewable, -consts.curtailment_cost, c1) * scale
    curvature = jnp.concatenate([gen_curv, jnp.full(2 * n_storage + n_bus, linear_curv)])
    eta = consts.storage_efficiency
    price = 0.0 if end_price is None else end_price
    storage_lin = jnp.concatenate(
        [jnp.full(n_storage, price), jnp.full(n_storage, -eta * eta * price)]
    )
    linear = jnp.concatenate([gen_lin, storage_lin * scale, jnp.full(n_bus, consts.voll * scale)])
    weight = jnp.asarray(period_steps, dtype)[:, None]
    return (weight * curvature[None, :]).ravel(), (weight * linear[None, :]).ravel()


def end_of_horizon_price(state, params, forecast: Forecast) -> jax.Array:
    """$/MWh an operator expects at the horizon's end: the copper-plate system lambda of the
    last period's forecast net load, met by the conventional units online now (the marginal
    unit's cost; the dearest online unit's when every unit is at a limit; VOLL when they
    cannot meet it)."""
    grid, devices, consts = params.grid, params.devices, params.consts
    renewable = devices.is_renewable
    online = (state.available > 0.0) & ~renewable
    lo = jnp.where(online, devices.pmin, 0.0)
    hi = jnp.where(online, devices.pmax, 0.0)
    c2, c1 = marginal_cost_coefficients(grid)
    renewable_supply = jnp.sum(jnp.where(renewable, forecast.available[-1], 0.0))
    net_load = jnp.sum(forecast.demand[-1]) + jnp.sum(grid.bus_gs) - renewable_supply
    p = economic_dispatch(net_load, lo, hi, c2, c1)
    price = system_lambda(p, lo, hi, c2, c1)
    dearest = jnp.max(jnp.where(online & (p > lo), c1 + 2.0 * c2 * p, 0.0))
    price = jnp.where(jnp.isnan(price), dearest, price)
    return jnp.where(net_load > jnp.sum(hi), consts.voll, price)


def _network_rows(state, params, forecast, energised, in_service, rating_margin):
    """Balance ``(A [H, H V], b [H])`` and flow limits ``(G [2 H L, H V], h [2 H L])``."""
    grid, devices = params.grid, params.devices
    n_gen, n_storage, n_bus, n_var = _layout(params)
    periods = forecast.demand.shape[0]
    load = jnp.where(energised[None, :], forecast.demand + grid.bus_gs[None, :], 0.0)  # [H, N]
    ptdf = outage_ptdf(grid, in_service, energised)
    storage_to_bus = jax.nn.one_hot(devices.storage_bus, n_bus).T  # [N, S]
    injection = jnp.concatenate(
        [grid.gen_to_bus, storage_to_bus, -storage_to_bus, jnp.eye(n_bus)], axis=1
    )
    flow_of_x = ptdf @ injection  # [L, V]
    sign = jnp.concatenate([jnp.ones(n_gen + n_storage), -jnp.ones(n_storage), jnp.ones(n_bus)])
    eye_h = jnp.eye(periods)
    balance = jnp.kron(eye_h, sign[None, :])  # [H, H V]
    flows = jnp.kron(eye_h, flow_of_x)  # [H L, H V]
    limit = (1.0 - rating_margin) * grid.branch_rating
    base = (load @ ptdf.T).ravel()  # [H L]
    limit = jnp.tile(limit, periods)
    del n_var
    ineq = jnp.concatenate([flows, -flows])
    rhs = jnp.concatenate([limit + base, limit - base])
    return balance, jnp.sum(load, axis=1), ineq, rhs


def _coupling_rows(state, params, period_steps):
    """Ramps between periods and battery energy in every period: ``(G, h)`` in MW / MWh."""
    devices, consts = params.devices, params.consts
    n_gen, n_storage, _, n_var = _layout(params)
    periods = len(period_steps)
    steps = np.asarray(period_steps, float)
    rows, rhs = [], []
    conventional = ~devices.is_renewable
    for k in range(1, periods):
        gap = 0.5 * (steps[k - 1] + steps[k])
        diff = jnp.zeros((n_gen, periods * n_var))
        diff = diff.at[:, k * n_var : k * n_var + n_gen].set(jnp.eye(n_gen))
        diff = diff.at[:, (k - 1) * n_var : (k - 1) * n_var + n_gen].add(-jnp.eye(n_gen))
        # A renewable has no ramp limit; its row's bound is one it can never reach (its output
        # moves within [0, Pmax]) rather than "infinite": qpax keeps every multiplier above
        # sqrt(eps), and that floor times a 1e6 MW slack alone made the float32 gap miss.
        band = jnp.where(conventional, devices.ramp * gap, devices.pmax + 1.0)
        rows += [diff, -diff]
        rhs += [band, band]
    eta, dt = consts.storage_efficiency, consts.step_hours
    # energy added to each battery by period j (MWh per MW of discharge / charge)
    per_period = jnp.zeros((n_storage, n_var))
    per_period = per_period.at[:, n_gen : n_gen + n_storage].set(-jnp.eye(n_storage) / eta)
    per_period = per_period.at[:, n_gen + n_storage : n_gen + 2 * n_storage].set(
        eta * jnp.eye(n_storage)
    )
    cumulative = jnp.tril(jnp.ones((periods, periods))) * (steps[None, :] * dt)  # [H, H]
    energy = jnp.kron(cumulative, per_period)  # [H S, H V]
    soc0 = jnp.tile(state.soc, periods)
    emax = jnp.tile(devices.storage_emax, periods)
    rows += [energy, -energy]
    rhs += [emax - soc0, soc0]
    return jnp.concatenate(rows), jnp.concatenate(rhs)


def lookahead_problem(
    state, params, forecast, period_steps, rating_margin, value_stored_energy: bool = False
):
    """The ``DenseQP`` of the scaled multi-period QP over ``x = [x_1 .. x_H]``, each
    ``x_k = [p (G), discharge (S), charge (S), shed (N)]``. ``value_stored_energy``: the
    energy left at the horizon's end is worth ``end_of_horizon_price`` (``_objective``)."""
    dtype = forecast.demand.dtype
    in_service = dispatch_topology(state.branch_in_service, state.branch_cooldown)
    energised = state_kept_buses(state, params, in_service)
    lo, hi = _period_bounds(state, params, forecast, energised, dtype)
    end_price = end_of_horizon_price(state, params, forecast) if value_stored_energy else None
    curvature, linear = _objective(params, period_steps, dtype, end_price)
    eq, eq_rhs, flows, flow_rhs = _network_rows(
        state, params, forecast, energised, in_service, rating_margin
    )
    coupling, coupling_rhs = _coupling_rows(state, params, period_steps)
    eye = jnp.eye(lo.size)
    ineq = jnp.concatenate([flows, coupling, eye, -eye])
    rhs = jnp.concatenate([flow_rhs, coupling_rhs, hi.ravel(), -lo.ravel()])
    scale = step_qp.MW_SCALE
    return step_qp.DenseQP(jnp.diag(curvature), linear, eq, eq_rhs / scale, ineq, rhs / scale)


def solve_lookahead(
    state,
    params,
    forecast: Forecast,
    period_steps=DEFAULT_PERIOD_STEPS,
    rating_margin: float = 0.05,
    *,
    value_stored_energy: bool = False,
    max_iter: int = MAX_ITER,
    solver_tol: float = step_qp.DENSE_SOLVER_TOL,
) -> step_qp.StepOPF:
    """The first period of the look-ahead OPF of one grid (vmap it over a batch). Where the QP
    does not converge the single-step OPF's dispatch is returned with ``converged`` False."""
    period_steps = check_period_steps(period_steps)
    if forecast.demand.shape[0] != len(period_steps):
        raise LookaheadProblemError(
            f"forecast has {forecast.demand.shape[0]} periods, period_steps {len(period_steps)}"
        )
    problem = lookahead_problem(
        state, params, forecast, period_steps, rating_margin, value_stored_energy
    )
    x, z, y = step_qp.solve_qp(problem, max_iter, solver_tol)
    residual = step_qp.kkt_residual(problem, x, z, y)
    ok = step_qp.residual_ok(residual, z)
    n_gen, n_storage, _, n_var = _layout(params)
    first = x[:n_var] * step_qp.MW_SCALE
    myopic = step_qp.solve_myopic_opf(state, params, rating_margin)
    battery = first[n_gen : n_gen + n_storage] - first[n_gen + n_storage : n_gen + 2 * n_storage]
    return step_qp.StepOPF(
        pg=jnp.where(ok, first[:n_gen], myopic.pg),
        storage=jnp.where(ok, battery, myopic.storage),
        shed=jnp.where(ok, jnp.maximum(first[n_gen + 2 * n_storage :], 0.0), myopic.shed),
        converged=ok,
        residual=residual,
    )
