"""How the learner's policy acts: the environment and policy an actor or evaluator builds.

The acting step and the rollout themselves are ``replay.rollout``'s (shared with the actors,
which never import the learner); the launcher hands ``build_env_and_policy`` to the actor and
evaluator nodes.
"""

from __future__ import annotations

import ml_collections


def build_env_and_policy(config: ml_collections.ConfigDict):
    """``(env, env_params, policy)`` for an experiment config, as the learner builds them."""
    from envs.env import make_env
    from learner.policy import make_policy

    env, env_params = make_env(config.env)
    policy = make_policy(config.learner, env.spec(env_params))
    return env, env_params, policy
