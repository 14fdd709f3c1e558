"""The evaluation of policies on held-out episodes: one place for the rollout, the metrics and
the suite.

* ``envs.evaluation.rollout``: ``rollout`` runs one or several policies (``ActFn``) over the
  same episodes, batched (``jax.vmap`` over grids, ``lax.scan`` over time, ``lax.switch`` over
  policies); ``oracle_inputs`` hands a recorded episode to the perfect-foresight oracle;
* ``envs.evaluation.metrics``: per-episode totals of a rollout and of the oracle's dispatches,
  and their summary (means, optimality gap);
* ``envs.evaluation.registry``: the baselines and the scenarios by name;
* ``envs.evaluation.suite``: a method over every scenario's held-out episodes, the oracle
  solving in worker processes beside the rollouts (``run_suite``).

The checkpoint side (restoring a trained policy, the written results and report) is
``launch.evaluation``; ``python -m launch.evaluate`` is the command line.

This file imports nothing: ``envs.opf.baselines`` (below the suite, above the rollout) keeps
re-exporting the rollout's names, so importing the package must not import the baselines.
"""
