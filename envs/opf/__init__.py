"""Optimal power flow, the perfect-foresight bound and the baselines a policy is judged against.

* ``dc_opf``: the exact reference, a sparse LP solved with HiGHS (``lp``), single-step or
  multi-period; its parts ``dc_network`` (the data), ``topology_cache`` (PTDFs per outage
  pattern), ``lp_rows`` (the LP) and ``cost_cuts`` (the cost curves' outer approximation);
* ``step_qp`` and ``lookahead_qp``: single-step and receding-horizon OPF as dense QPs in JAX,
  batched on the device;
* ``merit_order``: copper-plate economic dispatch, exact and iteration-free;
* ``oracle``: the perfect-foresight cost floor of an episode;
* ``highs_reference``: the single-step OPF solved exactly by HiGHS, one grid at a time;
* ``baselines``: policies built on these (scored by ``envs.evaluation``).
"""
