"""The multi-agent grid environment: pure functions over (key, state, action, params).

    env, params = make_env(config.env)          # envs.config.default_env_config()
    spec = env.spec(params)                     # envs.types.EnvSpec (NumPy / Python only)
    obs, state = env.reset(key, params)         # scenario drawn from env.scenario
    obs, state = env.reset_to_scenario(key, params, envs.sim.scenarios.scenario_id("peak_demand"))
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

Shapes for one grid (batch with ``jax.vmap(env.step, in_axes=(0, 0, 0, None))``):
``obs.agent_obs [A, O]``, ``obs.global_state [S]``, ``action [A, U]`` in [-1, 1] (padded
dims ignored, see ``spec.action_mask``; what it means is ``env.action_interface``: device
setpoints, a merit-order residual or bids into the single-step OPF, ``envs.action_interface``),
``reward [A]`` in [-10, 1] under ``env.reward="layered"`` and [-50, 1] under ``"operator"``
(``envs.sim.reward``; the operator's day-end credit, below, is added after that clip),
``terminated`` / ``truncated`` bool scalars, ``info``: float32 scalars named in
``INFO_KEYS`` plus ``info["final_obs"]`` (the observation the step ended in, before any auto-reset).
``EnvParams`` (``envs.types``) holds everything static: the Grid, device arrays, the agent
layout as index arrays, the scenario table, optional chronics and scalar constants;
``EnvState`` holds only per-grid dynamic arrays (about 0.8 KB for ieee14, 6 KB for ieee118).

One step is one dispatch interval (``step_minutes``, 5 min). Inside a step:

1. weather and demand advance (``envs.sim.profiles``), branches reclose or fail, scheduled
   outages of the episode's scenario start or end (``envs.sim.exogenous``);
2. the action interface turns the agents' actions into setpoints (bids are cleared by the
   single-step DC-OPF); the setpoints are scattered into the control vector (``envs.sim.layouts``); a control
   fed by a NaN or infinite action entry holds instead (units at their present output, no
   battery power, no shedding; ``info["nonfinite_actions"]`` counts such entries), so a bad
   action never reaches the state; the controls are turned
   into unit setpoints, curtailment, battery power and load shedding; AGC balances within
   the units' reachable bands (``envs.sim.dispatch``);
3. the DC power flow runs with the branch mask, protection trips overloaded branches and the
   flow is recomputed, up to ``cascade_rounds`` rounds (``envs.sim.protection``); buses cut off
   from the slack lose their load and generation; primary response picks up the residual
   within each unit's [Pmin, Pmax], under-frequency load shedding covers a deficit beyond
   that and over-frequency protection (renewable spill, generation trips) a surplus; the
   frequency deviation follows from the residual;
4. reward terms (``envs.sim.reward``), termination (blackout: served share of demand below
   ``blackout_served_fraction`` or |df| above ``freq_collapse_hz``), truncation at
   ``horizon`` (under ``env.episode_end="stored_energy"`` that step's reward also credits
   the energy stored beyond the start, ``bootstraps_time_limit``); a finished episode is
   reset in place (``info["final_obs"]`` keeps the observation it ended with).

Balance identity (every step, MW; ``info`` has each term)::

    sum(gen) + sum(battery) + slack_mw = sum(served load) + sum(shunt Gs on energised buses)
                                         + losses_mw
    served load + shed + UFLS + load in islands = demand

where ``gen`` includes the primary (droop) response, ``losses_mw`` is 0 in DC and
``slack_mw`` is numerical residue in DC (the losses in AC). ``info["cost"]`` prices every MW:
generation, VOLL x (voluntary shedding + UFLS), curtailment, and the slack bus's energy on the
slack unit's cost curve (``slack_cost``); only load lost in islands is left to the safety term
(and to evaluation, ``envs.evaluation.metrics.episode_metrics``).
In AC mode
(``physics="ac"``, ``envs.powerflow.network_flow``) voltages are solved with Newton-Raphson, voltage
excursions and non-convergence enter the safety term, and the reset observation comes from
the AC power flow of the intact network.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from envs import action_interface
from envs.batching import compute_where
from envs.config import validate_env_config
from envs.opf import storage_value
from envs.powerflow import network_flow
from envs.powerflow.case import load_case
from envs.powerflow.dcpf import dc_power_flow
from envs.powerflow.grid import build_grid, generation_cost
from envs.sim import dispatch as dsp
from envs.sim import exogenous as exo
from envs.sim import scenarios
from envs.sim.observation import observe
from envs.sim.params import build_params
from envs.sim.transition import transition
from envs.types import EnvParams, EnvSpec, EnvState, Observation

INFO_KEYS = (
    "cost",
    "gen_cost",
    "shed_cost",
    "curtailment_cost",
    "slack_cost",
    "ufls_cost",
    "unserved_energy_mwh",
    "island_unserved_mwh",
    "ufls_mwh",
    "overfreq_mw",
    "shed_mwh",
    "curtailed_mwh",
    "n_overloaded",
    "max_loading",
    "freq_dev_hz",
    "trips",
    "branches_out",
    "clipped_mw",
    "nonfinite_actions",
    "reward_safety",
    "reward_cost",
    "reward_uptime",
    "served_fraction",
    "demand_mw",
    "served_mw",
    "gen_mw",
    "storage_mw",
    "shunt_mw",
    "slack_mw",
    "losses_mw",
    "voltage_violation_pu",
    "pf_converged",
    "primary_mw",
    "reserve_margin",
    "blackout",
    "scenario_id",
)


def _chronics_for(config, grid):
    if not config.chronics_dir:
        return None
    from envs.sim.chronics import chronics_for_grid, load_chronics

    return chronics_for_grid(load_chronics(config.chronics_dir), grid)


def make_env(config: ml_collections.ConfigDict) -> tuple["GridEnv", EnvParams]:
    """Validate the ``env`` config and build the environment and its static params."""
    validate_env_config(config, scenarios.scenario_names())
    if config.physics == "ac":
        try:
            import envs.powerflow.acpf  # noqa: F401
        except ImportError as err:
            raise ValueError("physics='ac' needs envs.powerflow.acpf (ac_power_flow)") from err
    case = load_case(config.case)
    grid = build_grid(case)
    params = build_params(config, case, grid, generation_cost, _chronics_for(config, grid))
    consts = params.consts
    if consts.episode_end == "stored_energy" or consts.storage_bid_base == "forecast_to_day_end":
        # The evaluation's own price: the learner's return is then the cost it is judged on,
        # and the bids' base values the energy left at the day's end as the evaluation does.
        value = storage_value.stored_energy_value(params)
        params = params.replace(consts=dataclasses.replace(consts, end_energy_value=value))
    return GridEnv(), params


class GridEnv:
    """Stateless: every method is a pure function of its arguments (jit/vmap friendly)."""

    def spec(self, params: EnvParams) -> EnvSpec:
        layout = params.layout
        obs_dim = layout.obs_index.shape[1] + layout.agent_const.shape[1]
        return EnvSpec(
            num_agents=int(layout.ctrl_index.shape[0]),
            obs_dim=int(obs_dim),
            global_dim=int(self._feature_dim(params)),
            action_dim=int(layout.ctrl_index.shape[1]),
            num_agent_types=len(layout.agent_type_names),
            agent_type=np.asarray(layout.agent_type, np.int32),
            agent_mask=np.asarray(layout.agent_mask, bool),
            action_mask=np.asarray(layout.chosen_mask, bool),
            agent_type_names=tuple(layout.agent_type_names),
            agent_type_gamma=tuple(float(g) for g in layout.agent_type_gamma),
            agent_type_lambda=tuple(float(x) for x in layout.agent_type_lambda),
        )

    @staticmethod
    def _feature_dim(params: EnvParams) -> int:
        dummy = jax.eval_shape(lambda p: reset_to_scenario(jax.random.PRNGKey(0), p, 0), params)
        return dummy[0].global_state.shape[0]

    def reset(self, key: jax.Array, params: EnvParams) -> tuple[Observation, EnvState]:
        """Start an episode of a scenario drawn from ``params.scenarios.probs``."""
        key_pick, key_episode = jax.random.split(key)
        probs = params.scenarios.probs
        scenario = jax.random.choice(key_pick, probs.shape[0], p=probs)
        return reset_to_scenario(key_episode, params, scenario)

    def reset_to_scenario(self, key, params, scenario) -> tuple[Observation, EnvState]:
        """Start an episode of a given scenario index (see ``envs.sim.scenarios.scenario_id``)."""
        return reset_to_scenario(key, params, scenario)

    def observe(self, state: EnvState, params: EnvParams) -> Observation:
        return observe(state, params)

    def setpoints(self, action, state: EnvState, params: EnvParams) -> jax.Array:
        """The setpoint action ``[A, U]`` that ``step`` applies for ``action`` under
        ``params.consts.action_interface`` (``envs.action_interface``): ``action`` itself, the
        merit-order residual, or the bids cleared by the single-step DC-OPF."""
        return action_interface.setpoints(action, state, params)

    @staticmethod
    def bootstraps_time_limit(params: EnvParams) -> bool:
        """Whether a learner values the state an episode's time limit cuts (its critic, as if
        the day went on); under ``env.episode_end="stored_energy"`` the day ends there and
        its last reward credits the stored energy instead."""
        return params.consts.episode_end == "bootstrap"

    def step(self, key, state: EnvState, action, params: EnvParams):
        """Advance one interval under the action interface; a finished episode is reset in
        place."""
        key_step, key_reset = split_step_key(key)
        action = action_interface.setpoints(action, state, params)
        next_state, rewards, terminated, info = transition(key_step, state, action, params)
        final_obs = observe(next_state, params)
        truncated = (next_state.t >= params.consts.horizon) & ~terminated
        done = terminated | truncated
        # Under vmap only the finished grids of the batch compute their reset.
        obs_out, state_out = compute_where(
            lambda k, p: self.reset(k, p), done, (final_obs, next_state), key_reset, params
        )
        info = dict(info)
        info["final_obs"] = final_obs
        return obs_out, state_out, rewards, terminated, truncated, info


def split_step_key(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """How ``GridEnv.step`` spends its key: ``(transition's draws, auto-reset's draws)``. A
    caller that steps without the reset (the baselines' evaluation rollout) uses the first, so
    its episodes see the same weather and outages as the env's."""
    key_step, key_reset = jax.random.split(key)
    return key_step, key_reset


# ------------------------------------------------------------------------------------------
# Reset
# ------------------------------------------------------------------------------------------


def _initial_dispatch(demand, available, params):
    """Renewables at availability (spilled if they exceed the net load), the rest spread."""
    devices = params.devices
    conv = ~devices.is_renewable
    pmin = jnp.where(conv, devices.pmin, 0.0)
    pmax = jnp.where(conv, devices.pmax, 0.0)
    total = jnp.sum(demand) + jnp.sum(params.grid.bus_gs)
    renew_total = jnp.sum(available)
    use = jnp.clip((total - jnp.sum(pmin)) / jnp.maximum(renew_total, 1e-6), 0.0, 1.0)
    renewable = available * use
    lam = (total - jnp.sum(renewable) - jnp.sum(pmin)) / jnp.maximum(jnp.sum(pmax - pmin), 1e-6)
    return jnp.where(conv, pmin + jnp.clip(lam, 0.0, 1.0) * (pmax - pmin), renewable)


def _initial_flow(grid, p_bus, demand, physics: str) -> tuple[jax.Array, ...]:
    """``(flow, theta, energised, vm)`` of the intact network at reset from the env's own
    physics (AC: solved voltages and MVA loading); DC takes the fixed-topology solve, cheaper
    than the outage-aware one a step uses."""
    if physics == "ac":
        q_bus = -network_flow.reactive_demand(grid, demand)
        ac = network_flow.ac_network_flow(grid, p_bus, q_bus, jnp.ones(grid.n_branch, bool))
        return ac.flow_mw, ac.theta, ac.bus_energised, ac.vm
    dc = dc_power_flow(grid, p_bus)
    return dc.flow_mw, dc.theta, dc.bus_energised, jnp.ones_like(dc.theta)


def reset_to_scenario(key, params: EnvParams, scenario) -> tuple[Observation, EnvState]:
    grid, consts, devices = params.grid, params.consts, params.devices
    key_episode, key_weather = jax.random.split(key)
    dims = (grid.n_branch, grid.n_gen, 1.0 / consts.step_hours)
    episode = scenarios.sample_episode(
        key_episode, params.scenarios.ranges, scenario, params.scenarios, dims, consts.horizon
    )
    weather = exo.initial_weather(key_weather, grid.n_bus, grid.n_gen, consts)
    t0 = jnp.int32(0)
    inputs = exo.exogenous_at(t0, weather, episode, params)
    available = jnp.where(devices.is_renewable, inputs.renewable_available, devices.pmax)
    pg = _initial_dispatch(inputs.demand, inputs.renewable_available, params)
    p_bus = grid.gen_to_bus @ pg - inputs.demand
    flow, theta, energised, vm = _initial_flow(grid, p_bus, inputs.demand, consts.physics)
    n_storage = devices.storage_bus.shape[0]
    state = EnvState(
        t=t0,
        pg=pg,
        soc=dsp.initial_soc(devices),
        load_noise=weather.load_noise,
        wind_speed=weather.wind_speed,
        cloud=weather.cloud,
        branch_cooldown=jnp.zeros(grid.n_branch, jnp.int32),
        overload_count=jnp.zeros(grid.n_branch, jnp.int32),
        gen_cooldown=jnp.zeros(grid.n_gen, jnp.int32),
        freq_dev=jnp.float32(0.0),
        signals=jnp.zeros(params.layout.n_signals, jnp.float32),
        demand=inputs.demand,
        shed=jnp.zeros(grid.n_bus, jnp.float32),
        available=available,
        storage_p=jnp.zeros(n_storage, jnp.float32),
        flow=flow,
        theta=theta,
        energised=energised,
        branch_in_service=jnp.ones(grid.n_branch, bool),
        served_fraction=jnp.float32(1.0),
        vm=vm,
        episode=episode,
    )
    return observe(state, params), state
