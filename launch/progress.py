"""What the user sees: a live progress line, and a summary at the end.

On a terminal a ``rich`` live line is redrawn; otherwise (CI, log files) a plain line is
printed every few seconds.
"""

from __future__ import annotations

import sys
import time

from launch.compile_cache import describe as describe_compiles

COST_KEYS = ("episode/cost", "episode/generation_cost", "episode/step_cost")
VIOLATION_KEYS = ("episode/violations", "episode/n_overloaded", "episode/overloads")


SUMMARY_KEYS = (
    "episode/length",
    "episode/cost",
    "episode/unserved_energy_mwh",
    "episode/n_overloaded",
    "episode/trips",
    "episode/blackout",
    "step/served_fraction",
    "step/max_loading",
)


def first_present(progress: dict, keys: tuple[str, ...]):
    for key in keys:
        if key in progress:
            return progress[key]
    return None


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def progress_line(progress: dict, restarts: int = 0) -> str:
    steps, total = progress.get("env_steps", 0), progress.get("total_env_steps", 0)
    rate = progress.get("runtime/steps_per_s", 0.0)
    eta = (total - steps) / rate if rate > 0 else None
    parts = [
        f"[{progress.get('status', '?')}]",
        f"steps {steps:,}/{total:,}",
        f"{rate:,.0f} steps/s",
    ]
    ret = progress.get("episode/return")
    if ret is not None:
        parts.append(f"return {ret:.3f}")
    cost = first_present(progress, COST_KEYS)
    if cost is not None:
        parts.append(f"cost {cost:.4g}")
        teacher = progress.get("episode/teacher_cost")  # learner.reward_baseline="teacher"
        if "episode/cost" in progress and teacher:
            parts.append(f"vs teacher {progress['episode/cost'] / teacher:.4f}")
    validated = progress.get("validation/cost_vs_teacher")  # the latest checkpoint's
    if validated is not None:
        parts.append(f"validated {validated:.4f} of the teacher")
    violations = first_present(progress, VIOLATION_KEYS)
    if violations is not None:
        parts.append(f"violations {violations:.3g}")
    if "runtime/policy_lag" in progress:
        parts.append(f"lag {progress['runtime/policy_lag']:.1f}")
    if restarts:
        parts.append(f"actor restarts {restarts}")
    parts.append(f"ETA {format_eta(eta)}")
    return " | ".join(parts)


class ProgressDisplay:
    """Live line on a TTY, a plain line every ``period_s`` otherwise."""

    def __init__(self, period_s: float = 5.0, stream=None):
        self._stream = stream or sys.stdout
        self._period_s = period_s
        self._last_print = 0.0
        self._live = None
        if self._stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=self._stream), refresh_per_second=4)
            self._live.start()

    def update(self, progress: dict, restarts: int = 0) -> None:
        line = progress_line(progress, restarts)
        if self._live is not None:
            self._live.update(line)
        elif time.monotonic() - self._last_print >= self._period_s:
            self._last_print = time.monotonic()
            print(line, file=self._stream, flush=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()


def summary_text(summary: dict, run_dir: str, launch_type: str, restarts: int) -> str:
    """The one-screen end-of-run summary."""
    last = summary.get("last", {})
    lines = [
        "─" * 60,
        f"gridpod run finished ({launch_type})",
        f"  run dir          {run_dir}",
        f"  updates          {summary.get('start_update', 0)} → {summary.get('update', 0)}",
        f"  env steps        {summary.get('env_steps', 0):,}",
        f"  wall time        {summary.get('elapsed_s', 0.0):.1f} s",
        f"  mean throughput  {summary.get('mean_steps_per_s', 0.0):,.0f} env steps/s",
        f"  learner idle     {100 * summary.get('learner_idle_fraction', 0.0):.0f} %",
        f"  actor idle       {100 * summary.get('actors', {}).get('idle_fraction', 0.0):.0f} %",
        f"  actor restarts   {restarts}",
    ]
    queue = summary.get("queue", {})
    if queue.get("item_bytes"):
        lines.append(
            f"  queue memory     {queue['capacity']} items x {queue['item_bytes'] / 2**20:.1f} MiB"
            f" = {queue['bound_bytes'] / 2**20:.1f} MiB at most"
        )
    if "compilation_cache" in summary:
        lines.append(f"  XLA cache        {describe_compiles(summary['compilation_cache'])}")
    shown = [k for k in last if k.startswith("episode/return")] + list(SUMMARY_KEYS)
    for key in (k for k in shown if k in last):
        lines.append(f"  {key:<28} {last[key]:.4g}")
    for key in ("learner/approx_kl", "learner/entropy", "learner/value_loss", "runtime/policy_lag"):
        if key in last:
            lines.append(f"  {key:<28} {last[key]:.4g}")
    validation = summary.get("last_validation") or {}
    if validation:
        lines.append(f"  validation at update {validation['update']}:")
        lines += [f"    {k:<26} {v:.4g}" for k, v in validation.items() if k != "update"]
    lines += [f"  checkpoint       {summary.get('checkpoint_dir', '?')}", "─" * 60]
    return "\n".join(lines)
