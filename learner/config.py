"""Learner sub-config: ``default_learner_config()`` and its validation.

Batch vocabulary (used by every learner docstring):

- An update consumes a ``Trajectory`` of shape ``[T, B, A, ...]`` with
  ``T = unroll_length`` and ``B = batch_size`` (grids, summed over all items and
  all learner devices).
- A **sample** is one ``(t, b)`` grid-step *with all its agents*; an update holds
  ``T * B`` samples. ``minibatch_size`` counts samples, so a minibatch of 128
  holds ``128 * A`` agent-steps.
- Minibatches are drawn from **cells**: the grids are split into
  ``shuffle_groups`` interleaved groups (grid ``b`` is in group ``b %
  shuffle_groups``) and a cell is one ``(t, group)`` pair, i.e. ``B /
  shuffle_groups`` samples. Each epoch permutes the ``T * shuffle_groups``
  cells; a minibatch is a run of consecutive cells of the permutation. Every
  cell spans all learner devices equally, so each device holds its shard of
  every minibatch and the update's maths depends only on the config, never on
  the device count. ``shuffle_groups = 0`` picks ``B / num_learner_devices``
  (the finest shuffle the devices can share; the maths then depends on the
  device count).
"""

import math

import ml_collections
import numpy as np

from envs.config_fields import (
    FINITE,
    NON_NEGATIVE,
    POSITIVE,
    UNIT_INTERVAL,
    Rule,
    at_least,
    check_fields,
    merged_onto,
    one_of,
)
from envs.sim.scenarios import scenario_names

CRITIC_KINDS = ("mappo", "ippo")
PARAMETER_SHARING_KINDS = ("shared", "independent")
REWARD_SCALING_KINDS = ("per_type", "global", "none")
REWARD_BASELINE_KINDS = ("none", "teacher")
ADVANTAGE_GROUP_KINDS = ("agent_type", "scenario")
TEACHER_PULL_ANCHORS = ("zero", "start")
# Deprecated: the action prior is the environment's action interface (env.action_interface,
# env.residual_scale, env.bid_scale) since the bids are cleared in env.step. The old fields are
# still read for one release (configs.validation.adopt_learner_action_prior).
LEGACY_ACTION_PRIOR_FIELDS = ("action_prior", "residual_scale", "bid_scale")


def default_learner_config() -> ml_collections.ConfigDict:
    """PPO/MAPPO defaults. See the module docstring for what a 'sample' is."""
    config = ml_collections.ConfigDict()
    # Batch geometry of one update.
    config.unroll_length = 32  # T, time steps per trajectory
    config.batch_size = 64  # B, grids per update over all learner devices
    config.minibatch_size = 128  # samples ((t, b) grid-steps with all agents) per minibatch
    config.num_epochs = 10
    config.shuffle_groups = 0  # 0: B / num_learner_devices (see module docstring)
    # Networks.
    config.critic = "mappo"  # "mappo": centralised value from global_state; "ippo": local obs only
    config.parameter_sharing = "shared"  # "shared" per agent type (+ id embedding) or "independent"
    config.hidden_size = 128
    config.num_encoder_layers = 2
    config.num_attention_layers = 1
    config.num_heads = 8
    config.init_log_std = -0.5  # initial log std of the pre-tanh Gaussian
    # AR(1) coefficient of the exploration noise from one env step to the next (0: independent
    # draws). At c a deviation lasts ~1 / (1 - c) steps: 0.95 is ~20 steps, 1.7 h of 5-minute
    # steps, so an agent tries holding a course (a battery's reserve) rather than a flicker.
    config.exploration_noise_correlation = 0.0
    # Initial mean action of the named agent types' sampled slots, "type=value[,type=value]",
    # each value in [-0.95, 0.95] (after the tanh; unnamed types start at 0, the teacher under
    # the bids interface). A battery's bid below the cheapest unit's marginal cost clears like a
    # zero bid, so a start there is still the teacher, but its exploration reaches the bids
    # that hold energy (benchmarks/README.md, "A start on the edge of the battery's plateau").
    config.type_init_action = ""
    # Deprecated, None = unset: see LEGACY_ACTION_PRIOR_FIELDS.
    config.action_prior = None
    config.residual_scale = None
    config.bid_scale = None
    # PPO.
    config.learning_rate = 3e-4
    # 0: constant; N > 0: the step size falls linearly to 0 over the first N updates.
    config.learning_rate_decay_updates = 0
    config.adam_eps = 1e-5
    config.clip_eps = 0.2
    config.value_clip_eps = 10.0
    config.entropy_coef = 0.01
    # 0: the bonus is constant; N > 0: it falls linearly to 0 over the first N updates.
    config.entropy_decay_updates = 0
    config.value_coef = 0.5
    # L2 pull of the deterministic action toward the teacher's zero action (zero bids: the
    # myopic OPF): the policy leaves its teacher only where the advantage outweighs it.
    config.teacher_pull = 0.0
    # Where the pull draws each action: "zero" (the teacher's own action) or "start" (each
    # agent's ``type_init_action``). A start on the battery's plateau clears like zero bids, so
    # either anchor is the teacher on quiet days; only zero also draws a battery's bid toward
    # valuing its stored energy at nothing.
    config.teacher_pull_toward = "zero"
    config.max_grad_norm = 0.5
    config.normalise_advantages = True  # per minibatch and per agent type
    # "scenario": normalised per agent type and per scenario (envs.sim.scenarios), so each
    # scenario weighs alike in the gradient whatever its reward's scale (the per-step reward's
    # spread is ~50 x larger on failure days than on normal days); "agent_type": pooled.
    config.advantage_groups = "agent_type"
    # Discounting. With use_spec_discounts the per-type gamma/lambda of the EnvSpec win;
    # otherwise gamma/gae_lambda apply to every agent type.
    config.use_spec_discounts = True
    config.gamma = 0.99
    config.gae_lambda = 0.95
    # Per-type overrides on top of either, "type=value[,type=value]", e.g. type_gamma="safety=0.9":
    # the hierarchical layout's safety agent has one step of credit (gamma 0) by default.
    config.type_gamma = ""
    config.type_lambda = ""
    # Normalisation.
    config.normalise_observations = True
    config.obs_clip = 10.0
    config.reward_scaling = "per_type"  # divide rewards by the running std of discounted returns
    # "teacher": the actors train on the reward minus the teacher's (the zero action of the bids
    # or merit_residual interface) on the same weather and outages (envs/teacher_relative.py);
    # it costs a second env step per actor step. "none": the env's reward.
    config.reward_baseline = "none"
    config.seed = 0
    # Checkpoints (learner/checkpoint.py).
    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.save_every_updates = 100
    config.checkpoint.max_to_keep = 3  # latest checkpoints kept, besides the best one
    # N > 0: each checkpoint saved on the cadence first runs the greedy policy on N whole-day
    # validation episodes per scenario (learner/validation.py) and stores the metrics, which
    # rank the checkpoints for 'best'. 0: checkpoints carry no metrics and none is 'best'.
    config.checkpoint.validation_episodes = 0
    config.checkpoint.best_metric = "validation/cost_vs_teacher"
    config.checkpoint.best_mode = "min"
    return config


RULES = {
    "unroll_length": at_least(1),
    "batch_size": at_least(1),
    "minibatch_size": at_least(1),
    "num_epochs": at_least(1),
    "shuffle_groups": at_least(0),
    "critic": one_of(*CRITIC_KINDS),
    "parameter_sharing": one_of(*PARAMETER_SHARING_KINDS),
    "hidden_size": at_least(1),
    "num_encoder_layers": at_least(1),
    "num_attention_layers": at_least(0),
    "num_heads": at_least(1),
    "init_log_std": FINITE,
    "exploration_noise_correlation": Rule(
        lambda v: FINITE.test(v) and 0 <= v < 1, "a number in [0, 1)"
    ),
    "learning_rate": POSITIVE,
    "learning_rate_decay_updates": at_least(0),
    "adam_eps": POSITIVE,
    "clip_eps": POSITIVE,
    "value_clip_eps": POSITIVE,
    "entropy_coef": NON_NEGATIVE,
    "entropy_decay_updates": at_least(0),
    "value_coef": NON_NEGATIVE,
    "teacher_pull": NON_NEGATIVE,
    "teacher_pull_toward": one_of(*TEACHER_PULL_ANCHORS),
    "max_grad_norm": POSITIVE,
    "gamma": UNIT_INTERVAL,
    "gae_lambda": UNIT_INTERVAL,
    "obs_clip": POSITIVE,
    "reward_scaling": one_of(*REWARD_SCALING_KINDS),
    "advantage_groups": one_of(*ADVANTAGE_GROUP_KINDS),
    "reward_baseline": one_of(*REWARD_BASELINE_KINDS),
    "seed": at_least(0),
    "checkpoint.save_every_updates": at_least(1),
    "checkpoint.max_to_keep": at_least(1),
    "checkpoint.validation_episodes": at_least(0),
    "checkpoint.best_mode": one_of("max", "min"),
}


def learner_with_defaults(config) -> ml_collections.ConfigDict:
    """``config`` with every field it lacks at its default (a checkpoint's learner config stored
    before the field existed)."""
    return merged_onto(default_learner_config(), config)


# The per-type fields' ranges: discounts in [0, 1]; an initial action short of the tanh's
# saturation, where the slot could hardly move.
TYPE_VALUE_BOUNDS = {
    "type_gamma": (0.0, 1.0),
    "type_lambda": (0.0, 1.0),
    "type_init_action": (-0.95, 0.95),
}


def parse_type_values(field: str, text: str) -> dict[str, float]:
    """``"safety=0.9,operational=0.95"`` -> ``{"safety": 0.9, "operational": 0.95}``, each value
    within ``TYPE_VALUE_BOUNDS[field]``; the empty string is no override. Raises ValueError
    naming ``field``."""
    low, high = TYPE_VALUE_BOUNDS[field]
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, raw = item.partition("=")
        try:
            value = float(raw) if sep and name.strip() else math.nan
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise ValueError(
                f"learner.{field}={text!r} is invalid: allowed 'type=value[,type=value]' with "
                f"each value in [{low:g}, {high:g}]"
            )
        values[name.strip()] = value
    return values


# The fields of per-type values, "type=value[,type=value]".
TYPE_VALUE_FIELDS = ("type_gamma", "type_lambda", "type_init_action")


def per_agent_type_values(field: str, text: str, spec, default: np.ndarray) -> np.ndarray:
    """``default [A]`` with the agents of each type named in ``text`` (``parse_type_values``) set
    to its value; a name the layout lacks raises ValueError naming ``field`` and the types."""
    values = np.array(default, np.float32)
    agent_type = np.asarray(spec.agent_type)
    for name, value in parse_type_values(field, text).items():
        check_type_name(field, name, spec.agent_type_names)
        values[agent_type == spec.agent_type_names.index(name)] = value
    return values


def check_type_name(field: str, name: str, type_names: tuple[str, ...]) -> None:
    """ValueError unless the layout's ``type_names`` include ``name`` (from ``learner.field``)."""
    if name not in type_names:
        raise _lacking_types([(field, name)], type_names)


def check_type_fields(config: ml_collections.ConfigDict, type_names: tuple[str, ...]) -> None:
    """Every per-type field names only agent types the layout has (checked before a grid is
    built: the default preset names its ``prosumer`` agents, which other layouts lack). One
    line names every field to clear, so that a user meets the refusal once."""
    missing = [
        (field, name)
        for field in TYPE_VALUE_FIELDS
        for name in parse_type_values(field, config.get(field, ""))
        if name not in type_names
    ]
    if missing:
        raise _lacking_types(missing, type_names)


def _lacking_types(missing: list[tuple[str, str]], type_names: tuple[str, ...]) -> ValueError:
    """The one-line refusal of ``(field, type name)`` pairs whose types the layout lacks."""
    fields = list(dict.fromkeys(field for field, _ in missing))
    names = list(dict.fromkeys(name for _, name in missing))
    one = len(fields) == 1
    return ValueError(
        f"learner.{', learner.'.join(fields)} {'names' if one else 'name'} "
        f"agent type{'' if len(names) == 1 else 's'} {', '.join(repr(n) for n in names)}, "
        f"which this layout lacks: it has {', '.join(type_names)} "
        f"({' '.join(f'--config.learner.{field}=' for field in fields)} "
        f"{'clears it' if one else 'clear them'})"
    )


def validate_learner_config(config: ml_collections.ConfigDict) -> None:
    """Reject invalid values with one clear message (batch geometry is checked by the Learner)."""
    check_fields("learner", config, RULES)
    for field in TYPE_VALUE_FIELDS:
        parse_type_values(field, config.get(field, ""))
    if config.advantage_groups != "agent_type" and not config.normalise_advantages:
        raise ValueError(
            f"learner.advantage_groups={config.advantage_groups!r} needs "
            "learner.normalise_advantages=True (the groups are what advantages are normalised over)"
        )
    if config.hidden_size % config.num_heads != 0:
        raise ValueError(
            f"learner.hidden_size ({config.hidden_size}) must be divisible by "
            f"learner.num_heads ({config.num_heads})"
        )


def advantage_group_count(config) -> int:
    """Advantage normalisation groups per agent type: one per scenario, or 1 (pooled)."""
    if config.get("advantage_groups", "agent_type") == "scenario":
        return len(scenario_names())
    return 1
