"""The evaluation report: PNG figures of one policy episode and the scenario table, one HTML page.

Figures: the one-line diagram at the episode's most loaded step (``envs.render.one_line``; also as
an interactive plotly page when the viz extra is installed), the power balance, the angle (DC)
or voltage (AC) spread with the frequency, the agents' actions, cost and gap per scenario
against the baselines and the oracle (log axes, min–max over episodes), the per-episode counts
beside the episode length, and the training curves read from the run's TensorBoard event files
(``envs.render.figures``).
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

import numpy as np

from envs.powerflow.connectivity import energised_buses
from envs.render import figures, one_line, one_line_html

FIGURES = ("one_line", "balance", "profile", "actions", "scenarios", "counts", "training")
INTERACTIVE_ONE_LINE = "one_line.html"
TABLE_METRICS = (
    "cost",
    "gap_percent",
    "vs_best_causal",
    "unserved_mwh",
    "steps",
    "overload_steps",
    "trips",
    "freq_violations",
    "blackouts",
    "stored_end_mwh",
)
COUNT_PANELS = (  # (metric, title, y label); the episode length sits beside the counts
    ("overload_steps", "steps with an overloaded branch", "steps per episode"),
    ("freq_violations", "steps outside the frequency band", "steps per episode"),
    ("steps", "episode length (a blackout ends it)", "steps"),
    ("trips", "protective branch trips", "trips per episode"),
    ("unserved_mwh", "unserved energy", "MWh per episode"),
    ("blackout_percent", "episodes ending in a blackout", "% of episodes"),
)
MAX_TRAINING_PANELS = 15
TRAINING_LABELS = {  # tag: (title, y label); drawn first, in this order, when the run logged them
    "episode/return": ("episode return", "mean return per agent"),
    "episode/cost": ("episode cost", "$ per episode"),
    "episode/unserved_energy_mwh": ("unserved energy", "MWh per episode"),
    "episode/length": ("episode length", "steps"),
    "episode/n_overloaded": ("overloaded branches", "branch-steps per episode"),
    "episode/trips": ("protective trips", "trips per episode"),
    "episode/blackout": ("blackouts", "share of episodes"),
    "episode/branches_out": ("branches out of service", "branch-steps per episode"),
    "step/max_loading": ("most loaded branch", "|flow| / rating, mean over steps"),
    "episode/curtailed_mwh": ("curtailed renewable energy", "MWh per episode"),
    "learner/policy_loss": ("policy loss", "PPO clipped surrogate"),
    "learner/value_loss": ("value loss", "squared error"),
    "learner/entropy": ("policy entropy", "nats"),
    "learner/approx_kl": ("approximate KL", "nats"),
    "learner/explained_variance": ("explained variance", "of the returns"),
}
GIF_MAX_FRAMES = 48
CAPTIONS = {
    "one_line": "One-line diagram at the episode's most loaded step: branch colour = loading "
    "|flow| / rating, dashed grey with a red cross = out of service, marker area ∝ MW.",
    "balance": "Power balance over the episode: generation by type, storage and shed load "
    "against the demand.",
    "profile": "Spread of bus angles (DC) or voltages (AC) over the buses, and the frequency.",
    "actions": "The agents' actions over the episode.",
    "scenarios": "Cost and gap to the oracle per scenario (log axes). Bars: mean over the "
    "held-out episodes; whiskers: min–max over the episodes.",
    "counts": "Per-episode counts per scenario beside the episode length (the oracle, a bound "
    "without violations, is left out). Bars: mean over episodes; whiskers: min–max.",
    "training": "Training curves from the run's TensorBoard files (x: env steps).",
}


def _episode(record, episode: int):
    """One episode's arrays [T, ...], cut to the steps that belong to it."""
    alive = np.asarray(record.alive)[:, episode]
    n_steps = max(int(alive.sum()), 1)
    return lambda x: np.asarray(x)[:n_steps, episode]


def most_loaded_step(env_params, record, episode: int) -> int:
    """The step of ``episode`` whose most loaded in-service branch is the most loaded."""
    pick = _episode(record, episode)
    loading = np.abs(pick(record.flow)) / np.asarray(env_params.grid.branch_rating)
    loading = np.where(pick(record.branch_in_service), loading, 0.0)
    return int(np.argmax(loading.max(axis=1)))


def one_line_at(env_params, record, episode: int, step: int) -> one_line.OneLineData:
    """The one-line diagram data of a recorded episode after step ``step`` (0-based)."""
    at = lambda x: np.asarray(x)[step, episode]  # noqa: E731
    energised = energised_buses(env_params.grid, at(record.branch_in_service))
    return one_line.from_arrays(
        env_params,
        step + 1,
        at(record.pg),
        at(record.storage_p),
        at(record.demand),
        at(record.shed),
        at(record.flow),
        at(record.branch_in_service),
        energised,
        cost=at(record.info["cost"]),
    )


def _one_line_figure(env_params, record, episode: int):
    step = most_loaded_step(env_params, record, episode)
    data = one_line_at(env_params, record, episode, step)
    return one_line.plot_one_line(data, f"policy, episode {episode}, most loaded step")


def write_interactive_one_line(report_dir, env_params, record, episode: int) -> Path | None:
    """``one_line.html`` of the policy's most loaded step; None (and a note) without plotly."""
    step = most_loaded_step(env_params, record, episode)
    data = one_line_at(env_params, record, episode, step)
    try:
        return one_line_html.write_one_line_html(
            Path(report_dir) / INTERACTIVE_ONE_LINE, data, f"policy, episode {episode}"
        )
    except one_line_html.PlotlyMissingError as err:
        print(f"[report] no interactive one-line diagram: {err}", file=sys.stderr)
        return None


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
    return figures.plot_power_balance(
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
    return figures.plot_bus_profile(
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
    return figures.plot_action_heatmap(
        _episode(record, episode)(record.action), names, np.asarray(layout.action_mask)
    )


def _training_figure(run_dir: Path | None):
    scalars = {}
    if run_dir is not None and Path(run_dir).is_dir():
        scalars = figures.read_scalars(run_dir)
    headline = [tag for tag in TRAINING_LABELS if tag in scalars]
    rest = sorted(tag for tag in scalars if tag not in headline and tag.count("/") == 1)
    chosen = (headline + rest)[:MAX_TRAINING_PANELS]
    return figures.plot_training_curves({tag: scalars[tag] for tag in chosen}, TRAINING_LABELS)


def per_episode(row: dict, metric: str):
    """A method's per-episode values of ``metric`` where the results keep them (``per_episode``,
    or ``episode_cost`` for the cost), else its mean over episodes (drawn without whiskers)."""
    if metric == "cost" and "episode_cost" in row:
        return np.asarray(row["episode_cost"], float)
    stored = row.get("per_episode", {}).get(metric)
    return row.get(metric) if stored is None else np.asarray(stored, float)


def scenario_table(results: dict) -> dict:
    """{scenario: {method: {"cost": [E] $, "gap_percent": [E] % or None}}} for the bar chart;
    the oracle has no gap (0 by definition)."""
    table = {}
    for scenario, rows in results["scenarios"].items():
        oracle = rows.get("oracle")
        bound = None if oracle is None else per_episode(oracle, "cost")
        table[scenario] = {}
        for method, row in rows.items():
            cost = per_episode(row, "cost")
            if method == "oracle" or row.get("gap_percent") is None:
                gap = None
            elif np.shape(cost) == np.shape(bound):
                gap = 100.0 * (cost / np.maximum(bound, 1e-9) - 1.0)
            else:
                gap = row["gap_percent"]  # no per-episode costs: the stored mean
            table[scenario][method] = {"cost": cost, "gap_percent": gap}
    return table


def counts_table(results: dict) -> dict:
    """{scenario: {method: {metric of COUNT_PANELS: per-episode values or a mean}}}."""
    table = {}
    for scenario, rows in results["scenarios"].items():
        table[scenario] = {}
        for method, row in rows.items():
            if method == "oracle":
                continue
            cells = {key: per_episode(row, key) for key, _, _ in COUNT_PANELS if key in row}
            blackouts = row.get("blackouts")
            # A share of episodes has no per-episode spread: one number per cell.
            cells["blackout_percent"] = None if blackouts is None else 100.0 * float(blackouts)
            table[scenario][method] = cells
    return table


def _html_table(rows: dict, metrics) -> str:
    head = "".join(f"<th>{html.escape(m)}</th>" for m in ("method", *metrics))
    body = []
    for method, row in rows.items():
        values = [row.get(m) for m in metrics]
        cells = "".join(f"<td>{'–' if v is None else f'{v:.2f}'}</td>" for v in values)
        body.append(f"<tr><td>{html.escape(method)}</td>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _html_figures(images: dict[str, str], interactive: Path | None) -> str:
    figures = [
        f'<figure><img src="{src}" alt="{name}"><figcaption>{html.escape(CAPTIONS[name])}'
        "</figcaption></figure>"
        for name, src in images.items()
    ]
    if interactive is not None:
        figures.insert(
            1,
            (
                f'<figure><iframe src="{interactive.name}" title="interactive one-line diagram" '
                'width="1020" height="780" style="border:none"></iframe><figcaption>The same step, '
                "interactive: hover a branch (its middle) for flow, rating and loading, a bus for "
                f'load, generation and shed (<a href="{interactive.name}">open alone</a>).'
                "</figcaption></figure>"
            ),
        )
    else:
        figures.insert(1, "<p>No interactive one-line diagram: it needs plotly (viz extra).</p>")
    return "".join(figures)


def _html_page(results, scenario: str, episode: int, figures: str) -> str:
    sections = [
        f"<h2>{html.escape(name)}</h2>{_html_table(rows, TABLE_METRICS)}"
        for name, rows in results["scenarios"].items()
    ]
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>gridpod evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:3px 8px;text-align:right}} img{{max-width:100%}}</style>
</head><body>
<h1>Evaluation of {html.escape(str(results["checkpoint"]))}</h1>
<p>case {html.escape(str(results["case"]))}, {results["episodes"]} episodes per scenario,
{results["horizon"]} steps each. Means over episodes. Gap = cost / oracle cost - 1 (%);
vs_best_causal = cost / the cost of the scenario's cheapest baseline (none of them sees the
future); cost and unserved energy per episode ($, MWh); steps = episode length; overload steps, trips and
frequency violations per episode; blackouts = share of episodes ending in one; stored_end_mwh
= energy left in the batteries at the episode's end; the cost includes the energy the
batteries gave up over the episode at {results.get("stored_energy_value", 0.0):.1f} $/MWh. Episode
figures: policy, scenario {html.escape(scenario)}, episode {episode}.</p>
{"".join(sections)}
{figures}
</body></html>
"""


def write_report(report_dir, results, env_params, scenario, records, episode, run_dir) -> Path:
    """Write every figure of ``FIGURES`` as PNG, the interactive one-line diagram (with plotly)
    and ``report.html`` showing them."""
    report_dir = Path(report_dir)
    policy = records["policy"]
    n_episodes, horizon = results["episodes"], results["horizon"]
    makers = {
        "one_line": lambda: _one_line_figure(env_params, policy, episode),
        "balance": lambda: _balance_figure(env_params, policy, episode),
        "profile": lambda: _profile_figure(env_params, policy, episode),
        "actions": lambda: _actions_figure(env_params, policy, episode),
        "scenarios": lambda: figures.plot_scenario_bars(scenario_table(results), n_episodes),
        "counts": lambda: figures.plot_episode_counts(
            counts_table(results), COUNT_PANELS, n_episodes, horizon
        ),
        "training": lambda: _training_figure(run_dir),
    }
    images = {}
    for name in FIGURES:
        figures.save_figure(makers[name](), report_dir / f"{name}.png")
        images[name] = f"{name}.png"
    interactive = write_interactive_one_line(report_dir, env_params, policy, episode)
    page = report_dir / "report.html"
    page.write_text(_html_page(results, scenario, episode, _html_figures(images, interactive)))
    return page


def write_episode_gif(report_dir, env_params, scenario: str, record, episode: int) -> Path:
    """Animated GIF of one policy episode as one-line diagrams (at most ``GIF_MAX_FRAMES``)."""
    n_steps = max(int(np.asarray(record.alive)[:, episode].sum()), 1)
    steps = np.unique(np.linspace(0, n_steps - 1, min(n_steps, GIF_MAX_FRAMES)).astype(int))
    frames = [one_line_at(env_params, record, episode, int(t)) for t in steps]
    return one_line.animate_one_line(
        Path(report_dir) / f"episode_{scenario}_{episode}.gif",
        frames,
        f"policy, {scenario.replace('_', ' ')}, episode {episode}",
    )
