"""The program graph: which nodes exist, on which devices, with which derived numbers.

``build_program`` turns a config into a :class:`Program` once (validating it); the
``build_*`` factories make the nodes through a backend (threads or Ray) chosen by the
launcher, so nodes never know how they are run.
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections

from configs.validation import validate_config
from launch.devices import (
    DeviceConfigError,
    count_host_devices,
    detect_platform,
    parse_devices,
    split_devices,
    validate_device_sets,
)
from launch.plan import LearnerPlan


class ConfigError(ValueError):
    """An invalid combination of settings (reported as a one-line start-up error)."""


@dataclasses.dataclass(frozen=True)
class ActorGroup:
    """One actor process (or thread group): its devices and the ids of its actor threads."""

    index: int
    devices: tuple[int, ...]  # logical device indices of the host
    first_actor_id: int
    num_threads: int


@dataclasses.dataclass(frozen=True)
class Program:
    config: ml_collections.ConfigDict
    platform: str
    actor_groups: tuple[ActorGroup, ...]
    learner_devices: tuple[int, ...]
    plan: LearnerPlan
    queue_capacity: int
    queue_min_fill: int
    run_dir: str
    resume: bool

    @property
    def num_actor_threads(self) -> int:
        return sum(g.num_threads for g in self.actor_groups)


def batch_geometry(config: ml_collections.ConfigDict, num_learner_devices: int) -> int:
    """Queue items per update; rejects a learner batch the actors' batches cannot fill evenly."""
    batch, num_envs = int(config.learner.batch_size), int(config.actors.num_envs)
    if num_envs < 1:
        raise ConfigError(f"actors.num_envs must be >= 1, got {num_envs}")
    per_update = num_envs * num_learner_devices
    if batch % per_update:
        raise ConfigError(
            f"learner.batch_size={batch} must be a multiple of actors.num_envs={num_envs} x "
            f"{num_learner_devices} learner devices = {per_update}"
        )
    from learner.learner import batch_geometry as learner_geometry

    try:  # the learner's own minibatch rules, checked before any process starts
        learner_geometry(config.learner, num_learner_devices)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return batch // num_envs


def queue_sizes(runtime: ml_collections.ConfigDict, items_per_update: int) -> tuple[int, int]:
    # One update's worth by default: actors block while a full batch waits, which keeps the
    # policy lag of on-policy PPO at one to two updates.
    capacity = int(runtime.queue_capacity) or items_per_update
    min_fill = int(runtime.queue_min_fill) or items_per_update
    if capacity < items_per_update:
        raise ConfigError(
            f"runtime.queue_capacity={capacity} is smaller than the {items_per_update} items "
            "one update takes"
        )
    if min_fill > capacity:
        raise ConfigError(f"runtime.queue_min_fill={min_fill} exceeds queue capacity {capacity}")
    return capacity, min_fill


def actor_groups(config, actor_devices: tuple[int, ...]) -> tuple[ActorGroup, ...]:
    threads = int(config.actors.threads_per_device)
    if threads < 1:
        raise ConfigError(f"actors.threads_per_device must be >= 1, got {threads}")
    groups, next_id = [], 0
    parts = split_devices(actor_devices, int(config.runtime.actor_processes), "actor")
    for index, devices in enumerate(parts):
        groups.append(ActorGroup(index, devices, next_id, threads * len(devices)))
        next_id += threads * len(devices)
    return tuple(groups)


def build_program(
    config: ml_collections.ConfigDict,
    run_dir: str,
    resume: bool = False,
    host_devices: int | None = None,
) -> Program:
    """Validate ``config`` and derive everything the launchers need (no processes started)."""
    try:
        validate_config(config)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    runtime = config.runtime
    platform = detect_platform(runtime.platform)
    actor_devices = parse_devices(runtime.actor_devices, "actor_devices")
    learner_devices = parse_devices(runtime.learner_devices, "learner_devices")
    if host_devices is None:
        host_devices = count_host_devices(platform, int(runtime.cpu_devices))
    validate_device_sets(actor_devices, learner_devices, host_devices)
    items = batch_geometry(config, len(learner_devices))
    capacity, min_fill = queue_sizes(runtime, items)
    if config.total_env_steps <= 0:
        raise ConfigError(f"total_env_steps must be > 0, got {config.total_env_steps}")
    steps_per_update = int(config.learner.unroll_length) * int(config.learner.batch_size)
    every = int(config.learner.checkpoint.save_every_updates)
    plan = LearnerPlan(
        items_per_update=items,
        env_steps_per_update=steps_per_update,
        total_updates=math.ceil(config.total_env_steps / steps_per_update),
        checkpoint_every=every,
        take_timeout_s=float(runtime.take_timeout_s),
    )
    return Program(
        config=config,
        platform=platform,
        actor_groups=actor_groups(config, actor_devices),
        learner_devices=learner_devices,
        plan=plan,
        queue_capacity=capacity,
        queue_min_fill=min_fill,
        run_dir=run_dir,
        resume=resume,
    )


START_UP_ERRORS = (ConfigError, DeviceConfigError)


def build_queue(program: Program, backend):
    return backend.queue(program.queue_capacity, program.queue_min_fill)


def build_variable_server(program: Program, backend):
    return backend.variable_server()


def build_actor(program: Program, group: ActorGroup, queue, variables, backend):
    from actors.actor import ActorNode
    from learner.acting import build_env_and_policy

    kwargs = dict(
        config=program.config,
        first_actor_id=group.first_actor_id,
        queue=queue,
        variables=variables,
        make_env_and_policy=build_env_and_policy,
    )
    return backend.node(ActorNode, kwargs, group.devices, f"actor-{group.index}", True)


def build_learner(program: Program, queue, variables, backend):
    from launch.update_log import UpdateLog
    from learner.node import LearnerNode

    kwargs = dict(
        config=program.config,
        queue=queue,
        variables=variables,
        run_dir=program.run_dir,
        resume=program.resume,
        plan=program.plan,
        make_log=UpdateLog,
    )
    return backend.node(LearnerNode, kwargs, program.learner_devices, "learner", False)


def build_evaluator(program: Program, variables, backend):
    """The optional evaluator, sharing the first actor device (it runs rarely)."""
    from launch.evaluator_node import EvaluatorNode

    kwargs = dict(config=program.config, variables=variables, run_dir=program.run_dir)
    device = program.actor_groups[0].devices[:1]
    return backend.node(EvaluatorNode, kwargs, device, "evaluator", False)
