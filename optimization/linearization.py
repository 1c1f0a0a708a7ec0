"""Stage 1, site linearization: forecast -> the site model's points per step -> secant cuts.

For every step the steady site model of :mod:`twin.simulation.design` (rack DC -> PSU, busway, UPS, transformer
losses; cooling = pumps + heat rejection at the forecast dry/wet bulb + air side at its COP) is
evaluated with all groups at the same position ``lam`` between their minimum cap (lam = 0) and the
uncapped draw (lam = 1), at ``levels`` (default 0, 0.5, 1). Grid import as a function of campus GPU
power is then replaced by the lines through consecutive points (secants, :func:`secant_cuts`).
Their upper envelope equals the model at the points and, because losses grow with the square of the
load and the plant works harder when hotter, lies slightly above it in between (conservative). The
DR baseline is :func:`twin.simulation.targets.dr_baseline_mw` (the model at lam = 1: the counterfactual uncapped
import); a measured bias shifts the import model, never the baseline. Only the spread of GPU power across
groups is ignored: PSU losses are a function of each rack's load, which the secants evaluate for
equal positions. The plant's heat-rejection capacity at the forecast ambient
(:func:`heat_capacity_mw`) is the other forecast-dependent coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models.units import MW, S_PER_MIN
from factory_twin.optimization.groups import Groups
from numpy.typing import NDArray

Array = NDArray[np.float64]
LEVELS = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class Forecast:
    """Site-model points per step (``[T, J]`` for J levels) and the forecast signals (MW, degC)."""

    times: NDArray[np.datetime64]
    gpu_mw: Array
    it_mw: Array
    cooling_mw: Array
    grid_mw: Array
    dry_bulb_c: Array
    wet_bulb_c: Array
    dr_depth: Array
    price_per_mwh: Array
    carbon_kg_per_mwh: Array
    import_limit_mw: Array
    utilization: Array  # [T, G]
    baseline_mw: Array  # the DR baseline [MW] (twin.simulation.targets.dr_baseline_mw): not shifted by a bias

    @property
    def floor_mw(self) -> Array:
        """Import with every group at its minimum cap [MW] (before the BESS)."""
        return self.grid_mw[:, 0]

    def at_gpu_mw(self, name: str, gpu_mw: Array) -> Array:
        """Piecewise-linear interpolation of ``it_mw``/``cooling_mw``/``grid_mw`` at GPU power
        [MW]."""
        return interp_rows(gpu_mw, self.gpu_mw, getattr(self, name))


def interp_rows(xq: Array, xp: Array, fp: Array) -> Array:
    """Row-wise linear interpolation (``xp`` ascending along axis 1, extrapolated at the ends)."""
    J = xp.shape[1]
    j = np.clip(np.sum(xp[:, 1:-1] <= xq[:, None], axis=1), 0, J - 2)
    r = np.arange(xp.shape[0])
    x0, x1, f0, f1 = xp[r, j], xp[r, j + 1], fp[r, j], fp[r, j + 1]
    w = np.divide(xq - x0, x1 - x0, out=np.zeros_like(xq), where=x1 > x0)
    return f0 + w * (f1 - f0)


def step_depth(events, times: NDArray[np.datetime64], dt_s: float, known_at=None) -> Array:
    """Largest DR depth within each step ``[t, t + dt)`` (sampled each minute) of the known
    events."""
    n_sub = max(1, int(np.ceil(dt_s / S_PER_MIN)))
    offs = (np.arange(n_sub) * dt_s / n_sub).astype("timedelta64[s]")
    sub = np.asarray(times, "datetime64[s]")[:, None] + offs[None, :]
    depth = np.zeros(sub.shape)
    for ev in events:
        if known_at is None or ev.announced <= np.datetime64(known_at, "s"):
            depth = np.maximum(depth, ev.depth_at(sub))
    return depth.max(axis=1)


def forecast(
    f,
    scenario,
    groups: Groups,
    times: NDArray[np.datetime64],
    dt_s: float,
    levels: tuple[float, ...] = LEVELS,
    known_at=None,
) -> Forecast:
    """Evaluate the steady site model at ``levels`` for every step (see the module docstring)."""
    from factory_twin.twin.simulation.design import site_levels
    from factory_twin.twin.simulation.targets import dr_baseline_mw

    pts = site_levels(f, scenario, times, levels)
    sig = scenario.signals
    return Forecast(
        times,
        pts.gpu_w / MW,
        pts.it_w / MW,
        pts.cooling_w / MW,
        pts.grid_w / MW,
        pts.dry_bulb_c,
        pts.wet_bulb_c,
        step_depth(scenario.dr_events, times, dt_s, known_at),
        sig.at(times, "price_per_mwh"),
        sig.at(times, "carbon_kg_per_mwh"),
        scenario.import_limit(times),
        pts.utilization[:, groups.cls],
        dr_baseline_mw(f, scenario, times),
    )


def heat_capacity_mw(f, dry_bulb_c: Array, wet_bulb_c: Array) -> Array:
    """Largest liquid heat [MW] the plant rejects at the facility-water setpoint, per ambient
    (:meth:`twin.simulation.plant.Plant.capacity_w` at the full facility-water flow, vectorized over time)."""
    from factory_twin.twin.simulation.plant import build_plant

    return np.asarray(build_plant(f).capacity_w(dry_bulb_c, wet_bulb_c, float(f.c_fws_max_w_k.sum())), float) / MW


def secant_cuts(fc: Forecast) -> tuple[Array, Array]:
    """Intercepts [MW] and slopes [-] of the lines through consecutive site-model points, per step
    (``[T, J - 1]``): ``grid >= a + b x P_gpu`` for every line."""
    dp = np.diff(fc.gpu_mw, axis=1)
    slope = np.divide(np.diff(fc.grid_mw, axis=1), dp, out=np.zeros_like(dp), where=dp > 0)
    return fc.grid_mw[:, :-1] - slope * fc.gpu_mw[:, :-1], slope
