"""The evaluation report: PNG figures of one policy episode and the scenario table, one HTML page.

Figures (``envs.render``): the grid at the episode's most loaded step, the power balance,
the angle (DC) or voltage (AC) spread with the frequency, the agents' actions, cost and gap
per scenario against the baselines and the oracle, and the training curves read from the
run's TensorBoard event files.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from envs import render

FIGURES = ("grid", "balance", "profile", "actions", "scenarios", "training")
TABLE_METRICS = (
    "cost",
    "gap_percent",
    "unserved_mwh",
    "overload_steps",
    "trips",
    "freq_violations",
    "blackouts",
)
MAX_TRAINING_PANELS = 12
TRAINING_TAGS = (  # drawn first when the run logged them
    "episode/return",
    "episode/cost",
    "episode/blackout",
    "episode/unserved_energy_mwh",
    "episode/n_overloaded",
    "episode/trips",
    "learner/policy_loss",
    "learner/value_loss",
    "learner/entropy",
    "learner/approx_kl",
    "learner/explained_variance",
)


def _episode(record, episode: int):
    """One episode's arrays [T, ...], cut to the steps that belong to it."""
    alive = np.asarray(record.alive)[:, episode]
    n_steps = max(int(alive.sum()), 1)
    return lambda x: np.asarray(x)[:n_steps, episode]


def _grid_figure(env_params, record, episode: int):
    grid, pick = env_params.grid, _episode(record, episode)
    rating = np.asarray(grid.branch_rating)
    loading = np.abs(pick(record.flow)) / rating
    worst = int(np.argmax(loading.max(axis=1)))
    dc = env_params.consts.physics == "dc"
    values = pick(record.theta) if dc else pick(record.vm)
    return render.plot_grid(
        np.asarray(grid.bus_xy),
        np.asarray(grid.branch_from),
        np.asarray(grid.branch_to),
        loading[worst],
        pick(record.branch_in_service)[worst],
        values[worst],
        bus_label="voltage angle (rad)" if dc else "voltage magnitude (p.u.)",
        title=f"policy, step {worst + 1} (most loaded)",
    )


def _balance_figure(env_params, record, episode: int):
    devices, pick = env_params.devices, _episode(record, episode)
    pg = pick(record.pg)
    wind, solar = np.asarray(devices.is_wind), np.asarray(devices.is_solar)
    conventional = ~np.asarray(devices.is_renewable)
    generation = {
        "conventional": pg[:, conventional].sum(axis=1),
        "wind": pg[:, wind].sum(axis=1),
        "solar": pg[:, solar].sum(axis=1),
    }
    return render.plot_power_balance(
        env_params.consts.step_hours,
        pick(record.demand).sum(axis=1),
        generation,
        storage_mw=pick(record.storage_p).sum(axis=1),
        shed_mw=pick(record.shed).sum(axis=1),
    )


def _profile_figure(env_params, record, episode: int):
    consts, pick = env_params.consts, _episode(record, episode)
    dc = consts.physics == "dc"
    band = (consts.nominal_hz - consts.freq_band_hz, consts.nominal_hz + consts.freq_band_hz)
    return render.plot_bus_profile(
        consts.step_hours,
        pick(record.theta) if dc else pick(record.vm),
        "voltage angle (rad)" if dc else "|V| (p.u.)",
        frequency_hz=consts.nominal_hz + pick(record.freq_dev),
        frequency_band_hz=band,
    )


def _actions_figure(env_params, record, episode: int):
    layout = env_params.layout
    types = np.asarray(layout.agent_type)
    names = [f"{layout.agent_type_names[t]} {i}" for i, t in enumerate(types)]
    return render.plot_action_heatmap(
        _episode(record, episode)(record.action), names, np.asarray(layout.action_mask)
    )


def _training_figure(run_dir: Path | None):
    scalars = {}
    if run_dir is not None and Path(run_dir).is_dir():
        scalars = render.read_scalars(run_dir)
    headline = [tag for tag in TRAINING_TAGS if tag in scalars]
    rest = sorted(tag for tag in scalars if tag not in headline and tag.count("/") == 1)
    chosen = (headline + rest)[:MAX_TRAINING_PANELS]
    return render.plot_training_curves({tag: scalars[tag] for tag in chosen})


def _or_nan(value) -> float:
    return np.nan if value is None else float(value)


def _scenario_table(results: dict) -> dict:
    return {
        scenario: {
            method: {"mean_cost": row["cost"], "gap_percent": _or_nan(row["gap_percent"])}
            for method, row in rows.items()
        }
        for scenario, rows in results["scenarios"].items()
    }


def _html_table(rows: dict, metrics) -> str:
    head = "".join(f"<th>{html.escape(m)}</th>" for m in ("method", *metrics))
    body = []
    for method, row in rows.items():
        values = [row.get(m) for m in metrics]
        cells = "".join(f"<td>{'–' if v is None else f'{v:.2f}'}</td>" for v in values)
        body.append(f"<tr><td>{html.escape(method)}</td>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _html_page(results: dict, scenario: str, episode: int, images: dict[str, str]) -> str:
    sections = [
        f"<h2>{html.escape(name)}</h2>{_html_table(rows, TABLE_METRICS)}"
        for name, rows in results["scenarios"].items()
    ]
    figures = "".join(
        f'<figure><img src="{src}" alt="{name}"><figcaption>{name}</figcaption></figure>'
        for name, src in images.items()
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>gridpod evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:3px 8px;text-align:right}} img{{max-width:100%}}</style>
</head><body>
<h1>Evaluation of {html.escape(str(results["checkpoint"]))}</h1>
<p>case {html.escape(str(results["case"]))}, {results["episodes"]} episodes per scenario,
{results["horizon"]} steps each. Gap = cost / oracle cost - 1 (%). Figures: policy, scenario
{html.escape(scenario)}, episode {episode}.</p>
{"".join(sections)}
{figures}
</body></html>
"""


def write_report(report_dir, results, env_params, scenario, records, episode, run_dir) -> Path:
    """Write every figure of ``FIGURES`` as PNG and ``report.html`` referencing them."""
    report_dir = Path(report_dir)
    policy = records["policy"]
    makers = {
        "grid": lambda: _grid_figure(env_params, policy, episode),
        "balance": lambda: _balance_figure(env_params, policy, episode),
        "profile": lambda: _profile_figure(env_params, policy, episode),
        "actions": lambda: _actions_figure(env_params, policy, episode),
        "scenarios": lambda: render.plot_scenario_bars(_scenario_table(results)),
        "training": lambda: _training_figure(run_dir),
    }
    images = {}
    for name in FIGURES:
        render.save_figure(makers[name](), report_dir / f"{name}.png")
        images[name] = f"{name}.png"
    page = report_dir / "report.html"
    page.write_text(_html_page(results, scenario, episode, images))
    return page


def write_episode_gif(report_dir, env_params, scenario: str, record, episode: int) -> Path:
    """Animated GIF of one policy episode (branch loading, outages, angles or voltages)."""
    grid, pick = env_params.grid, _episode(record, episode)
    dc = env_params.consts.physics == "dc"
    return render.animate_episode(
        Path(report_dir) / f"episode_{scenario}_{episode}.gif",
        np.asarray(grid.bus_xy),
        np.asarray(grid.branch_from),
        np.asarray(grid.branch_to),
        np.abs(pick(record.flow)) / np.asarray(grid.branch_rating),
        pick(record.branch_in_service),
        pick(record.theta) if dc else pick(record.vm),
    )
