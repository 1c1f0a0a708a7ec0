r"""The compiled kernels of one steering step (numba): per-cell span sums from the demands, the levels (node sums,
the fit test and the exact price sweep up the forest) and the per-GPU limits. :mod:`optimization.steering` states
the problem and calls them; every loop runs over the arrays of its :class:`optimization.steering.Cells`.

**Requests.** A GPU with demand ``d`` requests ``r = clip(d + margin, lo, max)`` above its floor
``f = max(lo, min(guarantee, r))``; it is active when ``d > idle``. The four levels' spans per cell are the sums of
``f - lo`` (guarantee), ``r - f`` (request), ``max - r`` over active GPUs (surplus to active) and over idle ones
(surplus to idle), each counted ``unit`` times (a slot standing for ``unit`` GPUs).

**Levels.** For each level ``l`` (a level and, for the guarantee and request levels, one priority) with spans ``w``
per cell and cut weights ``k``: the spans below each node; if every node's limits so far plus its span fit its
budget, the level is granted whole. Otherwise, height by height from the racks up, each node ``n`` whose
``H_n(0) = sum_c w_c max(0, 1 - k_c m_c)`` (``m_c`` the largest price of the nodes below on the cell's path)
exceeds its residual budget ``R_n`` gets the price ``Q_n`` where the piecewise-linear, non-increasing
``H_n(Q) = sum_c w_c max(0, 1 - k_c max(Q, m_c))`` meets ``max(R_n, 0)`` (``inf`` when ``R_n < 0``: its floors do
not fit). The breakpoints of ``H_n`` are ``m_c`` (a cell a lower price holds starts to give way) and ``1 / k_c``
(its span is gone); cells no lower price holds (``m_c = 0``) enter summed per cut-weight class, so a node costs one
pass over its cells and a sort of a few events per class plus two per held cell. A cell's share of its span is
``phi_c = max(0, 1 - k_c m_c)``.

**Limits.** ``lo + (f - lo) phi_g + (r - f) phi_r + (max - r) phi_s`` per GPU, ``phi_s`` the active or idle surplus
share of its cell.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always")
def _request(d, margin, lo, hi):
    return min(max(d + margin, lo), hi)


@njit(cache=True, nogil=True)
def span_sums(demand, start, length, margin, lo, hi, guarantee, idle, unit):
    """``[4, cells]``: the guarantee, request, surplus-to-active and surplus-to-idle spans of every cell [W] for
    per-GPU (per-slot) demands ``demand`` [W] in GPU order."""
    n_c = start.size
    out = np.zeros((4, n_c))
    for c in range(n_c):
        s_f = s_r = s_ra = 0.0
        n_act = 0
        for j in range(start[c], start[c] + length[c]):
            r = _request(demand[j], margin[c], lo[c], hi[c])
            s_f += max(lo[c], min(guarantee[c], r))
            s_r += r
            if demand[j] > idle[c]:
                s_ra += r
                n_act += 1
        n = length[c]
        out[0, c] = max(unit * (s_f - n * lo[c]), 0.0)
        out[1, c] = max(unit * (s_r - s_f), 0.0)
        out[2, c] = max(unit * (n_act * hi[c] - s_ra), 0.0)
        out[3, c] = max(unit * ((n - n_act) * hi[c] - (s_r - s_ra)), 0.0)
    return out


@njit(cache=True, nogil=True)
def gpu_limits(demand, start, length, margin, lo, hi, guarantee, idle, phi, out):
    """Per-GPU limits into ``out`` [W] from the four levels' shares ``phi`` ``[4, cells]`` (module docstring)."""
    for c in range(start.size):
        for j in range(start[c], start[c] + length[c]):
            r = _request(demand[j], margin[c], lo[c], hi[c])
            f = max(lo[c], min(guarantee[c], r))
            s = phi[2, c] if demand[j] > idle[c] else phi[3, c]
            out[j] = lo[c] + (f - lo[c]) * phi[0, c] + (r - f) * phi[1, c] + (hi[c] - r) * s
    return out


@njit(cache=True, nogil=True)
def request_w(demand, start, length, margin, lo, hi, out):
    """Per-GPU requests ``clip(demand + margin, lo, max)`` into ``out`` [W]."""
    for c in range(start.size):
        for j in range(start[c], start[c] + length[c]):
            out[j] = _request(demand[j], margin[c], lo[c], hi[c])
    return out


@njit(cache=True, nogil=True)
def _node_sums(per_cell, first, height_nodes, parent, out):
    """``out`` (per node, and a last slot for cells below none): the sum of ``per_cell`` below each node, into each
    cell's lowest node, then up the forest bottom-up."""
    out[:] = 0.0
    for c in range(per_cell.size):
        out[first[c]] += per_cell[c]
    for j in range(height_nodes.size):
        n = height_nodes[j]
        if parent[n] >= 0:
            out[parent[n]] += out[n]
    return out


@njit(cache=True, nogil=True)
def through_elements(rack_w, rack_first, height_nodes, parent, member_element, member_node, member_share, n_el):
    """Per diagram element (``n_el`` rows), its share of the sum of ``rack_w`` [W] over its node's racks: the GPU
    power (or limits) through it."""
    node = _node_sums(rack_w, rack_first, height_nodes, parent, np.zeros(parent.size + 1))
    out = np.zeros(n_el)
    for i in range(member_element.size):
        out[member_element[i]] = member_share[i] * node[member_node[i]]
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def feedback_budgets(drawn, limits, budget, load, beta, reserve):
    """Budgets on the GPU power through each row [W] (:mod:`optimization.steering_control`): with ``room = ((1 -
    reserve) B - L) / beta`` (infinite where ``beta`` is not finite), ``G = g + room``, and while there is room
    (``room >= 0``) at least ``min(l + room, G + reserve B / beta)``; ``limits`` of length 0: no integral action.
    Per row: ``drawn`` GPU power ``g``, ``limits`` ``l``, ``budget`` ``B``, ``load`` its input ``L`` [W] and
    ``beta`` its marginal input per GPU watt."""
    out = np.empty(drawn.size)
    for e in range(drawn.size):
        room = ((1.0 - reserve) * budget[e] - load[e]) / beta[e] if np.isfinite(beta[e]) else np.inf
        g = drawn[e] + room
        if limits.size and room >= 0:
            g = max(g, min(limits[e] + room, g + reserve * budget[e] / beta[e]))
        out[e] = g
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def gpu_budgets(rack_gpu, rack_limit, rack_first, height_nodes, parent, member_element, member_node, member_share,
                budget, load, beta, reserve, cooling_room):  # fmt: skip
    """:func:`feedback_budgets` on every element and the site import (``budget``, ``load``, ``beta``: one row each,
    the site's last) from the GPU power drawn and the limits per rack [W] (``rack_limit`` of length 0: none), then
    the site's cooling row: the GPU power now plus the plant's remaining room (infinite when that is not finite)."""
    n1 = budget.size
    rows = n1 + 1
    drawn = through_elements(rack_gpu, rack_first, height_nodes, parent, member_element, member_node, member_share,
                             rows)  # fmt: skip
    limits = np.zeros(0)
    if rack_limit.size:
        limits = through_elements(rack_limit, rack_first, height_nodes, parent, member_element, member_node,
                                  member_share, rows)[:n1].copy()  # fmt: skip
    out = np.empty(rows)
    out[:n1] = feedback_budgets(drawn[:n1], limits, budget, load, beta, reserve)
    out[n1] = drawn[n1 - 1] + cooling_room if np.isfinite(cooling_room) else np.inf
    return out


@njit(cache=True, nogil=True)
def node_budgets(element_budget, member_element, member_node, member_share, n_nodes):
    """Per node, the smallest ``B_e / s_e`` over its member elements [W] and the first member at it (-1: none)."""
    out = np.full(n_nodes, np.inf)
    binding = np.full(n_nodes, -1)
    for i in range(member_element.size):
        b = element_budget[member_element[i]] / member_share[i]
        n = member_node[i]
        if b != b:  # NaN: the node's budget is NaN (allocate refuses it)
            out[n] = b
        elif b < out[n] or binding[n] < 0:
            out[n] = min(b, out[n])
            binding[n] = member_element[i]
    return out, binding


@njit(cache=True, nogil=True)
def _hold(n, h, qn, w, k, m, order, ptr, path, take):
    """Raise to ``qn`` the price ``m`` seen by the cells below node ``n`` (height ``h``), and add what that takes
    of their spans to every node above ``n``."""
    for i in range(ptr[h, n], ptr[h, n + 1]):
        c = order[h, i]
        if w[c] > 0 and qn > m[c]:
            d = w[c] * (min(1.0, k[c] * qn) - min(1.0, k[c] * m[c]))
            m[c] = qn
            for above in range(h + 1, path.shape[1]):
                take[path[c, above]] += d


@njit(cache=True, nogil=True)
def solve_levels(w_all, step_level, k_all, cls_all, k_values, first, path, order, ptr, height_nodes, height_ptr,
                 parent, budget, base, rack, n_racks, tol):  # fmt: skip
    """Shares, prices and node prices of every level, and the node sums before and after.

    ``w_all``/``k_all`` ``[levels, cells]`` spans [W] and cut weights, ``step_level`` the level (0-3) of each;
    ``cls_all`` each cell's class index into ``k_values[level]``; ``first`` the lowest node above each cell;
    ``path`` ``[cells, heights]`` the node above each cell at each height (``n_nodes``: none); ``order``/``ptr``
    per height the cells sorted by node and each node's run; ``height_nodes``/``height_ptr`` the nodes of each
    height (bottom-up); ``parent`` each node's (-1: a root); ``budget`` per node [W]; ``base`` the limits before the
    first level per cell [W]; ``rack`` each cell's rack (``n_racks`` racks); ``tol`` [W].

    Returns ``phi`` ``[4, cells]`` (the share of each level's span granted), ``price`` ``[levels, cells]`` (``m_c``
    where cut), ``q`` (each node's own price per level), ``used0``/``used`` (the limits below each node before and
    after), ``rack_total`` (the limits per rack) [W], ``brakes`` (whether some node's floors exceed its budget) and
    ``bound`` (per level, whether some node's budget cut it).
    """
    n_lv, n_c = w_all.shape
    n_h = path.shape[1]
    top = n_h - 1
    n_n = budget.size
    phi = np.ones((4, n_c))
    price = np.zeros((n_lv, n_c))
    q_out = np.zeros((n_lv, n_n))
    used = _node_sums(base, first, height_nodes, parent, np.zeros(n_n + 1))
    total = base.copy()
    used0 = used[:n_n].copy()
    span = np.empty(n_n + 1)
    take = np.empty(n_n + 1)
    q = np.empty(n_n + 1)
    m = np.empty(n_c)
    n_v = k_values.shape[1]
    agg = np.empty(n_v)
    ev_q = np.empty(2 * n_c + 2 * n_v)
    ev_da = np.empty(2 * n_c + 2 * n_v)
    ev_db = np.empty(2 * n_c + 2 * n_v)
    for lv in range(n_lv):
        w, k, cls = w_all[lv], k_all[lv], cls_all[lv]
        if not np.any(w > 0):
            continue
        _node_sums(w, first, height_nodes, parent, span)
        fits = True
        for n in range(n_n):
            if used[n] + span[n] > budget[n] + tol:
                fits = False
                break
        if fits:
            for n in range(n_n):
                used[n] += span[n]
            for c in range(n_c):
                total[c] += w[c]
            continue
        m[:] = 0.0
        q[:] = 0.0
        take[:] = 0.0  # per node: what the prices below already take of its spans
        for h in range(n_h):
            for j in range(height_ptr[h], height_ptr[h + 1]):
                n = height_nodes[j]
                a = span[n] - take[n]  # H_n(0)
                r = budget[n] - used[n]
                if a <= r + tol:
                    continue
                if r < -tol:
                    q[n] = np.inf
                    if h < top:  # at the top height the last pass reads the price (nothing above takes)
                        _hold(n, h, np.inf, w, k, m, order, ptr, path, take)
                    continue
                agg[:] = 0.0
                ne = 0
                for i in range(ptr[h, n], ptr[h, n + 1]):
                    c = order[h, i]
                    wc, kc, mc = w[c], k[c], m[c]
                    if wc <= 0 or kc * mc >= 1.0:
                        continue
                    if mc == 0.0:
                        agg[cls[c]] += wc
                    else:
                        ev_q[ne], ev_da[ne], ev_db[ne] = mc, wc * kc * mc, wc * kc
                        ev_q[ne + 1], ev_da[ne + 1], ev_db[ne + 1] = 1.0 / kc, -wc, -wc * kc
                        ne += 2
                for v in range(n_v):
                    if agg[v] > 0:
                        kv = k_values[lv, v]
                        ev_q[ne], ev_da[ne], ev_db[ne] = 0.0, 0.0, agg[v] * kv
                        ev_q[ne + 1], ev_da[ne + 1], ev_db[ne + 1] = 1.0 / kv, -agg[v], -agg[v] * kv
                        ne += 2
                rr = max(r, 0.0)
                big_a, big_b, qn = a, 0.0, np.inf
                for e in np.argsort(ev_q[:ne]):
                    if big_a - big_b * ev_q[e] <= rr + tol:  # H is continuous: it meets rr on this segment
                        qn = (big_a - rr) / big_b if big_b > 0 else ev_q[e]
                        break
                    big_a += ev_da[e]
                    big_b += ev_db[e]
                q[n] = max(qn, 0.0)
                if q[n] > 0 and h < top:
                    _hold(n, h, q[n], w, k, m, order, ptr, path, take)
        span[:] = 0.0  # the granted spans below each node
        row = step_level[lv]
        for c in range(n_c):
            if w[c] > 0:
                mc = max(m[c], q[path[c, top]]) if top >= 0 else m[c]
                s = max(1.0 - k[c] * mc, 0.0)
                phi[row, c] = s
                price[lv, c] = mc  # 0 where the level does not concern the cell
                total[c] += w[c] * s
                span[first[c]] += w[c] * s
        for j in range(height_nodes.size):
            n = height_nodes[j]
            if parent[n] >= 0:
                span[parent[n]] += span[n]
        used += span
        q_out[lv] = q[:n_n]
    rack_total = np.zeros(n_racks)
    for c in range(n_c):
        rack_total[rack[c]] += total[c]
    brakes = False
    for n in range(n_n):
        brakes |= budget[n] - used0[n] < -tol
    bound = np.zeros(n_lv, np.bool_)
    for lv in range(n_lv):
        bound[lv] = np.any(q_out[lv] > 0)
    return phi, price, q_out, used0, used[:n_n].copy(), rack_total, brakes, bound
