"""Which buses are still energised, on the host (NumPy): the connected components of the
in-service branches, and the one holding the slack.

The environment's step asks the same question inside ``jit`` with
``envs.powerflow.dcpf.energised_buses`` (tested equal to :func:`slack_component`); this one serves
code that runs before any device array exists (building a ``Grid``) or beside an LP solver
(``envs.opf.dc_opf``, ``envs.opf.oracle``).
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
