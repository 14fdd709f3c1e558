"""The grid environment: power flow, the simulator's step, optimal power flow and baselines.

Sub-packages by job, each importing only from those listed before it:

* ``envs.types``, ``envs.batching``, ``envs.config_fields``: contracts and generic helpers;
* ``envs.powerflow``: network data (MATPOWER, pandapower, PyPSA), DC and AC power flow;
* ``envs.config``: the ``env`` config, its defaults and rules;
* ``envs.sim``: one step of the grid (exogenous inputs, dispatch, protection, reward,
  observation) and the static parameters it reads;
* ``envs.opf``'s solvers (HiGHS reference, oracle, merit order, batched JAX QPs) and the
  controls they produce (``envs.opf.controls``);
* ``envs.action_interface``: what an action means (setpoints, a residual, or bids that the
  single-step OPF clears);
* ``envs.env`` (``GridEnv``, ``make_env``) and ``envs.case_setup``: the environment itself;
* ``envs.evaluation.rollout`` and ``.metrics``: the evaluation rollout of any policy and its
  per-episode totals;
* ``envs.opf.baselines``: the baseline operators;
* ``envs.evaluation`` (``registry``, ``suite``): the baselines by name and the evaluation suite
  (every scenario's held-out episodes, beside the perfect-foresight oracle);
* ``envs.render``: figures and the one-line diagram;
* ``envs.interop``: Gymnasium, PettingZoo and vector adapters.

``tests/test_import_rules.py`` enforces the order.
"""
