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

import ml_collections

CRITIC_KINDS = ("mappo", "ippo")
PARAMETER_SHARING_KINDS = ("shared", "independent")
REWARD_SCALING_KINDS = ("per_type", "global", "none")
ACTION_PRIOR_KINDS = ("none", "merit_order", "step_opf")


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
    # Action prior (learner/prior.py): "none"; "merit_order" (the action is a residual, times
    # residual_scale, on the copper-plate economic dispatch); "step_opf" (the action bids up
    # to bid_scale $/MWh on each unit's and battery's offer into the single-step DC-OPF).
    config.action_prior = "none"
    config.residual_scale = 2.0
    config.bid_scale = 50.0
    # PPO.
    config.learning_rate = 3e-4
    config.adam_eps = 1e-5
    config.clip_eps = 0.2
    config.value_clip_eps = 10.0
    config.entropy_coef = 0.01
    config.value_coef = 0.5
    config.max_grad_norm = 0.5
    config.normalise_advantages = True  # per minibatch and per agent type
    # Discounting. With use_spec_discounts the per-type gamma/lambda of the EnvSpec win;
    # otherwise gamma/gae_lambda apply to every agent type.
    config.use_spec_discounts = True
    config.gamma = 0.99
    config.gae_lambda = 0.95
    # Normalisation.
    config.normalise_observations = True
    config.obs_clip = 10.0
    config.reward_scaling = "per_type"  # divide rewards by the running std of discounted returns
    config.seed = 0
    # Checkpoints (learner/checkpoint.py).
    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.save_every_updates = 100
    config.checkpoint.max_to_keep = 3  # latest checkpoints kept, besides the best one
    config.checkpoint.best_metric = "eval/return"
    config.checkpoint.best_mode = "max"
    return config


def validate_learner_config(config: ml_collections.ConfigDict) -> None:
    """Reject invalid choices with one clear message (batch geometry is checked by the Learner)."""
    _check_choice(config, "critic", CRITIC_KINDS)
    _check_choice(config, "parameter_sharing", PARAMETER_SHARING_KINDS)
    _check_choice(config, "reward_scaling", REWARD_SCALING_KINDS)
    _check_choice(config, "action_prior", ACTION_PRIOR_KINDS)
    for name in ("residual_scale", "bid_scale"):
        if not config[name] > 0:
            raise ValueError(f"learner.{name} must be > 0, got {config[name]}")
    if config.hidden_size % config.num_heads != 0:
        raise ValueError(
            f"learner.hidden_size ({config.hidden_size}) must be divisible by "
            f"learner.num_heads ({config.num_heads})"
        )
    for name in ("unroll_length", "batch_size", "minibatch_size", "num_epochs", "hidden_size"):
        if int(config[name]) <= 0:
            raise ValueError(f"learner.{name} must be positive, got {config[name]}")
    if config.shuffle_groups < 0:
        raise ValueError(f"learner.shuffle_groups must be >= 0, got {config.shuffle_groups}")
    if config.checkpoint.best_mode not in ("max", "min"):
        raise ValueError(
            f"learner.checkpoint.best_mode must be 'max' or 'min', got {config.checkpoint.best_mode!r}"
        )


def _check_choice(config: ml_collections.ConfigDict, name: str, choices: tuple[str, ...]) -> None:
    if config[name] not in choices:
        raise ValueError(f"learner.{name} must be one of {choices}, got {config[name]!r}")
