"""Scenario library: reproducible generators of episodes.

A scenario is one row of uniform ranges over the fields below; ``sample_episode`` draws an
``EpisodeScenario`` from a row with a key, so an episode is a pure function of
``(key, scenario)``. ``env.scenario = "mixed"`` samples the row uniformly in every reset;
a name fixes it. Evaluation uses ``eval_keys(name, n)``: fixed held-out seeds per scenario,
disjoint from anything a training run derives from its own seed (``eval_keys(name, n, seed)``
gives other held-out sets, e.g. for ``benchmarks.learning``).

=========================  ==================================================================
scenario                   defining property
=========================  ==================================================================
normal                     load x0.95-1.05, occasional maintenance window (one branch out
                           for 2-6 h), rare random line failures
peak_demand                load x1.15-1.30, episode starts 14:00-17:00 on a weekday
equipment_failure          N-1 to N-3: 1-3 branches (and up to one generator) fail in the
                           first half of the episode and stay out; random unit failures
renewable_intermittency    renewable capacity x1.5-2, wind and cloud volatility x2-3
cascading_failure          stressed start (load x1.20-1.35) and the most loaded branch of
                           the base case tripped within the first hour (the trigger)
emergency_response         sudden loss of one of the two largest non-slack generators
                           (and a second branch) between 1 h and 12 h, for the rest of the day
=========================  ==================================================================

Random line/generator failures use the rate fields (probability per element per step)
and last ``env.repair_steps`` steps.
"""

import jax
import jax.numpy as jnp
import numpy as np

from envs.types import EpisodeScenario

N_EVENTS = 4  # scheduled outage slots per episode

FIELDS = (
    "load_scale",
    "renewable_scale",
    "wind_volatility",
    "cloud_volatility",
    "line_failure_rate",
    "gen_failure_rate",
    "start_hour",
    "weekday_only",  # 1 = draw a Monday-Friday start
    "n_line_events",  # floor of the draw
    "n_gen_events",
    "event_start",  # fraction of the horizon
    "event_duration",  # fraction of the horizon
    "trigger_critical",  # 1 = first line event hits the most loaded base-case branch
    "target_large_gen",  # 1 = generator events hit the largest non-slack units
)

_BASE = {
    "load_scale": (0.95, 1.05),
    "renewable_scale": (1.0, 1.0),
    "wind_volatility": (1.0, 1.0),
    "cloud_volatility": (1.0, 1.0),
    "line_failure_rate": (5e-6, 5e-6),
    "gen_failure_rate": (0.0, 0.0),
    "start_hour": (0.0, 24.0),
    "weekday_only": (0.0, 0.0),
    "n_line_events": (0.0, 0.0),
    "n_gen_events": (0.0, 0.0),
    "event_start": (0.0, 1.0),
    "event_duration": (1.0, 1.0),
    "trigger_critical": (0.0, 0.0),
    "target_large_gen": (0.0, 0.0),
}

SCENARIOS = {
    "normal": {"n_line_events": (0.0, 1.5), "event_duration": (24 / 288, 72 / 288)},
    "peak_demand": {
        "load_scale": (1.15, 1.30),
        "start_hour": (14.0, 17.0),
        "weekday_only": (1.0, 1.0),
    },
    "equipment_failure": {
        "gen_failure_rate": (2e-5, 1e-4),
        "n_line_events": (1.0, 3.999),
        "n_gen_events": (0.0, 1.999),
        "event_start": (0.02, 0.5),
    },
    "renewable_intermittency": {
        "renewable_scale": (1.5, 2.0),
        "wind_volatility": (2.0, 3.0),
        "cloud_volatility": (2.0, 3.0),
    },
    "cascading_failure": {
        "load_scale": (1.20, 1.35),
        "n_line_events": (1.0, 1.0),
        "event_start": (1 / 288, 12 / 288),
        "trigger_critical": (1.0, 1.0),
    },
    "emergency_response": {
        "n_gen_events": (1.0, 1.0),
        "n_line_events": (1.0, 1.0),
        "event_start": (12 / 288, 144 / 288),
        "target_large_gen": (1.0, 1.0),
    },
}

EVAL_SEED_BASE = 7_000_000  # held-out evaluation seeds live far from training seeds


def scenario_names() -> tuple[str, ...]:
    return tuple(SCENARIOS)


def scenario_id(name: str) -> int:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; allowed: {scenario_names()}")
    return scenario_names().index(name)


def scenario_ranges() -> np.ndarray:
    """[n_scenarios, n_fields, 2] uniform ranges."""
    rows = []
    for name in scenario_names():
        merged = {**_BASE, **SCENARIOS[name]}
        rows.append([merged[f] for f in FIELDS])
    return np.asarray(rows, np.float32)


def scenario_probs(selection: str) -> np.ndarray:
    """Sampling probabilities for ``env.scenario`` ("mixed" or one name)."""
    n = len(SCENARIOS)
    if selection == "mixed":
        return np.full(n, 1.0 / n, np.float32)
    return np.eye(n, dtype=np.float32)[scenario_id(selection)]


def eval_keys(name: str, n: int, seed: int = 0) -> jax.Array:
    """``n`` fixed held-out reset keys for scenario ``name`` ([n, 2] uint32).

    ``seed`` picks another held-out set (0: the evaluation suite's own): a benchmark that
    chooses settings evaluates on a set of its own, so nothing is tuned to the suite's episodes.
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f"eval seed must be in [0, 2**32), got {seed}")
    base = jax.random.PRNGKey(EVAL_SEED_BASE + 1000 * scenario_id(name))
    if seed:
        base = jax.random.fold_in(base, seed)
    return jax.random.split(base, n)


def _draw_fields(key: jax.Array, ranges: jax.Array) -> dict:
    u = jax.random.uniform(key, (ranges.shape[0],))
    values = ranges[:, 0] + u * (ranges[:, 1] - ranges[:, 0])
    return dict(zip(FIELDS, values, strict=True))


def _start_step(key: jax.Array, f: dict, steps_per_hour: float) -> jax.Array:
    day_any = jax.random.randint(key, (), 0, 7)
    day = jnp.where(f["weekday_only"] > 0.5, jnp.mod(day_any, 5), day_any)
    return (day * 24 * steps_per_hour + f["start_hour"] * steps_per_hour).astype(jnp.int32)


def _events(key, f, horizon, n_branch, n_gen, critical_branches, large_gens):
    """Fill the N_EVENTS slots: line events first, then generator events."""
    key_t, key_line, key_gen, key_big = jax.random.split(key, 4)
    slot = jnp.arange(N_EVENTS)
    n_line = jnp.floor(f["n_line_events"]).astype(jnp.int32)
    n_gen = jnp.floor(f["n_gen_events"]).astype(jnp.int32)
    is_line = slot < n_line
    is_gen = (slot >= n_line) & (slot < n_line + n_gen)
    spread = jax.random.uniform(key_t, (N_EVENTS,), minval=0.0, maxval=0.25)
    start = jnp.clip(f["event_start"] + jnp.where(slot > 0, spread, 0.0), 0.0, 1.0)
    time = jnp.maximum(1, (start * horizon).astype(jnp.int32))
    line = jax.random.randint(key_line, (N_EVENTS,), 0, n_branch)
    line = jnp.where((slot == 0) & (f["trigger_critical"] > 0.5), critical_branches[0], line)
    gen = jax.random.randint(key_gen, (N_EVENTS,), 0, n_gen)
    big = large_gens[jax.random.randint(key_big, (N_EVENTS,), 0, large_gens.shape[0])]
    gen = jnp.where(f["target_large_gen"] > 0.5, big, gen)
    kind = jnp.where(is_line, 1, jnp.where(is_gen, 2, 0)).astype(jnp.int32)
    duration = jnp.maximum(1, (f["event_duration"] * horizon).astype(jnp.int32))
    return (
        jnp.where(kind > 0, time, -1),
        kind,
        jnp.where(is_line, line, gen).astype(jnp.int32),
        jnp.full((N_EVENTS,), duration, jnp.int32),
    )


def sample_episode(
    key: jax.Array, ranges: jax.Array, scenario: jax.Array, table, dims: tuple, horizon: int
) -> EpisodeScenario:
    """Draw one episode of scenario index ``scenario`` from its ranges row.

    ``table``: the ScenarioTable (critical branches, large generators);
    ``dims``: (n_branch, n_gen, steps_per_hour).
    """
    n_branch, n_gen, steps_per_hour = dims
    key_fields, key_start, key_events = jax.random.split(key, 3)
    f = _draw_fields(key_fields, ranges[scenario])
    time, kind, index, duration = _events(
        key_events, f, horizon, n_branch, n_gen, table.critical_branches, table.large_gens
    )
    return EpisodeScenario(
        scenario_id=jnp.asarray(scenario, jnp.int32),
        load_scale=f["load_scale"],
        renewable_scale=f["renewable_scale"],
        wind_volatility=f["wind_volatility"],
        cloud_volatility=f["cloud_volatility"],
        line_failure_rate=f["line_failure_rate"],
        gen_failure_rate=f["gen_failure_rate"],
        start_step=_start_step(key_start, f, steps_per_hour),
        event_time=time,
        event_kind=kind,
        event_index=index,
        event_duration=duration,
    )


def active_outages(episode: EpisodeScenario, t: jax.Array, n_branch: int, n_gen: int):
    """Scheduled outages in force at step ``t``: (branch_out [L] bool, gen_out [G] bool)."""
    live = (t >= episode.event_time) & (t < episode.event_time + episode.event_duration)
    live = live & (episode.event_time >= 0)
    line_hit = live & (episode.event_kind == 1)
    gen_hit = live & (episode.event_kind == 2)
    branch_out = (
        jnp.zeros(n_branch, jnp.int32).at[episode.event_index].max(line_hit.astype(jnp.int32))
    )
    gen_out = jnp.zeros(n_gen, jnp.int32).at[episode.event_index].max(gen_hit.astype(jnp.int32))
    return branch_out > 0, gen_out > 0
