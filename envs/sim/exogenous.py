"""Exogenous inputs of a step: demand, renewable availability, outages (see envs.sim.profiles)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.sim import profiles, scenarios


class Weather(NamedTuple):
    load_noise: jax.Array  # [N]
    wind_speed: jax.Array  # [G]
    cloud: jax.Array  # [G]


class Exogenous(NamedTuple):
    demand: jax.Array  # [N] MW
    renewable_available: jax.Array  # [G] MW (0 for conventional units)


class StepNoise(NamedTuple):
    """Every random number a step uses."""

    load_common: jax.Array  # [] standard normal, shared by all buses
    load_local: jax.Array  # [N] standard normal
    wind: jax.Array  # [G] standard normal
    cloud: jax.Array  # [G] standard normal
    line_uniform: jax.Array  # [L] in [0, 1): random branch failures
    gen_uniform: jax.Array  # [G] in [0, 1): random unit failures


def draw_step_noise(key, grid) -> StepNoise:
    """All of a step's random numbers from one uniform draw.

    One ``jax.random`` call instead of nine: each call is a threefry loop of its own in the
    compiled step, and fewer loops are fewer small kernels on XLA:CPU. Normals come
    from the uniforms the way ``jax.random.normal`` makes them (``sqrt(2) erfinv(u)``, u in
    (-1, 1)), failures are ``uniform < rate`` as in ``jax.random.bernoulli``.
    """
    n_bus, n_gen = grid.n_bus, grid.n_gen
    n_normal = 1 + n_bus + 2 * n_gen
    lowest = jnp.nextafter(jnp.float32(-1.0), jnp.float32(1.0))
    u = jax.random.uniform(key, (n_normal + grid.n_branch + n_gen,), jnp.float32, lowest)
    normal = jnp.sqrt(jnp.float32(2.0)) * jax.lax.erf_inv(u[:n_normal])
    uniform = 0.5 * (u[n_normal:] + 1.0)
    return StepNoise(
        load_common=normal[0],
        load_local=normal[1 : 1 + n_bus],
        wind=normal[1 + n_bus : 1 + n_bus + n_gen],
        cloud=normal[1 + n_bus + n_gen :],
        line_uniform=uniform[: grid.n_branch],
        gen_uniform=uniform[grid.n_branch :],
    )


def step_weather(noise: StepNoise, weather: Weather, episode, consts) -> Weather:
    return Weather(
        load_noise=profiles.load_noise_step(
            weather.load_noise,
            noise.load_common,
            noise.load_local,
            consts.load_noise_rho,
            consts.load_noise_std,
        ),
        wind_speed=profiles.wind_speed_step(
            weather.wind_speed, noise.wind, episode.wind_volatility, consts.step_hours
        ),
        cloud=profiles.cloud_step(
            weather.cloud, noise.cloud, episode.cloud_volatility, consts.step_hours
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


def step_topology(noise: StepNoise, t, branch_cooldown, gen_cooldown, episode, params) -> Topology:
    """Reclose tripped branches whose cooldown ran out, apply scheduled and random outages."""
    consts, grid = params.consts, params.grid
    branch_forced, gen_forced = scenarios.active_outages(episode, t, grid.n_branch, grid.n_gen)
    cool = jnp.maximum(branch_cooldown - 1, 0)
    line_fail = noise.line_uniform < episode.line_failure_rate
    cool = jnp.where(line_fail & (cool == 0) & ~branch_forced, consts.repair_steps, cool)
    gen_cool = jnp.maximum(gen_cooldown - 1, 0)
    gen_fail = noise.gen_uniform < episode.gen_failure_rate
    gen_cool = jnp.where(gen_fail & (gen_cool == 0) & ~gen_forced, consts.repair_steps, gen_cool)
    return Topology(
        branch_in_service=(cool == 0) & ~branch_forced,
        branch_cooldown=cool,
        gen_online=(gen_cool == 0) & ~gen_forced,
        gen_cooldown=gen_cool,
    )
