"""Which buses are still energised, on the host (NumPy): the connected components of the
in-service branches, and the one holding the slack.

The environment's step asks the same question inside ``jit`` with
``envs.powerflow.dcpf.energised_buses`` (tested equal to :func:`slack_component`). Both are
needed: a traced step cannot call scipy, and the host callers cannot wait for a compile: code
that runs before any device array exists (building a ``Grid``), beside an LP solver
(``envs.opf.dc_opf``, ``envs.opf.oracle``) or on recorded episodes (``envs.render``).
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


def energised_buses(network, branch_in_service) -> np.ndarray:
    """[..., N] bool: the buses joined to the slack of ``network`` through the branches in
    service [..., L] (one pattern per leading index). ``network`` is anything with ``n_bus``,
    ``branch_from``, ``branch_to`` and ``slack``: a ``Grid`` or an ``envs.opf.dc_opf.DCNetwork``.
    """
    in_service = np.asarray(branch_in_service, bool)
    args = (np.asarray(network.branch_from), np.asarray(network.branch_to), int(network.slack))
    patterns = in_service.reshape(-1, in_service.shape[-1])
    buses = [slack_component(network.n_bus, *args, closed) for closed in patterns]
    return np.array(buses, bool).reshape(*in_service.shape[:-1], network.n_bus)
