"""Checkpoints of the learner state in ``run_dir/checkpoints`` (Orbax)."""

from __future__ import annotations

import os

import ml_collections
import orbax.checkpoint as ocp


class Checkpointer:
    """Save every N updates and at the end; restore the latest on ``--resume``."""

    def __init__(self, directory: str, config: ml_collections.ConfigDict):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=int(config.learner.checkpoint.max_to_keep), create=True
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state) -> None:
        self._manager.save(step, args=ocp.args.StandardSave(state))

    def restore(self, template):
        step = self._manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint to resume from in {self.directory}")
        return self._manager.restore(step, args=ocp.args.StandardRestore(template))

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
