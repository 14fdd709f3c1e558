"""How the learner's policy acts: the environment and policy an actor or evaluator builds.

The acting step and the rollout themselves are ``replay.rollout``'s (shared with the actors,
which never import the learner); the launcher hands ``build_env_and_policy`` to the actor and
evaluator nodes.
"""

from __future__ import annotations

import ml_collections


def build_env_and_policy(config: ml_collections.ConfigDict, training: bool = True):
    """``(env, env_params, policy)`` for an experiment config, as the learner builds them.

    ``training``: the env the actors step, whose reward may be measured against the teacher
    (``learner.reward_baseline``); ``False`` gives the plain env an evaluator steps.
    """
    from envs.env import make_env
    from learner.policy import make_policy

    env, env_params = make_env(config.env)
    if training and config.learner.get("reward_baseline", "none") == "teacher":
        from envs.teacher_relative import TeacherRelativeEnv

        env = TeacherRelativeEnv(env, env_params)
    policy = make_policy(config.learner, env.spec(env_params))
    return env, env_params, policy
