"""Copper-plate economic dispatch by merit order (equal incremental cost), pure JAX.

What a market clearing or an operator's economic-dispatch tool does before any network check:
serve a net load ``R`` with the online conventional units at the least generation cost, each
unit inside the band it can reach this step. With quadratic costs ``c2 p^2 + c1 p`` the
optimum runs every unit at one common marginal cost ``lam`` (the system lambda)::

    p_g(lam) = clip((lam - c1_g) / (2 c2_g), lo_g, hi_g),     sum_g p_g(lam) = R

``p(lam)`` is piecewise linear and nondecreasing, with kinks where a unit reaches a limit, so
``lam`` is found exactly by evaluating every kink (``envs.sim.dispatch``'s kink walk):
no iterations, no tolerance, jit- and vmap-friendly. Piecewise-linear cost curves are
approximated by the chord through their end breakpoints plus a small curvature (an order of
merit, not an exact LP: the exact network-constrained reference is ``envs.opf.dc_opf``).

The network is ignored on purpose: this is the economic prior a learned policy corrects for
congestion, contingencies and storage (``learner.prior``), and the ``merit_order`` baseline.
"""

import jax
import jax.numpy as jnp

from envs.sim.dispatch import reachable_band, response_at_kinks

# $/MW^2h given to units with linear costs so each has a unique output at every lambda; small
# against the cases' quadratic terms (ieee14: 0.01-0.25), so the merit order is unchanged.
MIN_CURVATURE = 1e-4
EPS = 1e-6


def marginal_cost_coefficients(grid) -> tuple[jax.Array, jax.Array]:
    """``(c2 [G], c1 [G])`` of each unit's (approximated) quadratic cost in $/MW^2h, $/MWh."""
    x, y = grid.gen_cost_pwl_mw, grid.gen_cost_pwl_usd
    span = x[:, -1] - x[:, 0]
    chord = jnp.where(span > 0, (y[:, -1] - y[:, 0]) / jnp.where(span > 0, span, 1.0), 0.0)
    c2 = jnp.where(grid.gen_cost_is_pwl, 0.0, grid.gen_cost_c2)
    c1 = jnp.where(grid.gen_cost_is_pwl, chord, grid.gen_cost_c1)
    return jnp.maximum(c2, MIN_CURVATURE), c1


def economic_dispatch(net_load, lo, hi, c2, c1) -> jax.Array:
    """Least-cost outputs [G] MW with ``lo <= p <= hi`` summing to ``net_load`` (clipped to
    ``[sum lo, sum hi]`` when it cannot be met). Units with ``lo = hi`` (offline: 0) stay put.

    Args: ``net_load []`` MW; ``lo, hi, c2, c1 [G]`` (``c2 > 0``).
    """
    slope = 1.0 / (2.0 * c2)  # MW per $/MWh of system lambda
    at_zero = -c1 * slope  # unclipped output at lambda = 0
    covered = jnp.clip(net_load, jnp.sum(lo), jnp.sum(hi)) - jnp.sum(at_zero)
    return response_at_kinks(at_zero, covered, slope, lo, hi)


def system_lambda(p, lo, hi, c2, c1) -> jax.Array:
    """Marginal cost $/MWh of the units strictly inside their band (NaN when none is)."""
    inside = (p > lo + 1e-6) & (p < hi - 1e-6)
    marginal = c1 + 2.0 * c2 * p
    count = jnp.sum(inside)
    return jnp.where(count > 0, jnp.sum(jnp.where(inside, marginal, 0.0)) / count, jnp.nan)


def merit_order_targets(state, params) -> jax.Array:
    """Unit targets [G] MW of the copper-plate economic dispatch for the latest demand
    (persistence forecast): renewables at their availability (curtailed only when they exceed
    the load above the conventional units' minimum), conventional units by merit order inside
    the band each can reach this step; batteries idle, no shedding. The ``merit_order``
    baseline, and the fallback of a grid whose single-step OPF does not solve."""
    devices, grid = params.devices, params.grid
    renewable = devices.is_renewable
    online = (state.available > 0.0) & ~renewable
    lo, hi = reachable_band(state.pg, online, devices)
    load = jnp.sum(state.demand) + jnp.sum(grid.bus_gs)
    supply = jnp.sum(jnp.where(renewable, state.available, 0.0))
    use = jnp.clip((load - jnp.sum(lo)) / jnp.maximum(supply, EPS), 0.0, 1.0)
    c2, c1 = marginal_cost_coefficients(grid)
    conventional = economic_dispatch(load - use * supply, lo, hi, c2, c1)
    return jnp.where(renewable, use * state.available, conventional)
