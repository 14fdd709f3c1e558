"""Power transfer distribution factors (PTDF) of the DC model, for any topology.

With ``A`` [L, N] the branch-bus incidence (+1 at the from bus, -1 at the to bus) and ``b`` [L]
the branch susceptances (0 for a branch out of service), flows are ``diag(b) A theta`` and the
nodal balance is ``B theta = p`` with ``B = Aᵀ diag(b) A``. ``B`` is singular: each island
needs a reference bus whose angle is held at 0, and buses with no path to any reference drop
out. The caller names the buses whose angles are solved (``solved`` [N]); the rest are
references or dead. Then

    X = (B restricted to the solved buses)⁻¹, 0 in the other rows and columns
    PTDF = diag(b) A X   [L, N]: flow per unit injected at a bus, withdrawn at its reference

Who reduces out what:

* the environment (``envs.powerflow.grid``, ``envs.opf.step_qp``, ``envs.opf.lookahead_qp``)
  solves the buses of the island it keeps, except its reference (``reference_bus``: the slack,
  unless ``env.island_rule`` kept another island): buses cut off carry nothing;
* the HiGHS OPF (``envs.opf.dc_opf``) balances every island on its own, so it solves all buses
  but one reference per island (the slack in the slack's island).

One formulation serves NumPy (the host: building a ``Grid``, the HiGHS OPF) and JAX (inside
``jit``, per step). Only the inversion differs: on the host the solved block is cut out and
inverted (float64, exactly the reduced system); under ``jit`` the set of solved buses is traced,
so a cut-out has no static shape, and the other rows and columns get an identity block instead,
which leaves the inverse of the solved block as it is.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from envs.batching import lapack_batch_safe


class DCSensitivities(NamedTuple):
    """The DC model of one topology (NumPy or JAX arrays, by the ``xp`` that built it)."""

    ptdf: object  # [L, N] flow per unit injected at a bus and withdrawn at its reference
    bus_inverse: object  # [N, N] angle per unit injected (0 at references and dead buses)
    flow_per_angle: object  # [L, N] diag(b) A: flow per unit angle at a bus


def incidence_matrix(n_bus: int, branch_from, branch_to, xp=np):
    """[L, N] branch-bus incidence: +1 at the from bus, -1 at the to bus (float, the default
    float type of ``xp``)."""
    buses = xp.arange(n_bus)
    at_from = (branch_from[:, None] == buses[None, :]).astype(float)
    return at_from - (branch_to[:, None] == buses[None, :]).astype(float)


def dc_sensitivities(incidence, susceptance, solved, xp=np) -> DCSensitivities:
    """PTDF, reduced inverse and ``diag(b) A`` of the network with branch-bus ``incidence``
    [L, N] and branch ``susceptance`` [L] (0 for a branch out of service), whose angles are
    solved at the buses ``solved`` [N] bool (see the module docstring)."""
    flow_per_angle = susceptance[:, None] * incidence
    bus_matrix = incidence.T @ flow_per_angle
    n = bus_matrix.shape[-1]
    if xp is np:
        block = np.ix_(solved, solved)
        inverse = np.zeros((n, n))
        inverse[block] = np.linalg.inv(bus_matrix[block])
    else:
        both = solved[:, None] & solved[None, :]
        padded = xp.where(both, bus_matrix, xp.eye(n, dtype=bus_matrix.dtype))
        invert = lapack_batch_safe(xp.linalg.inv, n**3)  # an LU and its triangular solves
        inverse = xp.where(both, invert(padded), 0.0)
    return DCSensitivities(flow_per_angle @ inverse, inverse, flow_per_angle)


def reference_bus(grid, energised):
    """[...] int: the bus whose angle a solve of the island kept holds: the slack while it is
    energised, else the island's first bus (its injections balance, so any of them serves)."""
    return jnp.where(energised[..., grid.slack], grid.slack, jnp.argmax(energised, axis=-1))


def ptdf_matrix(grid, in_service, energised):
    """``[L, N]`` flow on each branch per MW injected at each bus (withdrawn at
    ``reference_bus``) of a ``Grid`` in JAX, for the branches ``in_service`` [L] and the buses
    ``energised`` [N] (the island kept, ``envs.powerflow.dcpf.energised_buses``; 0 elsewhere)."""
    incidence = incidence_matrix(grid.n_bus, grid.branch_from, grid.branch_to, jnp)
    susceptance = jnp.where(in_service, grid.branch_dc_b, 0.0)
    solved = energised & (jnp.arange(grid.n_bus) != reference_bus(grid, energised))
    return dc_sensitivities(incidence, susceptance, solved, jnp).ptdf
