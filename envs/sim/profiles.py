"""Exogenous processes: demand profile and noise, wind and solar availability.

All functions are pure and elementwise, so they vmap over grids. The random processes take
their standard-normal draws as arguments (``envs.sim.exogenous.draw_step_noise`` makes
all of a step's at once).

Demand (per bus, MW)::

    d_n(t) = base_pd_n * peak_scale * load_scale * profile(t) * (1 + x_n(t))
    profile(t) = weekday factor * min(1, 0.58 + 0.22 g(h; 10, 3.5) + 0.42 g(h; 19, 2.5))

with ``g(h; c, w) = exp(-((h - c) / w)^2)`` (morning and evening peaks; weekends at 88%),
so the profile peaks at 1.0 on a weekday evening: ``peak_scale`` scales the case's base
load at that peak. The noise ``x_n`` is AR(1) in time, ``x' = rho x + sqrt(1 - rho^2) sigma e``
with ``e = (e_common + e_bus) / sqrt(2)``: half of the variance is shared by all buses
(weather drives everyone), half is local. Its stationary std is ``sigma``.

Wind (per unit): wind speed ``v`` follows an Ornstein-Uhlenbeck process toward 8 m/s
(time constant 2 h, stationary std 3 m/s x volatility), through a generic turbine power
curve: 0 below 3 m/s cut-in, cubic up to rated 12 m/s, 1 up to 25 m/s cut-out, 0 above.

Solar (per unit): clear-sky bell ``sin(pi (h - 6) / 14)^1.5`` between 06:00 and 20:00
times ``1 - 0.8 c`` where cloud cover ``c`` in [0, 1] is AR(1) (time constant 1 h) around 0.3.
"""

import jax
import jax.numpy as jnp


def hour_and_day(step_of_week: jax.Array, step_hours: float) -> tuple[jax.Array, jax.Array]:
    """Hour of day in [0, 24) and day of week in {0..6} (0 = Monday) for a step counter."""
    hours = step_of_week.astype(jnp.float32) * step_hours
    return jnp.mod(hours, 24.0), jnp.mod(jnp.floor(hours / 24.0), 7.0)


def _bump(hour: jax.Array, centre: float, width: float) -> jax.Array:
    return jnp.exp(-(((hour - centre) / width) ** 2))


def load_profile(step_of_week: jax.Array, step_hours: float) -> jax.Array:
    """Demand multiplier in (0, 1], 1.0 at the weekday evening peak."""
    hour, day = hour_and_day(step_of_week, step_hours)
    daily = 0.58 + 0.22 * _bump(hour, 10.0, 3.5) + 0.42 * _bump(hour, 19.0, 2.5)
    weekday = jnp.where(day >= 5.0, 0.88, 1.0)
    return weekday * jnp.minimum(daily, 1.0)


def ar1_step(x: jax.Array, noise: jax.Array, rho: float, std: float) -> jax.Array:
    """One AR(1) step with stationary standard deviation ``std``."""
    return rho * x + jnp.sqrt(1.0 - rho**2) * std * noise


def load_noise_step(
    x: jax.Array, common: jax.Array, local: jax.Array, rho: float, std: float
) -> jax.Array:
    """Spatially and temporally correlated multiplicative demand noise [N]; ``common`` (one
    value) and ``local`` ([N]) are standard normal draws."""
    return ar1_step(x, (common + local) / jnp.sqrt(2.0), rho, std)


def wind_power_curve(speed: jax.Array) -> jax.Array:
    """Fraction of rated power produced at wind speed ``speed`` (m/s)."""
    cut_in, rated, cut_out = 3.0, 12.0, 25.0
    partial = ((speed - cut_in) / (rated - cut_in)) ** 3
    frac = jnp.where(speed < rated, partial, 1.0)
    return jnp.where((speed < cut_in) | (speed > cut_out), 0.0, frac)


def wind_speed_step(
    speed: jax.Array, noise: jax.Array, volatility: jax.Array, step_hours: float
) -> jax.Array:
    """Ornstein-Uhlenbeck wind speed update (mean 8 m/s, time constant 2 h); ``noise`` is
    standard normal, one per unit."""
    mean, tau_h, std = 8.0, 2.0, 3.0
    rho = jnp.exp(-step_hours / tau_h)
    new = mean + rho * (speed - mean) + jnp.sqrt(1.0 - rho**2) * std * volatility * noise
    return jnp.clip(new, 0.0, 30.0)


def solar_clear_sky(step_of_week: jax.Array, step_hours: float) -> jax.Array:
    """Clear-sky fraction of nameplate in [0, 1] (daylight bell, 06:00-20:00)."""
    hour, _ = hour_and_day(step_of_week, step_hours)
    phase = jnp.clip((hour - 6.0) / 14.0, 0.0, 1.0)
    return jnp.maximum(jnp.sin(jnp.pi * phase), 0.0) ** 1.5


def cloud_step(
    cloud: jax.Array, noise: jax.Array, volatility: jax.Array, step_hours: float
) -> jax.Array:
    """AR(1) cloud cover in [0, 1] around 0.3 (time constant 1 h); ``noise`` is standard
    normal, one per unit."""
    mean, tau_h, std = 0.3, 1.0, 0.25
    rho = jnp.exp(-step_hours / tau_h)
    new = mean + rho * (cloud - mean) + jnp.sqrt(1.0 - rho**2) * std * volatility * noise
    return jnp.clip(new, 0.0, 1.0)


def solar_fraction(step_of_week: jax.Array, cloud: jax.Array, step_hours: float) -> jax.Array:
    """Available fraction of solar nameplate given cloud cover."""
    return solar_clear_sky(step_of_week, step_hours) * (1.0 - 0.8 * cloud)
