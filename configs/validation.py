"""One check of a whole experiment config, before anything is started or written."""

import warnings

import ml_collections

from configs.runtime import validate_runtime_configs
from envs.config import validate_env_config
from envs.config_fields import at_least, check_fields
from envs.sim import scenarios
from envs.sim.devices import layout_before_the_grid
from envs.sim.layouts import LAYOUT_TYPE_NAMES
from learner.config import (
    LEGACY_ACTION_PRIOR_FIELDS,
    check_type_fields,
    validate_learner_config,
)
from learner.validation import check_best_metric

TOP_RULES = {"seed": at_least(0), "total_env_steps": at_least(1)}


# learner.action_prior values -> the env.action_interface that replaced them.
LEGACY_ACTION_PRIORS = {"none": "setpoints", "merit_order": "merit_residual", "step_opf": "bids"}


def adopt_learner_action_prior(config: ml_collections.ConfigDict) -> None:
    """Move the deprecated ``learner.action_prior`` / ``residual_scale`` / ``bid_scale`` of a
    config (a script's flags, or a checkpoint stored before the env cleared the bids) into
    ``env.action_interface`` / ``residual_scale`` / ``bid_scale``, with a FutureWarning."""
    learner = config.learner
    given = [name for name in LEGACY_ACTION_PRIOR_FIELDS if learner.get(name) is not None]
    if not given:
        return
    prior = learner.get("action_prior")
    if prior is not None:
        if prior not in LEGACY_ACTION_PRIORS:
            allowed = ", ".join(LEGACY_ACTION_PRIORS)
            raise ValueError(f"learner.action_prior={prior!r} is invalid: allowed one of {allowed}")
        config.env.action_interface = LEGACY_ACTION_PRIORS[prior]
    for name in ("residual_scale", "bid_scale"):
        if learner.get(name) is not None:
            config.env[name] = float(learner[name])
        learner[name] = None
    learner.action_prior = None
    moved = ", ".join(f"learner.{name}" for name in given)
    warnings.warn(
        f"{moved} {'is' if len(given) == 1 else 'are'} deprecated and will be removed in the "
        "next release: the action's meaning "
        f"is the environment's now (env.action_interface={config.env.action_interface!r}, "
        f"env.residual_scale, env.bid_scale)",
        FutureWarning,
        stacklevel=2,
    )


def adopt_runtime_checkpoint_cadence(config: ml_collections.ConfigDict) -> None:
    """Move the deprecated ``runtime.checkpoint_every_updates`` (a second knob for the one
    cadence, which silently won over ``learner.checkpoint.save_every_updates``) into the
    learner's, with a FutureWarning."""
    every = config.runtime.get("checkpoint_every_updates", 0)
    if not isinstance(every, int) or every <= 0:
        return  # unset, or invalid: the runtime's own rules name it
    config.learner.checkpoint.save_every_updates = every
    config.runtime.checkpoint_every_updates = 0
    warnings.warn(
        "runtime.checkpoint_every_updates is deprecated and will be removed in the next "
        f"release: set learner.checkpoint.save_every_updates (now {every})",
        FutureWarning,
        stacklevel=2,
    )


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError naming the first invalid field, its value and what is allowed.

    Deprecated fields are moved to where they live now first (``adopt_learner_action_prior``,
    ``adopt_runtime_checkpoint_cadence``)."""
    check_fields("config", config, TOP_RULES)
    adopt_learner_action_prior(config)
    adopt_runtime_checkpoint_cadence(config)
    validate_env_config(config.env, scenarios.scenario_names())
    validate_learner_config(config.learner)
    layout = layout_before_the_grid(config.env)
    if layout is not None:  # else the policy checks the names once the grid is built
        check_type_fields(config.learner, LAYOUT_TYPE_NAMES[layout])
    check_best_metric(config)
    validate_runtime_configs(config)
