"""The ``Case`` record (a power-flow case as MATPOWER v2 arrays) and ``CaseError``.

Apart from ``envs.powerflow.case`` (which finds and reads case files) so that the importers of
other formats (``envs.powerflow.grid_import``) build cases without importing the loader that
calls them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from envs.powerflow import matpower


class CaseError(ValueError):
    """A case that cannot be loaded or run; the message is one line naming the case."""


@dataclasses.dataclass(frozen=True, eq=False)
class Case:
    """A power-flow case in MATPOWER v2 layout.

    bus [nb, 13], gen [ng, 21], branch [nbr, 13], gencost [ng, k] or None,
    bus_xy [nb, 2] drawing coordinates or None.
    """

    name: str
    base_mva: float
    bus: np.ndarray
    gen: np.ndarray
    branch: np.ndarray
    gencost: np.ndarray | None = None
    bus_xy: np.ndarray | None = None
    gen_fuel: tuple[str, ...] | None = None  # per gen row, lower case ('wind', 'coal', ...)

    @classmethod
    def from_ppc(cls, ppc: dict, name: str = "ppc") -> Case:
        """Builds a case from a PYPOWER-style dict (baseMVA, bus, gen, branch, gencost)."""
        gencost = ppc.get("gencost")
        return cls(
            name=name,
            base_mva=float(ppc["baseMVA"]),
            bus=np.array(ppc["bus"], dtype=np.float64),
            gen=np.array(ppc["gen"], dtype=np.float64),
            branch=np.array(ppc["branch"], dtype=np.float64),
            gencost=None if gencost is None else np.array(gencost, dtype=np.float64),
        )

    @classmethod
    def from_matpower(cls, data: matpower.MatpowerData, name: str) -> Case:
        return cls(
            name=name,
            base_mva=data.base_mva,
            bus=data.bus,
            gen=data.gen,
            branch=data.branch,
            gencost=data.gencost,
            gen_fuel=data.gen_fuel,
        )

    def to_matpower(self) -> matpower.MatpowerData:
        """The case as reader data, e.g. for :func:`envs.powerflow.matpower.write_matpower`."""
        return matpower.MatpowerData(
            base_mva=self.base_mva,
            bus=self.bus,
            gen=self.gen,
            branch=self.branch,
            gencost=self.gencost,
            gen_fuel=self.gen_fuel,
        )

    def to_ppc(self) -> dict:
        """A PYPOWER-style dict with copies of the arrays (for PYPOWER and tests)."""
        ppc = {
            "version": "2",
            "baseMVA": self.base_mva,
            "bus": self.bus.copy(),
            "gen": self.gen.copy(),
            "branch": self.branch.copy(),
        }
        if self.gencost is not None:
            ppc["gencost"] = self.gencost.copy()
        return ppc


def one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
