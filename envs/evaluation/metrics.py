"""Per-episode totals of an evaluation (NumPy) and their summary against the oracle."""

from __future__ import annotations

import numpy as np

from envs.evaluation.rollout import Rollout
from envs.opf.storage_value import stored_energy_value
from envs.types import EnvParams


def episode_metrics(record: Rollout, params: EnvParams) -> dict[str, np.ndarray]:
    """Per-episode totals [B] of a rollout (NumPy).

    ``cost`` ($) = the env's step cost ``info["cost"]`` (generation, VOLL x voluntary and
    under-frequency shedding, curtailment, and the slack bus's energy on the slack unit's cost
    curve) + only what the env leaves out of it: VOLL x energy lost in islands and VOLL x the
    demand left unserved after a blackout ended the episode early (so a blacked-out, shorter
    episode never looks cheaper) + ``stored_energy_cost``, the energy the batteries gave up
    over the episode (``stored_start_mwh`` at reset less ``stored_end_mwh`` after the last
    step) at ``envs.opf.storage_value.stored_energy_value``: emptying them is not free, and energy
    left in them is worth that much. ``slack_cost`` is reported for reference (already in
    ``cost``).
    """
    consts = params.consts
    info = {k: np.asarray(v, np.float64) for k, v in record.info.items()}
    alive = np.asarray(record.alive, np.float64)
    terminated = np.asarray(record.terminated)
    after = after_blackout(terminated)
    not_served_after = np.sum(after * info["demand_mw"] * consts.step_hours, 0)
    island = np.sum(alive * info["island_unserved_mwh"], 0) + not_served_after
    stored_start = np.asarray(record.soc0, np.float64).sum(-1)
    stored_end = at_last_step(np.asarray(record.soc, np.float64).sum(-1), alive)
    stored_cost = stored_energy_cost(stored_start, stored_end, stored_energy_value(params))
    return {
        "cost": np.sum(alive * info["cost"], 0) + consts.voll * island + stored_cost,
        "slack_cost": np.sum(alive * info["slack_cost"], 0),
        "unserved_mwh": np.sum(alive * info["unserved_energy_mwh"], 0) + not_served_after,
        "gen_cost": np.sum(alive * info["gen_cost"], 0),
        "shed_mwh": np.sum(alive * info["shed_mwh"], 0),
        "curtailed_mwh": np.sum(alive * info["curtailed_mwh"], 0),
        "overload_steps": np.sum(alive * (info["n_overloaded"] > 0), 0),
        "trips": np.sum(alive * info["trips"], 0),
        "freq_violations": np.sum(alive * (np.abs(info["freq_dev_hz"]) > consts.freq_band_hz), 0),
        "blackouts": np.any(terminated & (alive > 0), axis=0).astype(np.float64),
        "steps": np.sum(alive, 0),
        "stored_energy_cost": stored_cost,
        "stored_end_mwh": stored_end,
        "stored_start_mwh": stored_start,
    }


def after_blackout(terminated) -> np.ndarray:
    """[T, B] 1.0 for the steps after the one whose blackout ended the episode, else 0.0: the
    evaluation charges their demand unserved at VOLL."""
    terminated = np.asarray(terminated)
    return (np.cumsum(terminated, axis=0) > terminated).astype(np.float64)


def at_last_step(series, alive) -> np.ndarray:
    """[B] ``series`` [T, B] at each episode's last step (``alive`` [T, B] marks its steps)."""
    series = np.asarray(series)
    last = np.maximum(np.sum(alive, 0).astype(int) - 1, 0)
    return series[last, np.arange(series.shape[1])]


def stored_energy_cost(start_mwh, end_mwh, value_per_mwh: float) -> np.ndarray:
    """$ of the energy the batteries gave up over an episode (negative: they gained)."""
    return value_per_mwh * (np.asarray(start_mwh, np.float64) - np.asarray(end_mwh, np.float64))


def oracle_metrics(solutions, inputs, model) -> dict[str, np.ndarray]:
    """Per-episode totals of the oracle's dispatches (``solutions`` of ``inputs``, its
    ``EpisodeInputs``, with ``model``) in the units of ``episode_metrics``."""
    dt_hours = model.dt_hours
    n_steps = np.array([len(s.step_cost) for s in solutions], float)
    zeros = np.zeros(len(solutions))
    stored_start = np.array([np.sum(x.soc0_mwh) for x in inputs], np.float64)
    stored_end = np.array([np.sum(s.storage_energy_mwh[-1]) for s in solutions])
    stored_cost = stored_energy_cost(stored_start, stored_end, model.stored_energy_value)
    return {
        "cost": np.array([s.total_cost for s in solutions]) + stored_cost,
        "gen_cost": np.array([np.sum(s.generation_cost_per_h) * dt_hours for s in solutions]),
        "unserved_mwh": np.array([np.sum(s.shed_mw) * dt_hours for s in solutions]),
        "shed_mwh": np.array([np.sum(s.shed_mw) * dt_hours for s in solutions]),
        "overload_steps": zeros,
        "trips": zeros,
        "freq_violations": zeros,
        "blackouts": zeros,
        "steps": n_steps,
        "stored_energy_cost": stored_cost,
        "stored_end_mwh": stored_end,
        "stored_start_mwh": stored_start,
        "solve_seconds": np.array([s.solve_seconds for s in solutions]),
    }


def summarise(metrics: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """Means over episodes per method, the optimality gap against the oracle, per-episode cost."""
    reference = metrics.get("oracle", {}).get("cost")
    out = {}
    for name, values in metrics.items():
        row = {k: float(np.mean(v)) for k, v in values.items()}
        if reference is not None:
            gaps = values["cost"] / np.maximum(reference, 1e-9) - 1.0
            row["gap_percent"] = float(100.0 * np.mean(gaps))
        else:
            row["gap_percent"] = None  # no oracle: no gap (JSON null)
        row["episode_cost"] = [float(c) for c in values["cost"]]
        row["per_episode"] = {k: [float(x) for x in v] for k, v in values.items()}
        if reference is not None:  # episodes where the env's accounting beat the bound
            row["episodes_below_oracle"] = int(np.sum(values["cost"] < reference * (1 - 1e-6)))
        out[name] = row
    return out


def against_best_causal(summary: dict[str, dict], baselines) -> str | None:
    """Marks every row of one scenario's ``summary`` with its cost against the best causal
    baseline; returns that baseline's name (None when no baseline ran).

    The best causal baseline is the cheapest, by mean cost over the scenario's episodes, of
    ``baselines``: methods that decide from what an operator knows at the time (no baseline
    here sees the future; the look-ahead reads the forecast). It is the reference a policy
    has to beat, scenario by scenario: the myopic OPF on quiet days, the look-ahead where the
    next hours differ from now. ``vs_best_causal`` is a ratio of mean costs, as the learning
    benchmark's targets are; the oracle's row shows how much any causal method could save.
    """
    ran = [name for name in baselines if name in summary]
    if not ran:
        return None
    best = min(ran, key=lambda name: summary[name]["cost"])
    reference = max(summary[best]["cost"], 1e-9)
    for row in summary.values():
        row["vs_best_causal"] = row["cost"] / reference
        row["best_causal"] = best
    return best
