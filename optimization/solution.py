"""Stage 4, the ``Solution``: what a backend hands back, the same for Pyomo and highspy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Solution:
    """Outcome of one solve of a :class:`optimization.problem.Problem`.

    ``status`` is ``"optimal"`` (HiGHS ``kOptimal``) or the solver's status in words; ``objective``
    is the dispatch objective (token value - costs - penalties, NaN without a solution) for both
    backends. ``values`` holds the primal solution by name, empty when the solver found none:
    ``x`` and ``y`` ``[T, G]``, ``grid_mw`` ``[T]``, with a BESS ``bess_charge_mw``,
    ``bess_discharge_mw``, ``bess_soc_mwh`` ``[T]``, and ``slack_<limit>`` for each soft limit
    with rows (over that family's rows; ``slack_flex`` over the flex windows).
    """

    status: str
    objective: float
    backend: str
    build_seconds: float = 0.0
    solve_seconds: float = 0.0
    values: dict[str, Array] = field(default_factory=dict)

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"

    @property
    def has_values(self) -> bool:
        return bool(self.values)

    @property
    def slacks(self) -> dict[str, Array]:
        """``{limit: slack values}`` for the soft limits of the problem."""
        return {k.removeprefix("slack_"): v for k, v in self.values.items() if k.startswith("slack_")}
