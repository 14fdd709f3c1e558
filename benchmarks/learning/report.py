"""The report: the curve's table, the targets, and the plotted curves."""

from __future__ import annotations

from pathlib import Path

from benchmarks import harness
from benchmarks.learning.curve import METRICS
from benchmarks.learning.settings import REPO


def _cell(stats: dict, width: int = 24) -> str:
    """``mean [min, max]`` (the mean alone for one seed); '-' where no seed had a value."""
    if stats["mean"] is None:
        return f"{'-':>{width}}"
    text = f"{stats['mean']:.2f}"
    if stats["n"] > 1:
        text += f" [{stats['min']:.2f}, {stats['max']:.2f}]"
    return f"{text:>{width}}"


def _number(value, digits: int = 2) -> str:
    """A number for a table cell, '-' for a missing one."""
    return "-" if value is None else f"{value:.{digits}f}"


def title(results: dict) -> str:
    """The preset (relative to the repository) or, for given runs, their folders; the case."""
    if results["from_runs"]:
        names = ", ".join(Path(run["run_dir"]).name for run in results["runs"])
        return f"runs {names} ({results['case']})"
    preset = Path(results["settings"]["config_path"])
    shown = preset.relative_to(REPO) if preset.is_relative_to(REPO) else preset
    return f"{shown} ({results['case']})"


def format_header(results: dict) -> list[str]:
    """The setting a reader needs to compare two reports: preset, machine, budget, episodes."""
    s, ev = results["settings"], results["evaluation"]
    cache = "cold XLA cache" if s["cold_cache"] else "warm XLA cache"
    training = (
        f"training: runs given (--from_runs), curve over {s['budget_s']:.0f} s"
        if results["from_runs"]
        else f"training: {len(s['seeds'])} seeds x {s['budget_s']:.0f} s of wall clock each "
        f"(from the launch command: start-up and compilation included, {cache})"
    )
    return [
        f"# Time to quality: {title(results)}",
        f"hardware: {harness.describe_line(results['hardware'])}",
        training,
        f"overrides: {' '.join(s['overrides']) or 'none'}",
        f"evaluation: held-out set {ev['eval_seed']} (not the suite's set 0), "
        f"{len(ev['scenarios'])} scenarios x {ev['episodes']} episodes x {ev['horizon']} steps",
        _selection_line(results),
        "",
    ]


def _selection_line(results: dict) -> str:
    """Which checkpoint of each run a point of the curve evaluates."""
    if results["settings"].get("select", "latest") != "best":
        return "checkpoints: each seed's latest saved by each time"
    selection = results["runs"][0]["selection"]
    return (
        f"checkpoints: each seed's best saved by each time by its validation "
        f"({selection['metric']}, {selection['mode']}; learner.validation's own episodes)"
    )


def format_runs(results: dict) -> list[str]:
    """Per run: how far it got, its throughput, and when its first checkpoint existed
    (start-up and compilation are most of that on a cold cache)."""
    lines = [
        f"{'run':<12}{'env steps':>12}{'steps/s':>10}{'checkpoints':>13}"
        f"{'first s':>9}{'stop s':>8}{'exit':>6}  start from"
    ]
    for run in results["runs"]:
        summary, launch = run["summary"] or {}, run["launch"] or {}
        times = list(run["checkpoint_times_s"].values())
        lines.append(
            f"{Path(run['run_dir']).name:<12}{summary.get('env_steps', 0):>12,}"
            f"{_number(summary.get('mean_steps_per_s'), 0):>10}{len(times):>13}"
            f"{_number(min(times) if times else None, 0):>9}"
            f"{_number(launch.get('signal_s'), 0):>8}{launch.get('exit_code', '-')!s:>6}"
            f"  {run['start_source']}"
        )
    return [*lines, ""]


def format_references(results: dict) -> list[str]:
    """What the policy is measured against, on exactly its episodes."""
    lines = [
        "references on the same episodes (mean per episode):",
        f"{'scenario':<25}{'method':<14}{'cost':>14}{'gap %':>9}{'unserved MWh':>14}"
        f"{'overloads':>11}{'blackouts':>11}",
    ]
    for scenario, rows in results["references"].items():
        for method in ("oracle", *(name for name in rows if name != "oracle")):
            row = rows[method]
            lines.append(
                f"{scenario:<25}{method:<14}{row['cost']:>14,.0f}{_number(row['gap_percent']):>9}"
                f"{row['unserved_mwh']:>14.2f}{row['overload_steps']:>11.2f}"
                f"{row['blackouts']:>11.2f}"
            )
    return [*lines, ""]


def format_curve(results: dict) -> list[str]:
    """One block per scenario, one row per point of the curve."""
    lines = ["policy against wall clock: mean over seeds [min, max]"]
    header = f"{'time s':>8}{'seeds':>7}" + "".join(f"{label:>24}" for _, label in METRICS)
    for scenario in results["evaluation"]["scenarios"]:
        lines += [f"scenario: {scenario}", header]
        for point in results["curve"]:
            stats = point["scenarios"].get(scenario)
            cells = "".join(_cell(stats[key]) if stats else f"{'-':>24}" for key, _ in METRICS)
            lines.append(
                f"{point['time_s']:>8.0f}{point['seeds']:>4}/{point['of_seeds']:<2}{cells}"
            )
        lines.append("")
    return lines


def format_targets(results: dict) -> list[str]:
    """One line per measured target; targets of scenarios not evaluated are named together."""
    targets = results["targets"]
    limit = targets["definition"]["time_limit_s"]
    at = targets["at_time_s"]
    where = f"at {at:.0f} s" if at is not None else "no point with every seed's checkpoint"
    lines = [
        f"targets ({targets['definition'].get('name', 'ieee14 default preset')}), mean over "
        f"seeds {where} (within {limit:.0f} s):",
        f"  {'':<14}{'target':<56}{'value':>12}{'limit':>12}{'seeds':>8}",
    ]
    unmeasured = [check["target"] for check in targets["checks"] if check["met"] is None]
    for check in targets["checks"]:
        if check["met"] is None:
            continue
        seeds = f"{check['seeds_met']}/{len(results['runs'])}" if "seeds_met" in check else "-"
        lines.append(
            f"  {'met' if check['met'] else 'NOT MET':<14}{check['target']:<56}"
            f"{_number(check['value']):>12}{_number(check['limit']):>12}{seeds:>8}"
        )
    if unmeasured and at is None:
        lines.append(f"  not measured: all {len(unmeasured)} targets (no checkpoint by then)")
    elif unmeasured:
        missing = ", ".join(dict.fromkeys(name.split(":")[0] for name in unmeasured))
        lines.append(
            f"  not measured: {len(unmeasured)} targets of scenarios not evaluated ({missing})"
        )
    reached = targets["time_to_quality_s"]
    lines.append(
        f"time to quality (every target met by the mean): "
        f"{'not reached' if reached is None else f'{reached:.0f} s'}"
    )
    lines.append(f"all targets met: {'yes' if targets['all_met'] else 'no'}")
    stretch = [check for check in targets.get("stretch", []) if check["met"] is not None]
    if stretch:
        lines.append("stretch, cost against the best causal baseline (ratio, limit 1):")
        for check in stretch:
            lines.append(
                f"  {'met' if check['met'] else 'NOT MET':<14}{check['target']:<56}"
                f"{_number(check['value'], 4):>12}"
            )
    return lines


def format_report(results: dict) -> str:
    """The whole printed report: setting, runs, references, curve, targets."""
    return "\n".join(
        format_header(results)
        + format_runs(results)
        + format_references(results)
        + format_curve(results)
        + format_targets(results)
    )


def _decorate(axis, key: str, label: str, results: dict, largest: float) -> None:
    """Axes over the whole budget, the targets' lines; percentages that reach past 100 on a
    symmetric log scale (an untrained policy is thousands of percent off, a good one a few)."""
    definition = results["targets"]["definition"]
    # The ieee118 preset has no gap target (``max_gap_percent`` None): no line for it.
    limits = {"gap_percent": definition["max_gap_percent"], "cost_vs_myopic_percent": 0.0}
    if limits.get(key) is not None:
        axis.axhline(limits[key], color="k", linestyle="--", linewidth=0.8)
    if key.endswith("_percent") and largest > 100.0:
        axis.set_yscale("symlog", linthresh=10.0)
    budget_s = results["settings"]["budget_s"]
    if definition["time_limit_s"] <= budget_s:
        axis.axvline(definition["time_limit_s"], color="grey", linestyle=":", linewidth=0.8)
    axis.set(xlabel="wall clock since launch (s)", ylabel=label, xlim=(0, budget_s * 1.02))


def plot_curves(results: dict, path: Path) -> None:
    """One panel per metric, one line per scenario (mean over seeds, min-max shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    for axis, (key, label) in zip(axes.flat, METRICS, strict=True):
        largest = 0.0
        for scenario in results["evaluation"]["scenarios"]:
            xs, mean, low, high = [], [], [], []
            for point in results["curve"]:
                stats = point["scenarios"].get(scenario, {}).get(key)
                if stats and stats["mean"] is not None:
                    xs.append(point["time_s"])
                    mean.append(stats["mean"])
                    low.append(stats["min"])
                    high.append(stats["max"])
            (line,) = axis.plot(xs, mean, marker="o", label=scenario)
            axis.fill_between(xs, low, high, color=line.get_color(), alpha=0.2)
            largest = max([largest, *map(abs, low), *map(abs, high)])
        _decorate(axis, key, label, results, largest)
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.suptitle(
        f"{title(results)}: {len(results['runs'])} seeds; "
        f"{harness.describe_line(results['hardware'])}",
        fontsize=9,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
