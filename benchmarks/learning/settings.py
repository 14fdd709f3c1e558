"""The benchmark's settings (the checked flags), its constants, and the preset as training
will load it."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path

from absl import flags

REPO = Path(__file__).resolve().parents[2]


DEFAULT_CONFIG = "configs/default.py"


# The myopic OPF with the batteries valued at the forecast's price (the teacher of
# env.storage_bid_base="forecast_price"), and the same to the day's end (the teacher of
# "forecast_to_day_end", the default preset's base): causal references of the stretch target.
# The second is the cheapest causal baseline of held-out set 1 in four scenarios of six
# (benchmarks/README.md, "The forecast's price to the day's end").
BASELINE_NAMES = ("do_nothing", "myopic_opf", "myopic_opf_valued", "myopic_opf_to_day_end")
# With --lookahead: the receding-horizon OPF too, the other causal reference of the stretch target.
LOOKAHEAD_NAME = "lookahead_opf"


# Training ends at the budget, not at a step count (no setting depends on the total).
UNBOUNDED_ENV_STEPS = 10**12


# Only sets the save cadence: the default preset's rate on a 2-core VM (README).
ASSUMED_ENV_STEPS_PER_S = 4_300


SAVES_PER_EVALUATED = 3  # saved checkpoints per evaluated one, so each grid time finds one


STOP_GRACE_S = 180.0  # after SIGINT: the update in flight, the final checkpoint, Ray's shutdown


LAUNCH_RECORD = "benchmark_launch.json"


class UsageError(ValueError):
    """A bad flag: reported in one line before anything is trained."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The checked flags: everything a benchmark call depends on, stored with its results."""

    config_path: str
    overrides: tuple[str, ...]  # each '--config.a.b=v', passed to training verbatim
    seeds: tuple[int, ...]
    budget_s: float
    scenarios: tuple[str, ...]
    episodes: int
    horizon: int
    checkpoints: int
    eval_seed: int
    out_dir: Path
    from_runs: tuple[Path, ...]
    save_every_updates: int
    cold_cache: bool
    lookahead: bool = False  # the look-ahead OPF among the references (the stretch target)
    # Each grid time's checkpoint: "latest" saved by then, or "best" by the run's validation.
    select: str = "latest"

    @property
    def baseline_names(self) -> tuple[str, ...]:
        return BASELINE_NAMES + ((LOOKAHEAD_NAME,) if self.lookahead else ())


def parse_overrides(values: list[str]) -> tuple[str, ...]:
    """Each ``--config.a.b=v`` (also ``config.a.b=v`` or ``a.b=v``), several per value allowed."""
    out = []
    for value in values:
        for item in shlex.split(value):
            item = item.removeprefix("--").removeprefix("config.")
            key = item.split("=", 1)[0]
            if "=" not in item or not key or key.startswith("-"):
                raise UsageError(f"--override {item!r}: expected --config.<field>=<value>")
            out.append(f"--config.{item}")
    return tuple(out)


def env_only(overrides: tuple[str, ...], why: str) -> tuple[str, ...]:
    """``overrides`` if each sets an env field (``--config.env.<field>``), else a UsageError
    naming the first that does not, with ``why``: a trained policy's env may change, nothing
    else of its run."""
    for item in overrides:
        if not item.startswith("--config.env."):
            raise UsageError(f"--override {item!r}{why}")
    return overrides


def with_env_overrides(env_config, overrides: tuple[str, ...]):
    """``env_config`` with ``--config.env.<field>=<value>`` overrides applied and checked, as
    training would apply them (the evaluation's env under ``--from_runs``)."""
    import copy

    import ml_collections
    from ml_collections import config_flags

    from envs.config import validate_env_config
    from envs.sim import scenarios

    if not overrides:
        return env_config
    argv = ["learning", *overrides]
    holder = flags.FlagValues()
    base = ml_collections.ConfigDict({"env": copy.deepcopy(env_config)})
    try:
        config_flags.DEFINE_config_dict("config", base, "", holder, sys_argv=argv)
        holder(argv)
        evaluated = holder.config.env
        validate_env_config(evaluated, scenarios.scenario_names())
    except (AttributeError, KeyError) as err:
        field = str(err).strip("\"'")
        raise UsageError(f"--override: the env config has no field {field!r}") from None
    except (flags.Error, TypeError) as err:
        raise UsageError(f"--override: {str(err).strip().splitlines()[0]}") from None
    return evaluated


def load_preset(config_path: str, overrides: tuple[str, ...]):
    """The preset with the overrides applied by ml_collections, exactly as training will."""
    from ml_collections import config_flags

    from learner.config import validate_learner_config

    argv = ["learning", f"--config={config_path}", *overrides]
    holder = flags.FlagValues()
    config_flags.DEFINE_config_file("config", config_path, "", holder, sys_argv=argv)
    try:
        holder(argv)
        config = holder.config
        validate_learner_config(config.learner)
    except (AttributeError, KeyError) as err:
        raise UsageError(f"--override: the preset has no field {err}") from None
    except (flags.Error, TypeError, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"--config/--override: {message}") from None
    return config


def progress(message: str) -> None:
    """Progress on stderr: training alone takes seeds x budget."""
    print(f"[learning] {message}", file=sys.stderr, flush=True)


def read_json(path: Path):
    """A JSON file's content, None where the file is absent (runs not launched here)."""
    return json.loads(path.read_text()) if path.is_file() else None
