"""Which buses are still energised, on the host (NumPy): the connected components of the
in-service branches, and the one kept: the slack's, or under ``env.island_rule="largest_load"``
the one with the most demand of those that hold an online unit.

The environment's step asks the same question inside ``jit`` with
``envs.powerflow.dcpf.energised_buses`` (tested equal to :func:`slack_component` and
:func:`kept_component`). Both are needed: a traced step cannot call scipy, and the host callers
cannot wait for a compile: code that runs before any device array exists (building a
``Grid``), beside an LP solver (``envs.opf.dc_opf``, ``envs.opf.oracle``) or on recorded
episodes (``envs.render``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


def island_labels(n_bus: int, branch_from, branch_to, closed=None) -> np.ndarray:
    """[N] int: a component label per bus over the branches with ``closed`` [L] True
    (None: all)."""
    branch_from, branch_to = np.asarray(branch_from), np.asarray(branch_to)
    if closed is not None:
        closed = np.asarray(closed, bool)
        branch_from, branch_to = branch_from[closed], branch_to[closed]
    graph = sp.coo_array(
        (np.ones(len(branch_from)), (branch_from, branch_to)), shape=(n_bus, n_bus)
    )
    return connected_components(graph, directed=False)[1]


def slack_component(n_bus: int, branch_from, branch_to, slack: int, closed=None) -> np.ndarray:
    """[N] bool: buses joined to ``slack`` through the branches with ``closed`` [L] True."""
    label = island_labels(n_bus, branch_from, branch_to, closed)
    return label == label[slack]


def kept_component(
    n_bus: int, branch_from, branch_to, slack: int, closed, demand_mw, has_unit
) -> np.ndarray:
    """[N] bool: of the islands over the branches ``closed`` that hold a bus with ``has_unit``
    [N] (an online conventional unit), the one with the most ``demand_mw`` [N]; the slack's
    where none holds more (``env.island_rule="largest_load"``, as
    ``envs.powerflow.dcpf.IslandChoice``)."""
    label = island_labels(n_bus, branch_from, branch_to, closed)
    demand = np.bincount(label, weights=np.asarray(demand_mw, float), minlength=n_bus)
    fed = np.bincount(label, weights=np.asarray(has_unit, float), minlength=n_bus) > 0
    worth = np.where(fed, demand, -1.0)
    best = int(np.argmax(worth))
    kept = best if worth[best] > worth[label[slack]] else label[slack]
    return label == kept


def energised_buses(network, branch_in_service, demand_mw=None, has_unit=None) -> np.ndarray:
    """[..., N] bool: the buses joined to the slack of ``network`` through the branches in
    service [..., L] (one pattern per leading index), the slack's island. ``network`` is anything with ``n_bus``,
    ``branch_from``, ``branch_to`` and ``slack``: a ``Grid`` or an ``envs.opf.dc_opf.DCNetwork``.
    With ``demand_mw`` and ``has_unit`` [..., N], the island ``kept_component`` keeps instead.
    """
    in_service = np.asarray(branch_in_service, bool)
    args = (np.asarray(network.branch_from), np.asarray(network.branch_to), int(network.slack))
    patterns = in_service.reshape(-1, in_service.shape[-1])
    if demand_mw is None:
        buses = [slack_component(network.n_bus, *args, closed) for closed in patterns]
    else:
        demand = np.broadcast_to(demand_mw, (*in_service.shape[:-1], network.n_bus))
        units = np.broadcast_to(has_unit, demand.shape)
        demand, units = demand.reshape(-1, network.n_bus), units.reshape(-1, network.n_bus)
        buses = [
            kept_component(network.n_bus, *args, closed, d, u)
            for closed, d, u in zip(patterns, demand, units, strict=True)
        ]
    return np.array(buses, bool).reshape(*in_service.shape[:-1], network.n_bus)
