"""The per-step passes of :class:`twin.simulation.power_loop.PowerLoop` in compiled code (numba): the GPUs' draw
summed per rack, the meters' sums over racks and elements, each one pass instead of a dozen array calls."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def rack_sums(rack_gpu, rack_dem, on, tokens, tokens_delivered, rack_limit, group, n_groups):
    """Sums over the racks [W, tokens/s]: GPU power drawn, demanded (lit racks), tokens demanded and delivered (lit
    racks), the limits; and per group the GPU power drawn and demanded (lit racks)."""
    served = demanded = tok_d = tok = limit = 0.0
    g_served, g_demanded = np.zeros(n_groups), np.zeros(n_groups)
    for r in range(rack_gpu.size):
        limit += rack_limit[r]
        served += rack_gpu[r]
        g_served[group[r]] += rack_gpu[r]
        if on[r]:
            demanded += rack_dem[r]
            g_demanded[group[r]] += rack_dem[r]
            tok_d += tokens[r]
            tok += tokens_delivered[r]
    return served, demanded, tok_d, tok, limit, g_served, g_demanded


@njit(cache=True, nogil=True, error_model="numpy")
def rack_pass(demand, limit, rack_first, unit, on, non_gpu):
    """Per rack from its GPUs' (or units', ``unit`` GPUs each) demand and limit [W per GPU], each drawing
    ``min(demand, limit)``: the GPU power drawn (0 on a dark rack), the limits, the demand, the DC power (GPUs and
    the rest of a lit rack) [W]; and the sum over the GPUs of ``drawn / demand`` (demands are > 0: idle at least)."""
    n_r = rack_first.size - 1
    rack_gpu, rack_lim, rack_dem, rack_dc = np.empty(n_r), np.empty(n_r), np.empty(n_r), np.empty(n_r)
    ratio = 0.0
    for r in range(n_r):
        g = lim = dem = 0.0
        for j in range(rack_first[r], rack_first[r + 1]):
            drawn = min(demand[j], limit[j])
            g += drawn
            lim += limit[j]
            dem += demand[j]
            ratio += np.float64(drawn) / np.float64(demand[j])
        lit = 1.0 if on[r] else 0.0
        rack_gpu[r] = unit * g * lit
        rack_lim[r] = unit * lim
        rack_dem[r] = unit * dem
        rack_dc[r] = rack_gpu[r] + non_gpu[r] * lit
    return rack_gpu, rack_lim, rack_dem, rack_dc, unit * ratio


@njit(cache=True, nogil=True)
def element_marks(in_w, budget, dt, at_limit_s):
    """Add ``dt`` to ``at_limit_s`` where an element's input is at or above 99 % of its budget; whether any is
    above its budget (beyond 1e-9 of it)."""
    over = False
    for e in range(in_w.size):
        if in_w[e] >= 0.99 * budget[e]:
            at_limit_s[e] += dt
        if in_w[e] > budget[e] * (1 + 1e-9):
            over = True
    return over


@njit(cache=True, nogil=True, error_model="numpy")
def quiet_protection(in_w, rating, setting, energized, start, integrating, heat, short_s, thermal, decay):
    """The usual protection step (:meth:`twin.simulation.paths.PowerPaths.protect`) in one pass: with ``m`` each
    energized element's load as a multiple of its device's setting (``in_w / rating / setting``), True when no
    device is at or above the point where it starts timing (``start``), none that integrates remembers an overload
    and none is timing a short-time pickup; then the thermal images (``thermal``) move to ``m^2`` by ``decay`` per
    step in ``heat``. False (nothing changed): the caller takes the full device step."""
    for e in range(in_w.size):
        m = in_w[e] / rating[e] / setting[e] if energized[e] else 0.0
        if not m < start[e] or (integrating[e] and heat[e] != 0) or short_s[e] != 0:
            return False
    for i in range(thermal.size):
        e = thermal[i]
        m = in_w[e] / rating[e] / setting[e] if energized[e] else 0.0
        m2 = m**2
        heat[e] = m2 + (heat[e] - m2) * decay[i]
    return True
