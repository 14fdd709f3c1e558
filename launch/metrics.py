"""Turning queue items and learner metrics into logged numbers (TensorBoard, W&B, progress).

``open_writer`` is what a node logs through: TensorBoard event files always, and the same
scalars to a Weights & Biases run when ``runtime.wandb_project`` is set (the ``wandb``
extra). W&B runs of one training run share its run directory's name as their group, one
run per job (``learner``, ``eval``).
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Sequence

import numpy as np

from replay.types import TrajectoryItem


class EpisodeWindow:
    """Means over the most recent finished episodes (what the progress line shows)."""

    def __init__(self, agent_type: np.ndarray, type_names: Sequence[str], window: int = 256):
        self._agent_type = np.asarray(agent_type)
        self._type_names = tuple(type_names)
        self._window = window
        self._batches: collections.deque = collections.deque()
        self.total_episodes = 0

    def add(self, items: Sequence[TrajectoryItem]) -> None:
        for item in items:
            count = int(item.episodes.finished)
            if count:
                self._batches.append((count, item.episodes))
                self.total_episodes += count
        # Drop the oldest batch while the others still hold a full window of episodes.
        while self._batches and (
            sum(c for c, _ in self._batches) - self._batches[0][0] >= self._window
        ):
            self._batches.popleft()

    def means(self) -> dict[str, float]:
        """episode/return (mean per-agent return), per agent type, length and every info key."""
        count = sum(c for c, _ in self._batches)
        if not count:
            return {}
        returns = sum(e.return_sum for _, e in self._batches) / count  # [A]
        out = {
            "episode/return": float(np.mean(returns)),
            "episode/length": float(sum(e.length_sum for _, e in self._batches) / count),
        }
        for index, name in enumerate(self._type_names):
            members = self._agent_type == index
            if members.any():
                out[f"episode/return_{name}"] = float(np.mean(returns[members]))
        steps = max(out["episode/length"] * count, 1.0)
        for key in self._batches[0][1].info_sums:
            total = sum(float(e.info_sums[key]) for _, e in self._batches)
            out[f"episode/{key}"] = total / count  # per-episode total
            out[f"step/{key}"] = total / steps  # per-step mean (ratios, levels)
        return out


def policy_lag(items: Sequence[TrajectoryItem], learner_version: int) -> tuple[float, int]:
    """Mean and max number of updates between acting and learning."""
    lags = [learner_version - item.policy_version for item in items]
    return float(np.mean(lags)), int(max(lags))


class RateMeter:
    """Env steps per second over a sliding time window."""

    def __init__(self, window_s: float = 20.0):
        self._window_s = window_s
        self._points: collections.deque = collections.deque()

    def add(self, steps: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._points.append((now, steps))
        while len(self._points) > 2 and now - self._points[1][0] > self._window_s:
            self._points.popleft()

    def rate(self) -> float:
        if len(self._points) < 2:
            return 0.0
        (t0, s0), (t1, s1) = self._points[0], self._points[-1]
        return (s1 - s0) / max(t1 - t0, 1e-9)


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """Learner metrics (arrays after device_get) as floats under ``learner/``.

    Per-agent-type metrics (``<type>/approx_kl``) are also averaged over types
    (``learner/approx_kl``) for the progress line and the summary.
    """
    out, by_name = {}, collections.defaultdict(list)
    for key, value in metrics.items():
        array = np.asarray(value)
        if array.size == 1:
            out[f"learner/{key}"] = float(array.reshape(()))
            if "/" in key:
                by_name[key.rsplit("/", 1)[1]].append(out[f"learner/{key}"])
    for name, values in by_name.items():
        out.setdefault(f"learner/{name}", float(np.mean(values)))
    return out


class TensorBoardWriter:
    """A thin tensorboardX writer that takes dicts (imported lazily: not every node logs)."""

    def __init__(self, log_dir: str):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(log_dir=log_dir, flush_secs=10)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        for key, value in _finite(scalars).items():
            self._writer.add_scalar(key, value, global_step=step)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()


WANDB_HINT = "runtime.wandb_project is set but wandb is not installed: pip install 'gridpod[wandb]'"


def _finite(scalars: dict[str, float]) -> dict[str, float]:
    return {key: float(value) for key, value in scalars.items() if np.isfinite(value)}


class WandbWriter:
    """One Weights & Biases run that takes the same dicts as ``TensorBoardWriter``."""

    def __init__(self, project: str, run_dir: str, job: str, run_config: dict | None = None):
        try:
            import wandb
        except ImportError:
            raise ImportError(WANDB_HINT) from None
        group = os.path.basename(os.path.normpath(run_dir))
        self._run = wandb.init(
            project=project,
            group=group,
            name=f"{group}-{job}",
            job_type=job,
            dir=run_dir,
            config=run_config,
        )

    def write(self, step: int, scalars: dict[str, float]) -> None:
        finite = _finite(scalars)
        if finite:
            self._run.log(finite, step=step)

    def close(self) -> None:
        self._run.finish()


class FanOutWriter:
    """Several writers behind one ``write``/``close``."""

    def __init__(self, writers: Sequence):
        self._writers = tuple(writers)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        for writer in self._writers:
            writer.write(step, scalars)

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


def open_writer(log_dir: str, config=None, job: str = "learner", run_dir: str | None = None):
    """TensorBoard event files in ``log_dir`` and, when ``config.runtime.wandb_project`` is
    set, a W&B run (its files under ``run_dir``, default ``log_dir``) logging the same scalars.
    """
    tensorboard = TensorBoardWriter(log_dir)
    project = config.runtime.get("wandb_project", "") if config is not None else ""
    if not project:
        return tensorboard
    try:
        wandb_writer = WandbWriter(project, run_dir or log_dir, job, config.to_dict())
    except BaseException:
        tensorboard.close()
        raise
    return FanOutWriter([tensorboard, wandb_writer])
