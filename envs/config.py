"""Environment configuration: defaults, per-case device tables, validation.

``default_env_config()`` is the ``config.env`` sub-config; ``make_env`` in ``envs.env``
validates it (``validate_env_config``) and builds the static ``EnvParams``.

Per-case device choices (1-based MATPOWER bus numbers, as printed in the case files)
-------------------------------------------------------------------------------------
============  ==========================  ==========================  ===================
case          wind units (gen at bus)     solar units (gen at bus)    batteries (bus)
============  ==========================  ==========================  ===================
ieee14        3                           6                           9, 14
ieee30        22, 27                      23                          7, 21
ieee118       8, 19, 32, 55, 70, 92       15, 42, 74, 104, 110, 113   15, 49, 77, 92
============  ==========================  ==========================  ===================

Why these: in all three IEEE cases the generators at these buses are synchronous
condensers or small units that deliver little or no real power in the base case
(Pg = 0, Pmax = 100 MW for ieee14 and ieee118), so turning them into variable
renewable plants keeps the base-case balance intact while adding a realistic share
of variable supply (ieee14: 2 x 100 MW against 259 MW of load; ieee118: 12 x 100 MW
against 4,242 MW). The units are spread over the network (for ieee118 every
spectral region of the hierarchical layout gets wind and solar), so intermittency
stresses different corridors. A renewable unit keeps its case Pmax (scaled by
``renewable_capacity_scale``) as nameplate capacity, gets Pmin = 0 and zero
marginal cost. Batteries sit at load centres far from the slack bus (ieee14 bus 9
and the radial end bus 14), where they can relieve congestion. Together the batteries
deliver ``storage_power_frac`` (10%) of the base load for ``storage_hours`` (4 h).
The config can override the table (``wind_buses``, ``solar_buses``, ``storage_buses``).

Default layouts: ieee14 and ieee30 use ``per_node`` (one agent per bus with devices, at most
three action dims each, typed producer/consumer/prosumer/battery so one shared network
with a type one-hot serves them all, short credit paths from action to local flows);
ieee118 uses ``hierarchical`` with 4 spectral regions (strategic + 4 operational + safety:
per-bus agents would be 109). ``layout="microgrid"`` gives one agent per region.
"""

import os

import ml_collections

from envs.config_fields import (
    FINITE,
    NON_NEGATIVE,
    NON_POSITIVE,
    POSITIVE,
    UNIT_INTERVAL,
    Rule,
    at_least,
    check_fields,
    merged_onto,
    one_of,
)
from envs.powerflow.case import CaseError, check_case_source

CASE_DEVICES = {
    "ieee14": {
        "wind_buses": (3,),
        "solar_buses": (6,),
        "storage_buses": (9, 14),
        "layout": "per_node",
        "regions": 2,
    },
    "ieee30": {
        "wind_buses": (22, 27),
        "solar_buses": (23,),
        "storage_buses": (7, 21),
        "layout": "per_node",
        "regions": 2,
    },
    "ieee118": {
        "wind_buses": (8, 19, 32, 55, 70, 92),
        "solar_buses": (15, 42, 74, 104, 110, 113),
        "storage_buses": (15, 49, 77, 92),
        "layout": "hierarchical",
        "regions": 4,
    },
}

CASES = tuple(CASE_DEVICES)
LAYOUTS = ("auto", "per_node", "hierarchical", "microgrid")
PHYSICS = ("dc", "ac")
GEN_ACTION_MODES = ("setpoint", "delta")
REWARDS = ("layered", "operator")
UNIT_OFFERS = ("per_unit", "regional")
CHOSEN_SLOTS = ("all", "offers")
# What the single-step OPF does where no dispatch meets every branch limit (envs/opf/step_qp.py).
OPF_FALLBACKS = ("merit_order", "elastic")
# Which island stays energised when outages split the grid (envs/sim/islands.py).
ISLAND_RULES = ("slack", "largest_load")
# What a battery's zero bid values its stored energy at (envs/opf/storage_value.py).
STORAGE_BID_BASES = ("zero", "forecast_price", "forecast_band", "forecast_to_day_end")
# What the last step of an episode is worth beyond its own reward (envs/sim/transition.py).
EPISODE_ENDS = ("bootstrap", "stored_energy")
# What an agent's action means (envs/action_interface.py).
ACTION_INTERFACES = ("setpoints", "merit_residual", "bids")


def default_env_config() -> ml_collections.ConfigDict:
    """Defaults for one grid environment (the ``config.env`` sub-config)."""
    c = ml_collections.ConfigDict()
    c.case = "ieee14"  # a shipped name (CASES) or a path to a .m, .json or .nc case file
    c.layout = "auto"  # "auto" = the case's default from CASE_DEVICES
    c.regions = 0  # 0 = the case's default (2 for ieee14, 4 for ieee118)
    c.scenario = "mixed"  # "mixed" samples the scenario library, or one name
    c.physics = "dc"
    c.horizon = 288  # steps per episode (one day of 5-minute steps)
    c.step_minutes = 5.0
    c.gen_action = "setpoint"  # "setpoint": a in [-1,1] -> [Pmin,Pmax]; "delta": a * ramp
    # What the action means (envs/action_interface.py): "setpoints" (device controls as
    # above); "merit_residual" (a residual, times residual_scale, on the copper-plate economic
    # dispatch); "bids" (price offsets of up to bid_scale $/MWh on each unit's and battery's
    # offer, cleared by the single-step DC-OPF in every step).
    c.action_interface = "setpoints"
    c.residual_scale = 2.0
    c.bid_scale = 50.0  # a unit's bid range, $/MWh (0: the units offer at cost, only batteries bid)
    # A battery's bid range, $/MWh (0: bid_scale). Its bid is the value it puts on stored
    # energy: it charges below that price and discharges above it, so the range must reach
    # the units' marginal costs for a battery to hold energy at all.
    c.storage_bid_scale = 0.0
    # What a battery's bid is added to: "zero" (a zero bid is the myopic OPF, which gives stored
    # energy no value); "forecast_price", the price the operator's forecast expects at the
    # look-ahead's last period, 2 h ahead (envs/opf/storage_value.py), so a zero bid holds
    # energy for a dearer hour and the policy learns the departures from that value;
    # "forecast_band", the present price clipped to [eta^2, 1] x that price, so that a zero bid
    # does not cycle a battery for less than its round-trip losses; "forecast_to_day_end", the
    # forecast's price until the step it is taken at lies past the day's end, then the
    # evaluation's value of stored energy, so that a zero bid does not end the day holding
    # energy for the next morning (envs.opf.storage_value.day_end_offers). Like the bid
    # ranges, it means nothing under the other interfaces, so a preset's setting stays harmless
    # when a run switches the interface.
    c.storage_bid_base = "zero"
    # Who offers the units' prices under "bids" with the hierarchical layout: "per_unit", each
    # unit's regional (operational) agent; "regional", only the safety agent's two offsets per
    # region (its conventional and its renewable units), the operational agents choosing only
    # their batteries' bids (under bids a load's channel moves nothing: the clearing sheds).
    # On ieee118 the per-unit bids carried the quiet-day premium and the regional offsets the
    # savings (benchmarks/README.md, "Which agents carry the premium").
    c.unit_offers = "per_unit"
    # Under "bids", the clearing's extra rating margin on the step after a branch in service
    # ran above its rating (0: none). The one-step clearing cannot see that a loaded
    # neighbourhood turns an outage into a cascade; after an overload it keeps every branch
    # this much further below its rating, whatever was bid (benchmarks/README.md, "An alarm
    # margin in the clearing").
    c.alarm_margin = 0.0
    # What the single-step OPF (the bids' clearing and the myopic-OPF baseline alike) does in a
    # step where no dispatch within the units' ramps and the sheddable load meets every branch
    # limit: "elastic" solves again with each limit's excess priced above the value of lost
    # load, so the dispatch still relieves the branches it cannot clear; "merit_order" (the
    # rule before) drops the network and dispatches by cost alone: over 768 ieee14 development
    # days it blacked out 3 that the elastic solve keeps (benchmarks/README.md, "An elastic
    # fallback for the clearing").
    c.opf_fallback = "elastic"
    # Which island stays energised when outages split the grid: "largest_load", of the islands
    # holding an online conventional unit, the one with the most demand (DC physics only);
    # "slack" (the rule before, and AC's), the island joined to the slack bus, whatever the
    # others hold. The slack bus is the solve's reference, not a device: under "slack" a trip
    # that strands ieee14's slack unit blacks out the 13 other buses with their units online;
    # over 768 ieee14 development days "largest_load" kept 10 of the myopic OPF's 18 blackouts
    # alight (envs/sim/islands.py; benchmarks/README.md, "The island with the most load").
    c.island_rule = "largest_load"
    # Which of an agent's slots PPO samples and scores under "bids": "all" of the layout's, or
    # only those whose bid moves an offer ("offers": batteries, units where bid_scale > 0, the
    # regional channels over them, and the strategic signals). A load's slot never moves one
    # (the clearing sheds) nor does a unit's at bid_scale 0: sampled, they are noise in the
    # policy's ratios and, with shared parameters, in its gradient. Under the other interfaces
    # every slot sets a device, so "offers" keeps them all: a preset that samples only the
    # offers still runs with action_interface="setpoints".
    c.chosen_slots = "all"
    # Load: demand = case base load x peak_scale x daily/weekly profile x (1 + AR(1) noise).
    c.peak_scale = 1.0
    c.load_noise_std = 0.02  # stationary std of the AR(1) multiplicative noise
    c.load_noise_rho = 0.98  # AR(1) coefficient per step
    # Renewables.
    c.renewable_capacity_scale = 1.0
    c.wind_buses = ()  # override the case table (1-based bus numbers) when non-empty
    c.solar_buses = ()
    c.storage_buses = ()
    c.curtailment_cost = 20.0  # $/MWh of spilled renewable energy (lost credit)
    # Generators.
    c.ramp_default_frac_per_min = 0.02  # of Pmax per minute where the case has no ramp
    # Balance and frequency (quasi-steady state, see envs.env docstring).
    c.nominal_hz = 60.0
    c.droop = 0.05  # governor droop R (p.u.)
    c.load_damping = 1.5  # D: % load change per % frequency change
    c.freq_band_hz = 0.2  # |df| above this is a violation
    c.freq_collapse_hz = 2.5  # |df| above this is a system collapse (ends the episode)
    # Storage.
    c.storage_power_frac = 0.1  # total battery power as a fraction of total base load
    c.storage_hours = 4.0  # energy / power
    c.storage_efficiency = 0.95  # one-way (charge and discharge each)
    # Demand response.
    c.shed_max_fraction = 0.5  # curtailable share of each bus's load
    c.voll = 10_000.0  # value of lost load, $/MWh (shed and unserved)
    # Protection.
    c.overload_steps_to_trip = 3
    c.instant_trip_ratio = 1.5
    c.reconnect_steps = 12
    c.cascade_rounds = 4
    c.repair_steps = 48  # random outages last this long
    # Termination and reward.
    c.blackout_served_fraction = 0.5
    # "layered": w . (safety, cost, uptime) with a log-compressed cost (envs/sim/reward.py);
    # "operator": 1 - step cost / reference - violations, the operator's objective, linear.
    c.reward = "layered"
    c.reward_weights = (0.5, 0.3, 0.2)  # safety, cost, uptime (the layered reward only)
    # What the day's end is worth to the learner. "bootstrap": the critic's value of the last
    # state, as if the day went on. "stored_energy": the day ends there, and its last step is
    # credited the energy stored beyond the start (or charged the energy drawn) at the
    # evaluation's price of stored energy (envs.opf.storage_value.stored_energy_value), so that the
    # return is the evaluation's cost; the learner bootstraps nothing at the time limit. The
    # operator's reward only (its cost is linear in dollars).
    c.episode_end = "bootstrap"
    # Whether the observation carries the day's progress, t / horizon (else a zero in its
    # place). Under episode_end="bootstrap" the learner values the day as going on past its
    # time limit, so a feature counting toward that limit lets the policy and the critic
    # depend on an end the return never sees (Pardo et al., "Time Limits in Reinforcement
    # Learning", ICML 2018: bootstrap at a time limit, or observe the time left, not both).
    # The scenarios' clock hour is observed either way.
    c.observe_progress = True
    c.blackout_penalty = -10.0
    # Weight of the overload sum in the safety term. Protection already makes a lasting or a
    # large overload cost energy (a trip, then a cascade's shed and islanded load, priced at
    # VOLL by the operator's reward); this is the price of the overload itself on top.
    c.overload_weight = 1.0
    c.reserve_target = 0.1  # reserve margin (fraction of load) that earns full uptime credit
    # Hierarchy.
    c.strategic_period = 12  # the strategic agent's signals are held for this many steps
    # Optional Grid2Op-style chronics directory (load_p.csv, prod_p.csv); "" = synthetic profiles.
    c.chronics_dir = ""
    return c


# Fields whose default changed after they were added: a stored config that lacks one was
# stored before the field existed, and ran with this setting, not with today's default.
SETTING_BEFORE_THE_FIELD = {"opf_fallback": "merit_order", "island_rule": "slack"}


def with_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config`` with every field it lacks at its default: an env config stored before a
    field existed (a checkpoint's) builds as it ran, because a new field's default keeps the
    behaviour from before it (``SETTING_BEFORE_THE_FIELD`` where the default moved since)."""
    merged = merged_onto(default_env_config(), config)
    for name, setting in SETTING_BEFORE_THE_FIELD.items():
        if name not in config:
            merged[name] = setting
    return merged


RULES = {
    "layout": one_of(*LAYOUTS),
    "regions": at_least(0),
    "physics": one_of(*PHYSICS),
    "horizon": at_least(1),
    "step_minutes": POSITIVE,
    "gen_action": one_of(*GEN_ACTION_MODES),
    "action_interface": one_of(*ACTION_INTERFACES),
    "residual_scale": POSITIVE,
    "bid_scale": NON_NEGATIVE,
    "storage_bid_scale": NON_NEGATIVE,
    "storage_bid_base": one_of(*STORAGE_BID_BASES),
    "unit_offers": one_of(*UNIT_OFFERS),
    "chosen_slots": one_of(*CHOSEN_SLOTS),
    "alarm_margin": Rule(lambda v: FINITE.test(v) and 0 <= v < 0.5, "a number in [0, 0.5)"),
    "opf_fallback": one_of(*OPF_FALLBACKS),
    "island_rule": one_of(*ISLAND_RULES),
    "peak_scale": POSITIVE,
    "load_noise_std": NON_NEGATIVE,
    "load_noise_rho": Rule(lambda v: FINITE.test(v) and 0 <= v < 1, "a number in [0, 1)"),
    "renewable_capacity_scale": NON_NEGATIVE,
    "curtailment_cost": NON_NEGATIVE,
    "ramp_default_frac_per_min": POSITIVE,
    "nominal_hz": POSITIVE,
    "droop": POSITIVE,
    "load_damping": NON_NEGATIVE,
    "freq_band_hz": POSITIVE,
    "freq_collapse_hz": POSITIVE,
    "storage_power_frac": NON_NEGATIVE,
    "storage_hours": POSITIVE,
    "storage_efficiency": Rule(lambda v: FINITE.test(v) and 0 < v <= 1, "a number in (0, 1]"),
    "shed_max_fraction": UNIT_INTERVAL,
    "voll": POSITIVE,
    "overload_steps_to_trip": at_least(1),
    "instant_trip_ratio": POSITIVE,
    "reconnect_steps": at_least(1),
    "cascade_rounds": at_least(0),
    "repair_steps": at_least(1),
    "blackout_served_fraction": Rule(lambda v: FINITE.test(v) and 0 <= v < 1, "a number in [0, 1)"),
    "reward": one_of(*REWARDS),
    "episode_end": one_of(*EPISODE_ENDS),
    "observe_progress": one_of(True, False),
    "blackout_penalty": NON_POSITIVE,
    "overload_weight": NON_NEGATIVE,
    "reserve_target": NON_NEGATIVE,
    "strategic_period": at_least(1),
}


def validate_env_config(config: ml_collections.ConfigDict, scenario_names: tuple[str, ...]) -> None:
    """Raise ValueError with a clear message for any invalid field."""
    try:
        check_case_source(config.case)
    except CaseError as error:
        raise CaseError(f"env.case={config.case!r}: {error}") from None
    if config.scenario not in ("mixed", *scenario_names):
        allowed = ", ".join(("mixed", *scenario_names))
        raise ValueError(f"env.scenario={config.scenario!r} is invalid: allowed one of {allowed}")
    check_fields("env", config, RULES)
    if config.freq_collapse_hz <= config.freq_band_hz:
        raise ValueError(
            f"env.freq_collapse_hz={config.freq_collapse_hz} must exceed "
            f"env.freq_band_hz={config.freq_band_hz}"
        )
    if config.action_interface == "bids" and not (config.bid_scale or config.storage_bid_scale):
        raise ValueError(
            "env.bid_scale=0 and env.storage_bid_scale=0: no bid would move the dispatch "
            "(give the units or the batteries a range)"
        )
    if config.unit_offers == "regional" and config.action_interface != "bids":
        raise ValueError(
            f"env.unit_offers='regional' is for env.action_interface='bids' (it says who offers "
            f"the units' prices), not {config.action_interface!r}"
        )
    if config.alarm_margin and config.action_interface != "bids":
        raise ValueError(
            f"env.alarm_margin={config.alarm_margin} is a margin of the bids' clearing: it needs "
            f"env.action_interface='bids', not {config.action_interface!r}"
        )
    if config.get("island_rule", "slack") != "slack" and config.physics != "dc":
        raise ValueError(
            f"env.island_rule={config.island_rule!r} needs env.physics='dc' (the AC solve "
            "references every island to the slack bus): set env.island_rule='slack' for AC"
        )
    if config.get("episode_end", "bootstrap") != "bootstrap" and config.reward != "operator":
        raise ValueError(
            f"env.episode_end={config.episode_end!r} credits dollars at the day's end: it needs "
            f"env.reward='operator', not {config.reward!r}"
        )
    if config.unit_offers == "regional" and not config.bid_scale:
        raise ValueError("env.unit_offers='regional' with env.bid_scale=0: no unit offer moves")
    weights = tuple(config.reward_weights)
    if len(weights) != 3 or not all(FINITE.test(w) and w >= 0 for w in weights):
        raise ValueError(
            f"env.reward_weights={weights!r} is invalid: allowed three numbers >= 0 "
            "(safety, cost, uptime)"
        )
    for name in ("wind_buses", "solar_buses", "storage_buses"):
        buses = tuple(config[name])
        if not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in buses):
            raise ValueError(
                f"env.{name}={buses!r} is invalid: allowed 1-based bus numbers (integers >= 1)"
            )
    if config.chronics_dir and not os.path.isdir(os.path.expanduser(config.chronics_dir)):
        raise ValueError(f"env.chronics_dir={config.chronics_dir!r} is not a directory")
