"""Flags shared by the launchers, and turning them into a validated program."""

from __future__ import annotations

import difflib
import os
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

import configs
from launch.errors import exit_with_error
from launch.run_dir import default_run_dir

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(configs.__file__)), "default.py")


def unknown_field_message(argv: list[str], config) -> str | None:
    """'unknown config field ...; did you mean ...' for the first override naming no field."""
    if config is None:  # the preset failed to load: absl's own message says why
        return None
    for arg in argv[1:]:
        if not arg.startswith("--config."):
            continue
        path = arg.removeprefix("--config.").split("=", 1)[0].split(".")
        node = config
        for depth, part in enumerate(path):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                fields = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
                prefix = ".".join(path[:depth])
                close = difflib.get_close_matches(part, fields, n=3, cutoff=0.6)
                named = ", ".join(f"{prefix}.{c}" if prefix else c for c in close)
                hint = f"; did you mean {named}?" if close else ""
                return f"unknown config field {'.'.join(path[: depth + 1])}{hint}"
            node = node[part]
    return None


def _preset_path(argv: list[str]) -> str:
    path = DEFAULT_CONFIG
    for arg in argv[1:]:
        if arg.startswith("--config="):
            path = arg.removeprefix("--config=")
    return path


def _preset_named(argv: list[str]) -> ml_collections.ConfigDict | None:
    """The preset ``--config`` names in ``argv`` (the default one if none), or None."""
    import importlib.util

    path = _preset_path(argv)
    try:
        spec = importlib.util.spec_from_file_location("_preset", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.get_config()
    except Exception:  # the flag's own error says what is wrong with the file
        return None


try:  # the config flag applies the overrides in sys.argv as it is defined
    config_flags.DEFINE_config_file(
        "config", DEFAULT_CONFIG, "Preset file (configs/*.py); override fields with --config.a.b=v."
    )
except (AttributeError, KeyError) as _error:
    _message = unknown_field_message(sys.argv, _preset_named(sys.argv))
    print(f"error: {_message or _error}", file=sys.stderr, flush=True)
    sys.exit(2)
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


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing with one-line errors (exit 2) instead of tracebacks or usage dumps.

    A mistyped config field (``--config.learner.lerning_rate=1e-4``) is named with the
    closest valid fields. Pass as ``app.run(main, flags_parser=cli.parse_flags)``.
    """
    try:
        return FLAGS(argv)
    except Exception as error:  # every parsing error is about the command line: one line
        message = unknown_field_message(argv, _preset_named(argv))
        exit_with_error(message or flag_error_message(error))


def flag_error_message(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.removeprefix("flag ")


def config_from_flags() -> ml_collections.ConfigDict:
    """The preset with the top-level flags applied (field overrides are applied by absl)."""
    try:
        config = FLAGS.config
        config.get("seed")  # a preset that failed to load raises on first use
    except Exception as error:  # ml_collections defers a preset's load error to first use
        path = _preset_path(sys.argv)
        if not os.path.isfile(path):
            exit_with_error(f"--config={path}: no such preset file (see configs/*.py)")
        exit_with_error(f"--config={path} failed to load: {str(error).splitlines()[-1].strip()}")
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
    check_run_dir_usable(run_dir)
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


def check_run_dir_usable(run_dir: str) -> None:
    """Refuse a run directory that is a file or cannot be created, before anything is written."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        exit_with_error(f"--run_dir={run_dir} exists and is not a directory")
    existing = run_dir
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        exit_with_error(f"--run_dir={run_dir}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        exit_with_error(f"--run_dir={run_dir}: {existing} is not writable")


def resolve_case(config: ml_collections.ConfigDict) -> None:
    """Load and check the grid before anything starts; print what was derived or chosen.

    For a grid the case tables do not know, the automatic layout, regions and devices are
    written into ``config.env`` here, so the run's config.json records them.
    """
    from envs.case_setup import resolve_env_case

    try:
        notes = resolve_env_case(config.env)
    except ValueError as error:
        exit_with_error(str(error))
    for note in notes:
        print(f"grid: {note}", flush=True)


def use_compilation_cache(config: ml_collections.ConfigDict) -> None:
    """Export the cache directory so this process and every node process it starts share it."""
    directory = config.runtime.compilation_cache_dir
    if directory and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.expanduser(directory)
