"""Flags shared by the launchers, and turning them into a validated program."""

from __future__ import annotations

import os
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

import configs
from launch.run_dir import default_run_dir

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(configs.__file__)), "default.py")

config_flags.DEFINE_config_file(
    "config", DEFAULT_CONFIG, "Preset file (configs/*.py); override fields with --config.a.b=v."
)
flags.DEFINE_string("run_dir", None, "Output directory (checkpoints, TensorBoard, summary).")
flags.DEFINE_integer("seed", None, "Overrides config.seed.")
flags.DEFINE_integer("total_env_steps", None, "Overrides config.total_env_steps.")
flags.DEFINE_bool("resume", False, "Continue from the latest checkpoint in --run_dir.")
flags.DEFINE_string(
    "actor_devices", None, "Comma-separated device indices (runtime.actor_devices)."
)
flags.DEFINE_string(
    "learner_devices", None, "Device indices of the learner (runtime.learner_devices)."
)

FLAGS = flags.FLAGS


def exit_with_error(message: str) -> None:
    """The one-line start-up error: message on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def config_from_flags() -> ml_collections.ConfigDict:
    """The preset with the top-level flags applied (field overrides are applied by absl)."""
    config = FLAGS.config
    if FLAGS.seed is not None:
        config.seed = FLAGS.seed
    if FLAGS.total_env_steps is not None:
        config.total_env_steps = FLAGS.total_env_steps
    if FLAGS.actor_devices is not None:
        config.runtime.actor_devices = FLAGS.actor_devices
    if FLAGS.learner_devices is not None:
        config.runtime.learner_devices = FLAGS.learner_devices
    config.learner.seed = config.seed  # one seed for the whole run
    return config


def run_dir_from_flags() -> str:
    if FLAGS.resume and not FLAGS.run_dir:
        exit_with_error("--resume needs --run_dir (the directory of the run to continue)")
    run_dir = os.path.abspath(FLAGS.run_dir or default_run_dir())
    checkpoints = os.path.join(run_dir, "checkpoints")
    if FLAGS.resume and not os.path.isdir(checkpoints):
        exit_with_error(f"--resume: no checkpoints in {run_dir}")
    if not FLAGS.resume and os.path.isdir(checkpoints) and os.listdir(checkpoints):
        # A fresh run would write its checkpoints among the old run's (same step numbers).
        exit_with_error(
            f"{run_dir} already holds a run's checkpoints: pass --resume to continue it, "
            "or choose another --run_dir"
        )
    return run_dir


def use_compilation_cache(config: ml_collections.ConfigDict) -> None:
    """Export the cache directory so this process and every node process it starts share it."""
    directory = config.runtime.compilation_cache_dir
    if directory and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.expanduser(directory)
