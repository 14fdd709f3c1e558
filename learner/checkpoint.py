"""Orbax checkpoints of the learner: save, resume, and restore for evaluation from a directory.

Each checkpoint step directory holds the items
``params``, ``opt_state``, ``norm_state``, ``counters`` (key, update_step,
skipped_updates) as arrays, and ``learner_config``, ``spec``, ``config`` as
JSON (``ConfigDict.to_json`` and the ``EnvSpec`` fields), so that
``restore_for_eval(directory)`` can rebuild the policy with nothing else.

Retention is "the last ``max_to_keep`` plus the best by an evaluation score":
Orbax's ``AnyPreservationPolicy([LatestN(k), BestN(n=1)])``. Only checkpoints
saved with ``metrics`` containing ``best_metric`` compete for best: those a run
validated (``learner.validation``).

Saves are atomic: Orbax writes into ``<step>.orbax-checkpoint-tmp-*`` and
renames it to ``<step>`` when complete; a process killed mid-save leaves only
the temporary directory, which readers ignore and the next manager removes.
Saves run asynchronously; ``close()`` waits for the last one.
"""

import json
import logging
import os
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocm

from envs.config import with_defaults
from envs.types import EnvSpec
from learner.config import learner_with_defaults
from learner.policy import make_policy
from learner.types import LearnerState, NormState

ARRAY_ITEMS = ("params", "opt_state", "norm_state", "counters")
JSON_ITEMS = ("learner_config", "spec", "config")


def spec_to_json(spec: EnvSpec) -> dict:
    """EnvSpec -> JSON-able dict (arrays become nested lists)."""
    out = {}
    for name, value in spec._asdict().items():
        out[name] = np.asarray(value).tolist() if isinstance(value, np.ndarray) else value
    return out


def spec_from_json(data: dict) -> EnvSpec:
    """Inverse of ``spec_to_json`` with the EnvSpec dtypes."""
    return EnvSpec(
        num_agents=int(data["num_agents"]),
        obs_dim=int(data["obs_dim"]),
        global_dim=int(data["global_dim"]),
        action_dim=int(data["action_dim"]),
        num_agent_types=int(data["num_agent_types"]),
        agent_type=np.asarray(data["agent_type"], np.int32),
        agent_mask=np.asarray(data["agent_mask"], bool),
        action_mask=np.asarray(data["action_mask"], bool).reshape(
            int(data["num_agents"]), int(data["action_dim"])
        ),
        agent_type_names=tuple(data["agent_type_names"]),
        agent_type_gamma=tuple(float(g) for g in data["agent_type_gamma"]),
        agent_type_lambda=tuple(float(g) for g in data["agent_type_lambda"]),
    )


class _SavedWithoutMetricsFilter(logging.Filter):
    """Drops Orbax's warning for a save without metrics: by design only evaluated
    checkpoints carry metrics (and compete for best); every other save has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not provide metrics" not in record.getMessage()


logging.getLogger("absl").addFilter(_SavedWithoutMetricsFilter())


class Checkpointer:
    """Saves and restores ``LearnerState`` under ``directory`` (see module docstring).

    ``learner_config`` is the learner sub-config (its ``checkpoint`` block sets
    cadence and retention); ``experiment_config`` (optional) is the whole
    experiment config, stored as JSON for evaluation and bookkeeping.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        learner_config: ml_collections.ConfigDict,
        spec: EnvSpec,
        experiment_config: ml_collections.ConfigDict | None = None,
    ):
        self.directory = os.path.abspath(os.fspath(directory))
        self.learner_config, self.spec = learner_config, spec
        if experiment_config is None:
            experiment_config = ml_collections.ConfigDict({"learner": learner_config})
        self._json = {
            "learner_config": json.loads(learner_config.to_json()),
            "spec": spec_to_json(spec),
            "config": json.loads(experiment_config.to_json()),
        }
        ckpt = learner_config.checkpoint
        self.save_every_updates = int(ckpt.save_every_updates)
        self.best_metric = str(ckpt.best_metric)
        self.manager = _make_manager(self.directory, ckpt, read_only=False)

    def maybe_save(self, state: LearnerState, metrics: dict | None = None) -> bool:
        """Save when ``update_step`` is a multiple of ``save_every_updates``; True if saved."""
        step = int(jax.device_get(state.update_step))
        if step == 0 or step % self.save_every_updates:
            return False
        return self.save(state, metrics)

    def save(self, state: LearnerState, metrics: dict | None = None) -> bool:
        """Save now (e.g. at shutdown) under step ``update_step``; metrics rank 'best'."""
        step = int(jax.device_get(state.update_step))
        if step in self.manager.all_steps():
            return False
        items = {name: ocp.args.StandardSave(tree) for name, tree in _array_items(state).items()}
        items.update({name: ocp.args.JsonSave(value) for name, value in self._json.items()})
        host_metrics = None
        if metrics:
            host_metrics = {k: float(jax.device_get(v)) for k, v in metrics.items()}
        return self.manager.save(
            step, args=ocp.args.Composite(**items), metrics=host_metrics, force=True
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def restore(self, template: LearnerState, step: int | None = None) -> LearnerState:
        """Restore onto ``template``'s structure and shardings (e.g. ``learner.init(key)``)."""
        self.manager.wait_until_finished()
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = {k: _abstract(v) for k, v in _array_items(template).items()}
        args = ocp.args.Composite(**{k: ocp.args.StandardRestore(v) for k, v in abstract.items()})
        restored = self.manager.restore(step, args=args)
        counters = restored["counters"]
        return LearnerState(
            params=restored["params"],
            opt_state=restored["opt_state"],
            norm_state=restored["norm_state"],
            key=counters["key"],
            update_step=counters["update_step"],
            skipped_updates=counters["skipped_updates"],
        )

    def close(self) -> None:
        """Wait for pending asynchronous saves and release the manager."""
        self.manager.wait_until_finished()
        self.manager.close()


def restore_for_eval(
    directory: str | os.PathLike, step: int | None = None, best: bool = False
) -> tuple[ml_collections.ConfigDict, Any, NormState, EnvSpec]:
    """``(config, params, norm_state, spec)`` from a checkpoint directory alone.

    ``config`` is the stored experiment config (it always has ``.learner``);
    rebuild the policy with ``make_policy(config.learner, spec)``. Picks
    ``step``, else the best checkpoint when ``best``, else the latest.
    """
    directory = os.path.abspath(os.fspath(directory))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    manager = _make_manager(directory, None, read_only=True)
    try:
        if step is None:
            step = manager.best_step() if best else manager.latest_step()
        if step is None and best and manager.latest_step() is not None:
            raise FileNotFoundError(
                f"no checkpoint in {directory} carries validation metrics, so none is 'best': "
                "train with learner.checkpoint.validation_episodes > 0, or restore the latest"
            )
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        stored = manager.restore(
            step, args=ocp.args.Composite(**{k: ocp.args.JsonRestore() for k in JSON_ITEMS})
        )
        config = ml_collections.ConfigDict(stored["config"])
        # Fields added since the checkpoint was stored take their defaults.
        if "env" in config:
            config.env = with_defaults(config.env)
        if "learner" in config:
            config.learner = learner_with_defaults(config.learner)
        learner_config = learner_with_defaults(stored["learner_config"])
        spec = spec_from_json(stored["spec"])
        policy = make_policy(learner_config, spec)
        abstract_params = jax.eval_shape(policy.init, jax.random.key(0))
        abstract_norm = jax.eval_shape(policy.init_norm_state)
        targets = {"params": abstract_params, "norm_state": abstract_norm}
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        args = {k: ocp.args.StandardRestore(_abstract(v, device)) for k, v in targets.items()}
        restored = manager.restore(step, args=ocp.args.Composite(**args))
    finally:
        manager.close()
    return config, restored["params"], restored["norm_state"], spec


def _array_items(state: LearnerState) -> dict:
    counters = {
        "key": state.key,
        "update_step": state.update_step,
        "skipped_updates": state.skipped_updates,
    }
    return {
        "params": state.params,
        "opt_state": state.opt_state,
        "norm_state": state.norm_state,
        "counters": counters,
    }


def _abstract(tree, sharding=None):
    def leaf(x):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding or x.sharding)

    return jax.tree.map(leaf, tree)


def _make_manager(directory: str, ckpt, read_only: bool) -> ocp.CheckpointManager:
    if ckpt is None:  # reading: retention does not matter, 'best' must still be known
        ckpt = stored_checkpoint_options(directory)
    best_metric = str(ckpt.best_metric)
    minimise = ckpt.best_mode == "min"
    worst = float("inf") if minimise else float("-inf")

    def score(metrics: dict) -> float:
        return float(metrics.get(best_metric, worst))

    policy = ocm.AnyPreservationPolicy(
        [
            ocm.LatestN(n=int(ckpt.max_to_keep)),
            ocm.BestN(
                get_metric_fn=score,
                reverse=minimise,
                n=1,
                keep_checkpoints_without_metrics=False,
            ),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        best_fn=score,
        best_mode=ckpt.best_mode,
        cleanup_tmp_directories=not read_only,
        read_only=read_only,
        create=not read_only,
    )
    return ocp.CheckpointManager(directory, options=options)


def stored_checkpoint_options(directory: str) -> ml_collections.ConfigDict:
    """The ``checkpoint`` block of the newest stored learner config (for best-step lookup)."""
    steps = sorted(int(name) for name in os.listdir(directory) if name.isdigit())
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {directory}")
    path = os.path.join(directory, str(steps[-1]), "learner_config", "metadata")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory}/{steps[-1]} holds no learner_config item")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f)["checkpoint"])
