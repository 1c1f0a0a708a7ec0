"""The per-step sums of :class:`twin.simulation.power_loop.SteeringMeters` in compiled code (numba): one pass over
the racks, one over the GPUs (or steering units) and one over the elements, instead of two dozen array calls a
step."""

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


@njit(cache=True, nogil=True)
def ratio_sum(drawn, demand):
    """Sum of ``drawn / demand`` over the GPUs (demands are > 0: idle at least)."""
    out = 0.0
    for i in range(drawn.size):
        out += np.float64(drawn[i]) / np.float64(demand[i])
    return out


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
