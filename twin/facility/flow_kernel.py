"""The one-line diagram's flows height by height in compiled code (numba), for diagrams whose losses are the
quadratic of each element (:attr:`twin.facility.topology.Topology.loss_quadratic`): the per-second power loop
computes them every step, and in numpy a step was a few array calls per height (0.25 ms on campus-1gw)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def propagate_quadratic(order, indptr, indices, shares, direct, q0, q1, q2, energized, count):
    """Inputs, losses and the summed losses of the nodes ``[n, k]`` from their direct loads ``direct`` [W].

    ``order``: the nodes from the bottom up (children first); ``indptr``/``indices``/``shares``: each node's
    children and the share of each it carries (CSR over nodes); per node the loss quadratic ``q0 + q1 P + q2 P^2``
    [W], whether it is energized (an open node carries and loses nothing) and ``count`` the elements it stands for
    (1 per element; a class of :meth:`Topology.reduce` counts its members in the total)."""
    n, k = direct.shape
    in_w = np.zeros((n, k))
    loss = np.zeros((n, k))
    total = np.zeros(k)
    for e in order:
        for j in range(k):
            acc = 0.0
            for i in range(indptr[e], indptr[e + 1]):
                acc += shares[i] * in_w[indices[i], j]
            out = direct[e, j] + acc
            lo = q0[e] + out * (q1[e] + q2[e] * out) if energized[e] else 0.0
            in_w[e, j] = out + lo
            loss[e, j] = lo
            total[j] += count[e] * lo
    return in_w, loss, total
