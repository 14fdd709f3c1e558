"""Thermal ratings for cases whose data carries none (rateA of 0, or 9900 and above).

MATPOWER reads ``rateA = 0`` as "unlimited", and cases converted from the IEEE CDF write
9900 for the same; an unlimited branch would never congest, so both get a rating here. A
negative rating means nothing in MATPOWER and is an error (``envs.powerflow.grid``).

The method (documented with its parameters in envs/powerflow/cases/RATINGS.md):

1. Dispatch rule at load level ``alpha``: every bus load (Pd, Qd) and every
   in-service generator's case dispatch Pg is multiplied by ``alpha``; bus shunt
   conductance Gs is consumed at 1 p.u. voltage; the slack bus absorbs the rest.
2. Base flow of each branch at ``alpha = 1``: the larger of |DC active flow| and,
   where an AC solution is available, the AC apparent flow at either end.
3. rating = max(ceil(MARGIN × base flow), ceil(FLOOR_FRACTION × largest base flow)) MVA.

DC flows scale linearly with ``alpha`` under this rule, so no branch is over its
rating at base load (MARGIN > 1) while branches whose rating the margin sets
are over it at PEAK_LOAD (MARGIN < PEAK_LOAD): the grid congests at peak load
but not at average load. The shipped case files carry ratings computed with DC
and AC base flows (MATPOWER's models as implemented by PYPOWER); for user files
with missing ratings ``build_grid`` applies the rule with DC flows only.
"""

from __future__ import annotations

import numpy as np

MARGIN = 1.15  # rating / |base-load flow|; between 1 (base) and PEAK_LOAD
PEAK_LOAD = 1.2  # load level at which the rated grid congests
FLOOR_FRACTION = 0.25  # lightly loaded branches get this share of the largest base flow
UNRATED_MVA = 9900.0  # MATPOWER cases converted from IEEE CDF use this for "no limit"


def needs_rating(rate_a: np.ndarray) -> np.ndarray:
    """True where a rateA value means "no limit": 0, 9900 or more (+inf included), or NaN."""
    rate_a = np.asarray(rate_a, dtype=np.float64)
    return np.isnan(rate_a) | (rate_a == 0) | (rate_a >= UNRATED_MVA)


def ratings_from_base_flows(
    base_flow_mw: np.ndarray, margin: float = MARGIN, floor_fraction: float = FLOOR_FRACTION
) -> np.ndarray:
    """rating = max(ceil(margin·|f|), floor_fraction·max|f|) MVA, at least 1 MVA."""
    magnitude = np.abs(np.asarray(base_flow_mw, dtype=np.float64))
    largest = magnitude.max() if magnitude.size else 0.0
    floor = max(np.ceil(floor_fraction * largest), 1.0)
    return np.maximum(np.ceil(margin * magnitude), floor)


def dispatch_injection_mw(
    bus_pd: np.ndarray,
    bus_gs: np.ndarray,
    gen_to_bus: np.ndarray,
    gen_pg: np.ndarray,
    load_level: float,
) -> np.ndarray:
    """Net bus injection [N] MW under the documented dispatch rule at ``load_level``."""
    generation = gen_to_bus @ (load_level * gen_pg)
    return generation - load_level * bus_pd - bus_gs
