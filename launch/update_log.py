"""What the learner node records after every update, as the launcher logs a run.

``learner.node.LearnerNode`` receives ``UpdateLog`` from ``launch.program.build_learner`` (the
learner never imports ``launch``): learner metrics, means over recent finished episodes,
policy lag and the env-step rate, written to TensorBoard under ``<run_dir>/tensorboard`` (and
to W&B when ``runtime.wandb_project`` is set: ``launch.metrics.open_writer``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import ml_collections

from launch.metrics import EpisodeWindow, RateMeter, open_writer, policy_lag, scalar_metrics
from replay.types import TrajectoryItem


class UpdateLog:
    def __init__(self, config: ml_collections.ConfigDict, spec, run_dir: str):
        log_dir = os.path.join(run_dir, "tensorboard")
        self._writer = open_writer(log_dir, config, "learner", run_dir)
        self._window = EpisodeWindow(spec.agent_type, spec.agent_type_names)
        self._rate = RateMeter()

    @property
    def total_episodes(self) -> int:
        return self._window.total_episodes

    def scalars(
        self,
        env_steps: int,
        behaviour_version: int,
        items: Sequence[TrajectoryItem],
        metrics: dict,
    ) -> dict[str, float]:
        """Learner and episode scalars of one update; ``behaviour_version`` is the version
        an item would carry if it had no lag (the policy lag is measured from it)."""
        self._rate.add(env_steps)
        self._window.add(items)
        lag_mean, lag_max = policy_lag(items, behaviour_version)
        scalars = scalar_metrics(metrics) | self._window.means()
        return scalars | {
            "runtime/steps_per_s": self._rate.rate(),
            "runtime/policy_lag": lag_mean,
            "runtime/policy_lag_max": float(lag_max),
        }

    def write(self, env_steps: int, scalars: dict[str, float]) -> None:
        self._writer.write(env_steps, scalars)

    def close(self) -> None:
        self._writer.close()
