"""Nodes and GPUs as arrays, per-GPU limits reduced to the engine's per-rack caps, the limit table's ETags and
its fallback: checked against the facility's own draw model (power is conserved through the reduction)."""

from __future__ import annotations

import numpy as np
import pytest
from factory_twin.links.redfish.layout import NodeLayout, gpu_power_w, rack_caps_w
from factory_twin.links.redfish.limits import EtagMismatchError, LimitTable

from factory_twin import twin


@pytest.fixture(scope="module")
def campus():
    return twin.load_facility("campus-100mw")


@pytest.fixture(scope="module")
def phoenix():  # every workload draws by the fitted clipped-normal model (drawn_power = "fit")
    return twin.load_facility("emerald-phoenix")


def test_campus_layout(campus):
    lay = NodeLayout.of(campus)
    assert (lay.n_nodes, lay.n_gpus) == (15120, 60480)  # 840 NVL72 racks of 18 trays x 4 GPUs
    assert len(set(lay.node_ids)) == lay.n_nodes
    assert np.all(lay.node_gpus == 4)
    assert np.array_equal(np.bincount(lay.gpu_rack), campus.gpus.astype(int))
    node = lay.node_index[lay.node_ids[1000]]
    assert lay.gpu(node, 3) == 4003 and lay.gpu_node[4003] == 1000 and lay.gpu_slot[4003] == 3
    with pytest.raises(IndexError):
        lay.gpu(node, 4)
    assert np.array_equal(lay.per_node_sum(np.ones(lay.n_gpus)), np.full(lay.n_nodes, 4.0))
    node_w = np.arange(lay.n_nodes, dtype=float)
    assert np.array_equal(lay.per_node_sum(lay.node_to_gpus(node_w)), node_w)


@pytest.mark.parametrize("name", ["campus", "phoenix"])
def test_equal_limits_give_that_cap(name, request):
    f = request.getfixturevalue(name)
    lay = NodeLayout.of(f)
    for frac in (0.5, 0.73, 1.0):
        cap = np.maximum(frac * f.tdp_w, f.min_cap_w)
        assert rack_caps_w(f, lay, lay.per_rack(cap)) == pytest.approx(cap, rel=1e-12)


@pytest.mark.parametrize("name", ["campus", "phoenix"])
def test_unequal_limits_conserve_the_racks_gpu_power(name, request):
    f = request.getfixturevalue(name)
    lay = NodeLayout.of(f)
    rng = np.random.default_rng(7)
    lo, hi = lay.per_rack(f.min_cap_w), lay.per_rack(f.tdp_w)
    limits = lo + rng.random(lay.n_gpus) * (hi - lo)
    cap = rack_caps_w(f, lay, limits)
    per_gpu = f.drawn_w(limits, racks=lay.gpu_rack)
    # a busy GPU under the rack's cap draws the mean of what its GPUs draw under their own limits
    assert f.gpus * f.drawn_w(cap) == pytest.approx(np.bincount(lay.gpu_rack, per_gpu), rel=1e-3)
    # the readings share the twin's rack power out: sum kept, each GPU within its own limit
    rack_mean_w = 0.8 * f.drawn_w(cap) + 0.2 * f.idle_w
    readings = gpu_power_w(f, lay, rack_mean_w, limits)
    assert np.bincount(lay.gpu_rack, readings) == pytest.approx(f.gpus * rack_mean_w, rel=1e-9)
    assert np.all(readings <= limits * (1 + 1e-9))


def test_node_write_splits_equally_and_versions_move(phoenix):
    lay = NodeLayout.of(phoenix)  # 32 nodes of 8 A100s
    t = LimitTable(lay)
    node = 5
    v0, g0 = t.node_view(node), t.gpu_view(lay.gpu(node, 2))
    assert (v0.setpoint_w, v0.allowable_max_w, v0.mode) == (8 * 400.0, 8 * 400.0, "Automatic")
    v1 = t.write(node, None, 2000.0, None, [v0.etag])
    assert v1.setpoint_w == 2000.0 and v1.etag != v0.etag
    assert t.gpu_view(lay.gpu(node, 2)).setpoint_w == 250.0
    assert t.gpu_view(lay.gpu(node, 2)).etag != g0.etag
    with pytest.raises(EtagMismatchError):
        t.write(node, None, 1000.0, None, [v0.etag])
    assert t.node_view(node).setpoint_w == 2000.0
    g = lay.gpu(node, 7)
    before_node = t.node_view(node).etag
    t.write(node, g, 100.0, "Manual", None)
    assert t.node_view(node).etag != before_node
    assert t.node_view(node).mode is None  # its GPUs' modes differ
    assert t.node_view(node).setpoint_w == 7 * 250.0 + 100.0
    unchanged = t.write(node, g, 100.0, "Manual", ["*"])
    assert unchanged.etag == t.gpu_view(g).etag  # a write of the same values changes nothing


def test_fallback_applies_the_idle_policy_everywhere(phoenix):
    lay = NodeLayout.of(phoenix)
    t = LimitTable(lay)
    t.write(0, None, 3000.0, "Manual", None)
    t.write(1, lay.gpu(1, 0), 300.0, "Disabled", None)
    assert t.effective_w()[lay.gpu(1, 0)] == 400.0  # Disabled: up to AllowableMax
    n = t.fallback("min")
    assert n == lay.n_gpus  # every GPU was at its default (TDP), above the minimum
    assert np.array_equal(t.effective_w(), t.gpu_min_w)
    assert t.node_view(0).mode == "Automatic"
    assert t.fallback("min") == 0
    assert t.fallback("default") == lay.n_gpus
    assert np.array_equal(t.effective_w(), t.gpu_max_w)
