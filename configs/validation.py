"""One check of a whole experiment config, before anything is started or written."""

import ml_collections

from configs.runtime import validate_runtime_configs
from envs.config import validate_env_config
from envs.config_fields import at_least, check_fields
from envs.sim import scenarios
from learner.config import validate_learner_config

TOP_RULES = {"seed": at_least(0), "total_env_steps": at_least(1)}


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError naming the first invalid field, its value and what is allowed."""
    check_fields("config", config, TOP_RULES)
    validate_env_config(config.env, scenarios.scenario_names())
    validate_learner_config(config.learner)
    validate_runtime_configs(config)
