"""Pytrees shared between the environment and its users (learner, actors, evaluation).

Axis convention everywhere in gridpod: ``[T, B, A, ...]`` — time, batch of grids,
agents. A single environment works on one grid; batching is ``jax.vmap``.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import struct


class Observation(NamedTuple):
    """What the agents see after a step (one grid)."""

    agent_obs: jax.Array  # [A, O] float32, per-agent local view, padded to O
    global_state: jax.Array  # [S] float32, full state for centralised critics


class EnvSpec(NamedTuple):
    """Static description of an environment's agents and spaces (NumPy / Python values only)."""

    num_agents: int  # A
    obs_dim: int  # O
    global_dim: int  # S
    action_dim: int  # U, actions are in [-1, 1]
    num_agent_types: int
    agent_type: np.ndarray  # [A] int32, index into agent_type_names
    agent_mask: np.ndarray  # [A] bool, False for padded agents
    action_mask: np.ndarray  # [A, U] bool, False for padded action dimensions
    agent_type_names: tuple[str, ...]
    agent_type_gamma: tuple[float, ...]  # per-type discount (the hierarchical horizons)
    agent_type_lambda: tuple[float, ...]  # per-type GAE lambda


# ----------------------------------------------------------------------------------------------
# Environment internals (owned by envs.env and its helpers). Shapes: N buses, L branches,
# G generators, S batteries, K regions, E scheduled events, A agents, U action dims.
# ----------------------------------------------------------------------------------------------


@struct.dataclass
class EpisodeScenario:
    """What a scenario drew for one episode (sampled in reset, fixed for the episode)."""

    scenario_id: jax.Array  # [] int32, index into envs.sim.scenarios.scenario_names()
    load_scale: jax.Array  # [] multiplier on the demand profile
    renewable_scale: jax.Array  # [] multiplier on renewable availability
    wind_volatility: jax.Array  # [] multiplier on the wind-speed OU noise
    cloud_volatility: jax.Array  # [] multiplier on the cloud AR noise
    line_failure_rate: jax.Array  # [] probability per branch per step of a random outage
    gen_failure_rate: jax.Array  # [] probability per generator per step of a random outage
    start_step: jax.Array  # [] int32, steps since Monday 00:00 at t = 0
    event_time: jax.Array  # [E] int32, step at which the outage starts (-1 = unused slot)
    event_kind: jax.Array  # [E] int32, 0 none, 1 branch, 2 generator
    event_index: jax.Array  # [E] int32, branch or generator index
    event_duration: jax.Array  # [E] int32, steps the element stays out


@struct.dataclass
class EnvState:
    """Dynamic state of one grid. Static data lives in EnvParams, never here."""

    t: jax.Array  # [] int32, step within the episode
    pg: jax.Array  # [G] MW delivered by each generator (renewables: after curtailment)
    soc: jax.Array  # [S] MWh stored
    load_noise: jax.Array  # [N] AR(1) multiplicative demand noise
    wind_speed: jax.Array  # [G] m/s (used for wind units only)
    cloud: jax.Array  # [G] cloud attenuation in [0, 1] (used for solar units only)
    branch_cooldown: jax.Array  # [L] int32 steps until a tripped branch recloses (0 = closed)
    overload_count: jax.Array  # [L] int32 consecutive steps above rating
    gen_cooldown: jax.Array  # [G] int32 steps until a failed generator returns
    freq_dev: jax.Array  # [] Hz
    signals: jax.Array  # [K] strategic signals held between strategic decisions
    demand: jax.Array  # [N] MW demand this step (before shedding)
    shed: jax.Array  # [N] MW shed by demand response
    available: jax.Array  # [G] MW available (renewables: weather; conventional: Pmax if online)
    storage_p: jax.Array  # [S] MW battery output (+ discharge, - charge)
    flow: jax.Array  # [L] MW from-end flow after protection
    theta: jax.Array  # [N] rad
    energised: jax.Array  # [N] bool, connected to the slack bus
    branch_in_service: jax.Array  # [L] bool
    served_fraction: jax.Array  # [] served load / demand
    vm: jax.Array  # [N] p.u. voltage magnitude (1.0 in DC mode)
    episode: EpisodeScenario


@dataclasses.dataclass(frozen=True)
class EnvConstants:
    """Scalar settings resolved from the config (static: hashed by jit)."""

    physics: str
    horizon: int
    step_hours: float
    gen_action: str
    peak_scale: float
    load_noise_std: float
    load_noise_rho: float
    curtailment_cost: float
    nominal_hz: float
    droop: float
    load_damping: float
    freq_band_hz: float
    freq_collapse_hz: float
    storage_efficiency: float
    voll: float
    overload_steps_to_trip: int
    instant_trip_ratio: float
    reconnect_steps: int
    cascade_rounds: int
    repair_steps: int
    blackout_served_fraction: float
    blackout_penalty: float
    reserve_target: float
    strategic_period: int
    reference_cost: float  # $/h of serving the base load; normalises the cost term
    n_chronics_steps: int  # 0 = synthetic profiles
    reward: str = "layered"  # envs.config.REWARDS
    action_interface: str = "setpoints"  # envs.config.ACTION_INTERFACES
    residual_scale: float = 2.0
    bid_scale: float = 50.0
    storage_bid_scale: float = 50.0  # $/MWh range of a battery's bid (the config's 0: bid_scale)
    overload_weight: float = 1.0  # of the overload sum in the safety term
    alarm_margin: float = 0.0  # extra rating margin of the bids' clearing after an overload
    opf_fallback: str = "elastic"  # envs.config.OPF_FALLBACKS
    island_rule: str = "largest_load"  # envs.config.ISLAND_RULES
    storage_bid_base: str = "zero"  # envs.config.STORAGE_BID_BASES
    episode_end: str = "bootstrap"  # envs.config.EPISODE_ENDS
    # $/MWh of the energy stored at the day's end (storage_value.stored_energy_value) where
    # episode_end="stored_energy" or storage_bid_base="forecast_to_day_end" uses it; else 0
    end_energy_value: float = 0.0
    observe_progress: bool = True  # t / horizon in the observation (else a zero there)


@struct.dataclass
class DeviceParams:
    """Per-device arrays derived from the Grid and the case's device table."""

    is_renewable: jax.Array  # [G] bool
    is_wind: jax.Array  # [G] bool
    is_solar: jax.Array  # [G] bool
    pmin: jax.Array  # [G] MW (0 for renewables)
    pmax: jax.Array  # [G] MW (nameplate for renewables)
    ramp: jax.Array  # [G] MW per step
    storage_bus: jax.Array  # [S] int32
    storage_pmax: jax.Array  # [S] MW
    storage_emax: jax.Array  # [S] MWh
    shed_max: jax.Array  # [N] MW-fraction of demand that may be shed (0 where no load)
    load_ref: jax.Array  # [N] MW used to normalise bus demand in observations


@struct.dataclass
class LayoutArrays:
    """An agent layout as data: action scatter and observation gather indices."""

    ctrl_index: jax.Array  # [A, U] int32 into the control vector (C = dummy slot)
    action_mask: jax.Array  # [A, U] bool
    # [A, U] bool: the slots the agents choose (spec.action_mask), within action_mask. The rest
    # carry what the env sets there (under bids, the cleared dispatch); env.unit_offers.
    chosen_mask: jax.Array
    ctrl_sources: jax.Array  # [C, M] int32 into the flat actions (A * U = a zero): the inverse
    obs_index: jax.Array  # [A, Of] int32 into the feature vector (F = zero slot)
    agent_const: jax.Array  # [A, Oc] constant per-agent features (type one-hot)
    group_to_device: jax.Array  # [Cg, Cd] regional control channels -> device channels
    reward_weights: jax.Array  # [A, 3] weights on (safety, cost, uptime)
    region_of_bus: jax.Array  # [N] int32
    region_of_gen: jax.Array  # [G] int32
    boundary: jax.Array  # [K, L] +1/-1 where a branch leaves/enters region k, else 0
    agent_type: jax.Array  # [A] int32
    agent_mask: jax.Array  # [A] bool
    n_regions: int = struct.field(pytree_node=False)
    n_signals: int = struct.field(pytree_node=False)
    name: str = struct.field(pytree_node=False)
    agent_type_names: tuple = struct.field(pytree_node=False)
    agent_type_gamma: tuple = struct.field(pytree_node=False)
    agent_type_lambda: tuple = struct.field(pytree_node=False)


@struct.dataclass
class ScenarioTable:
    """The scenario library as arrays (one row per scenario name)."""

    probs: jax.Array  # [n_scenarios] sampling probabilities used by reset
    ranges: jax.Array  # [n_scenarios, n_fields, 2] uniform (low, high) per field
    critical_branches: jax.Array  # [k] int32 most loaded branches in the base case
    large_gens: jax.Array  # [k] int32 largest conventional generators


@struct.dataclass
class EnvParams:
    """Everything static about an environment instance (shared by all grids in a batch)."""

    grid: Any  # envs.powerflow.grid.Grid
    devices: DeviceParams
    layout: LayoutArrays
    scenarios: ScenarioTable
    chronics_load: jax.Array  # [T, N] MW per bus (T = 0 without chronics)
    chronics_renewable: jax.Array  # [T, G] MW available per generator
    consts: EnvConstants = struct.field(pytree_node=False)
