"""``DispatchOptions``: every setting of a dispatch, checked once, shared by ``dispatch``, the MPC
and the studies.

Solver algorithms (HiGHS option ``solver``; see the HiGHS option reference, ergo-code.github.io/HiGHS):
``"simplex"`` (dual simplex: the most reliable, exact vertex, default for small and MPC models),
``"ipx"`` (interior point, ``run_crossover="choose"``: crossover only when the IPM residuals are
large; the default ``"on"`` failed on a 288k-column dispatch LP in the project's measurements),
``"pdlp"`` (first-order; fast at gigawatt scale, residuals are checked by HiGHS's own tolerances).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from factory_twin.optimization.groups import GROUPINGS
from factory_twin.twin.scenario.timeparse import seconds

SOFT_LIMITS = ("import_limit", "ramp", "dr", "heat", "die", "flex", "cdu", "tier")
SOLVERS = {
    "simplex": {"solver": "simplex"},
    "ipx": {"solver": "ipx", "run_crossover": "choose"},
    "ipm": {"solver": "ipm", "run_crossover": "choose"},
    "pdlp": {"solver": "pdlp"},
    "choose": {"solver": "choose"},
}
BACKENDS = ("auto", "pyomo", "highspy")


@dataclass(frozen=True)
class DispatchOptions:
    """How to plan: horizon and step, which limits are soft, solver and backend, smoothing.

    Attributes
    ----------
    horizon, step : plan length and step [s]; durations like ``"24h"`` or ``"5min"`` are accepted
        and stored as seconds. The horizon must hold a whole number of steps.
    soft : limits turned into penalized slacks, from :data:`SOFT_LIMITS`.
    solver : a key of :data:`SOLVERS`; time_limit [s] > 0; threads (0 = automatic).
    grouping : ``"hall"`` (class x hall) or ``"cdu"`` (class x CDU).
    backend : ``"pyomo"`` (reference model), ``"highspy"`` (matrix path) or ``"auto"`` (by size).
    penalty_per_mwh : price of soft slacks [currency/MWh]; None: ten times the most a MWh earns
        (:func:`optimization.problem.default_penalty`).
    smoothing_floor_w, smoothing_ramp_w_s : per-GPU power-smoothing floor [W] and ramp [W/s].
    tiers : keep every element of the facility's one-line diagram within its continuous limit (rows only for a
        facility with its own ``[topology]``; :mod:`optimization.tiers`).
    n_minus_1 : also after the loss of any one redundant path (every ``path`` label of the diagram).
    """

    horizon: float = 86400.0
    step: float = 300.0
    soft: tuple[str, ...] = ()
    solver: str = "simplex"
    time_limit: float = 300.0
    threads: int = 1
    grouping: str = "hall"
    backend: str = "auto"
    penalty_per_mwh: float | None = None
    smoothing_floor_w: float | None = None
    smoothing_ramp_w_s: float | None = None
    tiers: bool = True
    n_minus_1: bool = False

    def __post_init__(self) -> None:
        step_s, horizon_s = seconds(self.step, "step"), seconds(self.horizon, "horizon")
        n = horizon_s / step_s
        if abs(n - round(n)) > 1e-9 or round(n) < 1:
            raise ValueError(
                f"horizon: {_as_given(self.horizon, horizon_s)} must be a whole multiple of step "
                f"{_as_given(self.step, step_s)}"
            )
        object.__setattr__(self, "step", step_s)
        object.__setattr__(self, "horizon", horizon_s)
        soft = (self.soft,) if isinstance(self.soft, str) else tuple(self.soft)
        unknown = sorted(set(soft) - set(SOFT_LIMITS))
        if unknown:
            raise ValueError(f"soft: unknown limit(s) {unknown}; choose from {list(SOFT_LIMITS)}")
        object.__setattr__(self, "soft", tuple(dict.fromkeys(soft)))
        if self.solver not in SOLVERS:
            raise ValueError(f"solver: must be one of {sorted(SOLVERS)}, got {self.solver!r}")
        if not (isinstance(self.time_limit, int | float) and self.time_limit > 0):
            raise ValueError(f"time_limit: must be > 0 seconds, got {self.time_limit!r}")
        if not (isinstance(self.threads, int) and self.threads >= 0):
            raise ValueError(f"threads: must be an integer >= 0 (0 = automatic), got {self.threads!r}")
        if self.grouping not in GROUPINGS:
            raise ValueError(f"grouping: must be one of {GROUPINGS}, got {self.grouping!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: must be one of {BACKENDS}, got {self.backend!r}")
        for name, unit in (("penalty_per_mwh", "currency/MWh"), ("smoothing_floor_w", "W")):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ValueError(f"{name}: must be >= 0 {unit}, got {v!r}")
        for name in ("tiers", "n_minus_1"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be true or false, got {getattr(self, name)!r}")
        if self.n_minus_1 and not self.tiers:
            raise ValueError("n_minus_1: needs tiers (the N-1 rows are tier rows)")
        if self.smoothing_ramp_w_s is not None and not self.smoothing_ramp_w_s > 0:
            raise ValueError(f"smoothing_ramp_w_s: must be > 0 W/s, got {self.smoothing_ramp_w_s!r}")

    @property
    def n_steps(self) -> int:
        return round(self.horizon / self.step)

    def updated(self, **changes: Any) -> DispatchOptions:
        """A copy with ``changes`` applied (and validated); unknown names raise ``ValueError``."""
        unknown = sorted(set(changes) - NAMES)
        if unknown:
            raise ValueError(f"options: unknown dispatch option(s) {unknown}; known: {sorted(NAMES)}")
        return replace(self, **changes) if changes else self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def highs_options(self) -> dict[str, Any]:
        """HiGHS option dictionary: the algorithm of ``solver``, the time limit [s] and threads."""
        return {**SOLVERS[self.solver], "time_limit": float(self.time_limit), "threads": self.threads,
                "output_flag": False}  # fmt: skip


def _as_given(raw: str | float, s: float) -> str:
    """A duration as the user wrote it, with its seconds: ``"2h (7200 s)"``; numbers are seconds already."""
    return f"{s:g} s" if isinstance(raw, int | float) else f"{str(raw).strip()} ({s:g} s)"


NAMES = frozenset(f.name for f in fields(DispatchOptions))

#: What the MPC plans with unless told otherwise: a 2 h look-ahead at 1 min, every limit soft (a
#: re-plan always yields caps; violations are logged), a 60 s time limit.
MPC_OPTIONS = DispatchOptions(horizon="2h", step="1min", soft=SOFT_LIMITS, time_limit=60.0)
