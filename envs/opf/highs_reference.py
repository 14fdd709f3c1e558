"""The HiGHS reference of the myopic OPF: the single-step DC-OPF of a batch of states, solved
exactly on the host (host NumPy + HiGHS through ``envs.opf.oracle``), one LP per grid.

``myopic_model`` is the env's dispatch model with every branch limited to ``(1 -
rating_margin)`` of its rating; ``solve_myopic_highs`` solves one grid's step on it and
``myopic_highs_dispatch`` a whole batch (``HostStates``). The ``myopic_opf_highs`` baseline
(``envs.opf.baselines``) calls it through ``jax.pure_callback``; the JAX solver
(``envs.opf.step_qp``) and ``benchmarks.opf`` are measured against it.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from envs.opf import oracle
from envs.opf.controls import MYOPIC_RATING_MARGIN, check_rating_margin
from envs.sim.protection import dispatch_topology
from envs.types import EnvParams


class HostStates(NamedTuple):
    """What the myopic OPF reads of a batch of states, as host float64 arrays ``[B, ...]``."""

    demand: np.ndarray
    available: np.ndarray
    branch_in_service: np.ndarray
    branch_cooldown: np.ndarray
    pg: np.ndarray
    soc: np.ndarray

    @classmethod
    def of(cls, state) -> HostStates:
        return cls.of_arrays([getattr(state, name) for name in cls._fields])

    @classmethod
    def of_arrays(cls, fields) -> HostStates:
        return cls(*(np.asarray(x, np.float64) for x in fields))


def solve_myopic_highs(
    model: oracle.EnvDispatchModel, is_renewable, states: HostStates, b: int, **solver_options
):
    """Grid ``b``'s single-step DC-OPF by HiGHS (host NumPy): ``(pg [G], battery [S] MW +
    discharge, shed [N])``, on the topology the step's flows will meet (``dispatch_topology``,
    as the JAX QP), shedding as the model says (``myopic_model``: the env's share of each bus,
    whole buses where no dispatch sheds within it). Raises RuntimeError where the LP fails. The
    one HiGHS myopic reference: the evaluation's ``myopic_opf_highs`` and ``benchmarks.opf``
    both solve it."""
    in_service = dispatch_topology(states.branch_in_service[b] > 0, states.branch_cooldown[b])
    step = oracle.EpisodeInputs(
        demand_mw=states.demand[b][None],
        available_mw=states.available[b][None],
        gen_online=(is_renewable | (states.available[b] > 0.0))[None],
        branch_in_service=in_service[None],
        pg0_mw=states.pg[b],
        soc0_mwh=states.soc[b],
    )
    try:
        sol = oracle.solve_oracle(model, step, **solver_options)
    except RuntimeError as error:
        if not (model.shed_as_env and "Infeasible" in str(error)):
            raise
        # no dispatch sheds within the env's share: let whole buses shed, as the JAX QP does
        sol = oracle.solve_oracle(model._replace(shed_as_env=False), step, **solver_options)
    return sol.pg_mw[0], sol.storage_discharge_mw[0] - sol.storage_charge_mw[0], sol.shed_mw[0]


def myopic_highs_dispatch(model, is_renewable, states: HostStates, **solver_options):
    """``solve_myopic_highs`` for every grid: ``(pg [B, G], battery [B, S], shed [B, N])``."""
    batch = states.demand.shape[0]
    out = [
        solve_myopic_highs(model, is_renewable, states, b, **solver_options) for b in range(batch)
    ]
    return tuple(np.stack(x) for x in zip(*out, strict=True))


def myopic_model(
    params: EnvParams, rating_margin: float = MYOPIC_RATING_MARGIN
) -> oracle.EnvDispatchModel:
    """The env's dispatch model with every branch limited to ``(1 - rating_margin)`` of its
    rating: what the myopic OPF solves each step."""
    check_rating_margin(rating_margin)
    model = oracle.dispatch_model(params)
    network = dataclasses.replace(
        model.network, branch_rating_mw=model.network.branch_rating_mw * (1.0 - rating_margin)
    )
    # the myopic OPF gives stored energy no value: it empties the batteries when that is cheaper;
    # it sheds what the env can shed (``step_qp.device_bounds``)
    return model._replace(network=network, stored_energy_value=0.0, shed_as_env=True)
