"""A tiny configuration for runtime tests: few grids, short unrolls, a small network."""

from configs.default import get_config


def tiny_config():
    config = get_config()
    config.total_env_steps = 4 * 8 * 8
    config.learner.unroll_length = 4
    config.learner.batch_size = 8
    config.learner.minibatch_size = 16
    config.learner.num_epochs = 1
    config.learner.hidden_size = 8
    config.learner.num_heads = 1
    config.learner.num_encoder_layers = 1
    config.actors.num_envs = 4
    config.actors.put_timeout_s = 60.0
    config.env.horizon = 6
    # Runtime tests are about processes, queues and checkpoints: clearing bids would add the
    # one-step OPF's compilation to every node of every run (tests/envs/test_action_interface.py,
    # tests/launch/test_bids_in_acting_loops.py and the default-preset learning test cover it).
    config.env.action_interface = "setpoints"
    return config
