"""Exogenous inputs of a step: demand, renewable availability, outages (see envs.profiles)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs import profiles, scenarios


class Weather(NamedTuple):
    load_noise: jax.Array  # [N]
    wind_speed: jax.Array  # [G]
    cloud: jax.Array  # [G]


class Exogenous(NamedTuple):
    demand: jax.Array  # [N] MW
    renewable_available: jax.Array  # [G] MW (0 for conventional units)


def step_weather(key, weather: Weather, episode, consts) -> Weather:
    key_load, key_wind, key_cloud = jax.random.split(key, 3)
    return Weather(
        load_noise=profiles.load_noise_step(
            key_load, weather.load_noise, consts.load_noise_rho, consts.load_noise_std
        ),
        wind_speed=profiles.wind_speed_step(
            key_wind, weather.wind_speed, episode.wind_volatility, consts.step_hours
        ),
        cloud=profiles.cloud_step(
            key_cloud, weather.cloud, episode.cloud_volatility, consts.step_hours
        ),
    )


def initial_weather(key, n_bus: int, n_gen: int, consts) -> Weather:
    key_load, key_wind, key_cloud = jax.random.split(key, 3)
    return Weather(
        load_noise=consts.load_noise_std * jax.random.normal(key_load, (n_bus,)),
        wind_speed=jnp.clip(8.0 + 3.0 * jax.random.normal(key_wind, (n_gen,)), 0.0, 30.0),
        cloud=jax.random.uniform(key_cloud, (n_gen,), minval=0.0, maxval=0.6),
    )


def exogenous_at(t, weather: Weather, episode, params) -> Exogenous:
    """Demand and renewable availability at episode step ``t``."""
    consts, devices, grid = params.consts, params.devices, params.grid
    step_of_week = episode.start_step + t
    scale = consts.peak_scale * episode.load_scale
    if consts.n_chronics_steps > 0:
        row = jnp.mod(step_of_week, consts.n_chronics_steps)
        demand = params.chronics_load[row] * scale * (1.0 + weather.load_noise)
        chronic = params.chronics_renewable[row] * episode.renewable_scale
    else:
        profile = profiles.load_profile(step_of_week, consts.step_hours)
        demand = grid.bus_pd * scale * profile * (1.0 + weather.load_noise)
        chronic = None
    wind = profiles.wind_power_curve(weather.wind_speed)
    solar = profiles.solar_fraction(step_of_week, weather.cloud, consts.step_hours)
    fraction = jnp.where(devices.is_wind, wind, jnp.where(devices.is_solar, solar, 0.0))
    available = devices.pmax * episode.renewable_scale * fraction
    if chronic is not None:
        available = jnp.where(devices.is_renewable, chronic, 0.0)
    return Exogenous(jnp.maximum(demand, 0.0), available)


class Topology(NamedTuple):
    branch_in_service: jax.Array  # [L] bool before protection acts this step
    branch_cooldown: jax.Array  # [L] int32
    gen_online: jax.Array  # [G] bool
    gen_cooldown: jax.Array  # [G] int32


def step_topology(key, t, branch_cooldown, gen_cooldown, episode, params) -> Topology:
    """Reclose tripped branches whose cooldown ran out, apply scheduled and random outages."""
    consts, grid = params.consts, params.grid
    branch_forced, gen_forced = scenarios.active_outages(episode, t, grid.n_branch, grid.n_gen)
    key_line, key_gen = jax.random.split(key)
    cool = jnp.maximum(branch_cooldown - 1, 0)
    line_fail = jax.random.bernoulli(key_line, episode.line_failure_rate, (grid.n_branch,))
    cool = jnp.where(line_fail & (cool == 0) & ~branch_forced, consts.repair_steps, cool)
    gen_cool = jnp.maximum(gen_cooldown - 1, 0)
    gen_fail = jax.random.bernoulli(key_gen, episode.gen_failure_rate, (grid.n_gen,))
    gen_cool = jnp.where(gen_fail & (gen_cool == 0) & ~gen_forced, consts.repair_steps, gen_cool)
    return Topology(
        branch_in_service=(cool == 0) & ~branch_forced,
        branch_cooldown=cool,
        gen_online=(gen_cool == 0) & ~gen_forced,
        gen_cooldown=gen_cool,
    )
