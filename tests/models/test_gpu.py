"""GPU curves (envelope, segments, fit residuals vs the raw sweep, V22), throttle, smoothing."""

import csv
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
from factory_twin.models.gpu import (
    ClassCurves,
    ThroughputCurve,
    power_drawn_w,
    smooth_power_w,
    thermal_throttle_limit_w,
)
from factory_twin.twin.facility.curves import available_curves, load_curve
from scipy.optimize import linprog

from factory_twin import data

SHARED = Path(os.environ.get("FACTORY_TWIN_SHARED", Path(__file__).parents[3] / "shared" / "data"))
SWEEP = SHARED / "a100_power_cap_sweep.csv"
needs_sweep = pytest.mark.skipif(
    not SWEEP.exists(), reason=f"raw A100 sweep not available at {SWEEP} (set FACTORY_TWIN_SHARED)"
)
JOBS = {
    "training": ("pt_mpt_13b_lg", "pt_mpt_7b_fast"),
    "fine-tuning": ("ft_llama_8b_dolly",),
    "inference": ("infer_llama_8b_48g",),
}


def _sweep():
    out = {}
    with SWEEP.open(newline="") as f:
        for r in csv.DictReader(f):
            out.setdefault(r["Workload"], []).append(
                (
                    float(r["GPU power cap"]),
                    float(r["power per GPU"]) / 400.0,
                    float(r["normalized throughput"]),
                )
            )
    return {k: np.array(sorted(v)) for k, v in out.items()}


# ---------------------------------------------------------------- curve object
def test_every_shipped_curve_is_concave_nondecreasing_and_normalized():
    assert set(available_curves()) >= {
        "training",
        "fine-tuning",
        "inference",
        "v100-bert",
        "a40-bert",
    }
    for name in available_curves():
        c = load_curve(name)
        b = np.diff(c.y) / np.diff(c.x)
        assert np.all(b >= 0) and np.all(np.diff(b) <= 0), name
        assert c.y[-1] == 1.0 and c.x_min == c.x[0] and c.x_demand == c.x[-1]
        assert 0.3 < c.x_min < c.x_demand <= 1.0


def test_segments_hand_values_and_hypograph():
    c = load_curve("v100-bert")
    a, b = c.segments()
    np.testing.assert_allclose(b, [1.67, 1.37, 0.85, 0.48, 0.39, 0.24, 0.0], rtol=1e-9)
    np.testing.assert_allclose(
        a,
        [
            0.5 - 1.67 * 0.4,
            0.667 - 1.37 * 0.5,
            0.804 - 0.85 * 0.6,
            0.889 - 0.48 * 0.7,
            0.937 - 0.39 * 0.8,
            0.976 - 0.24 * 0.9,
            1.0,
        ],
        rtol=1e-9,
        atol=1e-15,
    )
    x = np.linspace(0.32, 1.3, 491)
    np.testing.assert_allclose(c.throughput(x), np.min(a[:, None] + b[:, None] * x, axis=0), rtol=1e-12)


def test_throughput_interpolates_and_is_flat_above_demand():
    c = load_curve("v100-bert")
    np.testing.assert_allclose(c.throughput([0.65, 0.95, 1.0, 1.5]), [(0.804 + 0.889) / 2, 0.988, 1.0, 1.0], rtol=1e-9)
    # below the knee: first segment extended, clipped at zero
    np.testing.assert_allclose(c.throughput([0.35, 0.0]), [0.5 - 1.67 * 0.05, 0.0], rtol=1e-9)
    assert c.throughput(np.ones((3, 4))).shape == (3, 4)


def test_class_curves_ratio_equals_each_curve_for_any_mix_of_classes():
    """Every shipped curve at once, each point by its own class: against the uncapped draw (throughput 1) the ratio
    is the curve's own throughput, below the knee (the clipped extension), between breakpoints and above the
    uncapped draw; against any other draw it is the quotient of the curve's own throughputs, clipped to [0, 1]."""
    curves = tuple(load_curve(n) for n in available_curves())
    rng = np.random.default_rng(5)
    cls = rng.integers(0, len(curves), 4000)
    x = np.concatenate([rng.uniform(0.0, 1.6, 3990), [0.0] * 5, [c.x_min for c in curves[:5]]])
    thr = np.array([curves[k].throughput(v) for k, v in zip(cls, x, strict=True)])
    cc = ClassCurves(curves, cls)
    top = np.array([curves[k].x_demand for k in cls])
    np.testing.assert_allclose(cc.ratio(x, top), thr, rtol=0, atol=1e-12)
    assert np.ptp(cls) > 0 and (thr == 0).any() and (thr == 1).any()
    ref = rng.uniform(0.0, 1.6, x.size)
    thr_ref = np.array([curves[k].throughput(v) for k, v in zip(cls, ref, strict=True)])
    want = np.clip(thr / np.maximum(thr_ref, 1e-12), 0, 1)
    np.testing.assert_allclose(cc.ratio(x, ref), want, rtol=1e-12, atol=1e-12)


def test_zeus_curves_carry_the_published_points():
    v100 = load_curve("v100-bert")
    np.testing.assert_allclose(v100.x, [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], rtol=1e-12)
    np.testing.assert_allclose(v100.y, [0.500, 0.667, 0.804, 0.889, 0.937, 0.976, 1.000], rtol=1e-12)
    a40 = load_curve("a40-bert")
    np.testing.assert_allclose(a40.x, np.array([175, 200, 225, 250, 275, 300]) / 300, rtol=1e-12)
    np.testing.assert_allclose(a40.y, [0.786, 0.885, 0.940, 0.973, 0.996, 1.000], rtol=1e-12)


def test_v22_equal_split_beats_unequal_and_lp_returns_it():
    c = load_curve("v100-bert")
    assert 2 * c.throughput(0.7) == pytest.approx(1.778, rel=1e-9)
    assert c.throughput(0.4) + c.throughput(1.0) == pytest.approx(1.500, rel=1e-9)
    # LP over (x1, x2, y1, y2): max y1 + y2, y_i <= a_k + b_k x_i, x1 + x2 = 1.4, x_min <= x_i <= 1
    a, b = c.segments()
    k = a.size
    a_ub = np.zeros((2 * k, 4))
    a_ub[:k, 0], a_ub[:k, 2] = -b, 1.0
    a_ub[k:, 1], a_ub[k:, 3] = -b, 1.0
    res = linprog(
        [0, 0, -1, -1],
        A_ub=a_ub,
        b_ub=np.concatenate([a, a]),
        A_eq=[[1, 1, 0, 0]],
        b_eq=[1.4],
        bounds=[(0.4, 1.0), (0.4, 1.0), (None, None), (None, None)],
        method="highs",
    )
    assert res.success
    np.testing.assert_allclose(res.x[:2], [0.7, 0.7], rtol=1e-9)
    assert -res.fun == pytest.approx(1.778, rel=1e-9)


def test_from_points_upper_concave_envelope_by_hand():
    x = [0.3, 0.6, 0.5, 0.7, 0.9, 1.0]
    y = [0.1, 0.55, 0.5, 0.8, 1.0, 0.99]
    c = ThroughputCurve.from_points(x, y, x_min=0.5)
    # (0.3, .1) is below x_min; (0.6, .55) is under the chord (0.5,.5)-(0.7,.8) = .65;
    # (0.7, .8) is above the chord (0.5,.5)-(0.9,1) = .75; (1.0, .99) lies past the maximum
    np.testing.assert_allclose(c.x, [0.5, 0.7, 0.9], rtol=0)
    np.testing.assert_allclose(c.y, [0.5, 0.8, 1.0], rtol=0)


# ---------------------------------------------------------------- fit against the raw sweep
@needs_sweep
@pytest.mark.parametrize("name", list(JOBS))
def test_fit_residuals_against_raw_sweep(name):
    sweep, c = _sweep(), load_curve(name)
    entry = tomllib.loads(data.path("gpu_curves.toml").read_text())[name]
    pts = np.concatenate([sweep[j][sweep[j][:, 0] >= 200.0] for j in JOBS[name]])
    x, slope0 = (
        pts[:, 1],
        (c.y[1] - c.y[0]) / (c.x[1] - c.x[0]),
    )  # first segment extends below x_min
    res = pts[:, 2] - np.where(x < c.x[0], c.y[0] + slope0 * (x - c.x[0]), np.interp(x, c.x, c.y))
    assert entry["residual_points"] == len(pts)
    assert np.max(np.abs(res)) == pytest.approx(entry["residual_max_abs"], rel=1e-5, abs=1e-12)
    assert np.sqrt(np.mean(res**2)) == pytest.approx(entry["residual_rms"], rel=1e-5, abs=1e-12)
    # vertices are per-cap means of the measured points (single jobs: the points themselves)
    mean = np.mean([sweep[j] for j in JOBS[name]], axis=0)
    for xv, yv in zip(c.x, c.y, strict=True):
        i = int(np.argmin(np.abs(mean[:, 1] - xv)))
        assert (xv, yv) == pytest.approx((mean[i, 1], mean[i, 2]), rel=1e-12)
    assert c.x_min == pytest.approx(mean[mean[:, 0] == 200.0, 1][0], rel=1e-12)
    assert c.x_demand == pytest.approx(mean[mean[:, 0] == 400.0, 1][0], rel=1e-12)
    if len(JOBS[name]) == 1:  # an upper envelope is never below a point it was built from
        assert np.all(res <= 1e-12)
    else:  # training: the class curve sits within 0.01 of both jobs
        assert np.max(np.abs(res)) < 0.01
    # the 100 W samples (excluded, convex region) lie below the extended first segment
    low = np.concatenate([sweep[j][sweep[j][:, 0] == 100.0] for j in JOBS[name]])
    assert np.all(low[:, 2] < c.throughput(low[:, 1]))


# ---------------------------------------------------------------- power, throttle, smoothing
def test_power_drawn_is_min_of_demand_and_cap():
    np.testing.assert_array_equal(power_drawn_w([900.0, 1100.0, 0.0], [1000.0, 1000.0, 500.0]), [900.0, 1000.0, 0.0])


def test_thermal_throttle_limit():
    t_die = np.array([80.0, 87.0, 95.0, 95.0])
    t_cool = np.array([30.0, 30.0, 40.0, 80.0])
    lim, thr = thermal_throttle_limit_w(t_die, t_cool, 87.0, 0.035, 600.0)
    np.testing.assert_array_equal(thr, [False, True, True, True])
    assert lim[0] == np.inf
    np.testing.assert_allclose(lim[1:], [57.0 / 0.035, 47.0 / 0.035, 600.0], rtol=1e-12)


def test_smoothing_ramps_floor_and_vectorization():
    prev = np.array([1000.0, 1000.0, 1000.0, 100.0, 500.0])
    target = np.array([1300.0, 200.0, 1050.0, 0.0, 450.0])
    p = smooth_power_w(prev, target, 0.5, 400.0, 600.0, np.array([0.0, 0.0, 0.0, 300.0, 480.0]))
    # up 200 W per step at most, down 300 W per step, floor raises the target, ramp still holds
    np.testing.assert_allclose(p, [1200.0, 700.0, 1050.0, 300.0, 480.0], rtol=1e-12)
    p, trace = np.array([1000.0]), []
    for target_w in [200.0] * 5 + [1200.0] * 5:
        p = smooth_power_w(p, target_w, 1.0, 150.0, 250.0, 400.0)
        trace.append(float(p[0]))
    np.testing.assert_allclose(trace, [750, 500, 400, 400, 400, 550, 700, 850, 1000, 1150], rtol=1e-12)


# ---------------------------------------------------------------- invalid inputs
def test_invalid_inputs_name_the_argument():
    with pytest.raises(ValueError, match="y"):
        ThroughputCurve(np.array([0.5, 0.7, 0.9]), np.array([0.5, 0.6, 0.9]))  # convex
    with pytest.raises(ValueError, match="y"):
        ThroughputCurve(np.array([0.5, 0.9]), np.array([1.0, 0.8]))  # decreasing
    with pytest.raises(ValueError, match="x"):
        ThroughputCurve(np.array([0.5, 0.5]), np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="name"):
        load_curve("no-such-curve")
    with pytest.raises(ValueError, match="x"):
        load_curve("training").throughput([0.6, np.nan])
    with pytest.raises(ValueError, match="cap_w"):
        power_drawn_w(100.0, -1.0)
    with pytest.raises(ValueError, match="t_die_c"):
        thermal_throttle_limit_w(np.array([50.0, np.nan]), 30.0, 87.0, 0.035, 600.0)
    with pytest.raises(ValueError, match="r_total_k_w"):
        thermal_throttle_limit_w(50.0, 30.0, 87.0, 0.0, 600.0)
    with pytest.raises(ValueError, match="min_w"):
        thermal_throttle_limit_w(50.0, 30.0, 87.0, 0.035, -1.0)
    with pytest.raises(ValueError, match="ramp_up_w_s"):
        smooth_power_w(100.0, 200.0, 1.0, -1.0, 10.0, 0.0)
    with pytest.raises(ValueError, match="dt_s"):
        smooth_power_w(100.0, 200.0, 0.0, 1.0, 10.0, 0.0)


def test_throttle_releases_with_hysteresis():
    from factory_twin.models.gpu import thermal_throttle_limit_w

    t_die = np.array([86.0, 86.0, 84.5, 88.0])
    was = np.array([True, False, True, False])
    lim, thr = thermal_throttle_limit_w(t_die, 60.0, 87.0, 0.015, 500.0, was_throttled=was, hysteresis_k=2.0)
    np.testing.assert_array_equal(thr, [True, False, False, True])
    np.testing.assert_allclose(lim[thr], (87.0 - 60.0) / 0.015, rtol=1e-15)
    assert np.all(np.isinf(lim[~thr]))
    with pytest.raises(ValueError, match=r"^hysteresis_k"):
        thermal_throttle_limit_w(t_die, 60.0, 87.0, 0.015, 500.0, was_throttled=was, hysteresis_k=-1.0)


# ---------------------------------------------------------------- drawn power under a cap
@needs_sweep
def test_drawn_power_fit_matches_the_sweep_per_class():
    """Mean draw vs cap against every measured point (100-400 W): RMSE per class as recorded in the data file,
    and a few watts at most; e.g. fine-tuning draws ~321 W at a 350 W cap, not 350 W."""
    from factory_twin.twin.facility.curves import load_drawn

    sweep = _sweep()
    recorded = tomllib.loads(data.path("gpu_curves.toml").read_text())
    for name, jobs in JOBS.items():
        d = load_drawn(name)
        cap = np.concatenate([sweep[j][:, 0] for j in jobs]) / 400.0
        drawn = np.concatenate([sweep[j][:, 1] for j in jobs])
        res_w = (drawn - d.drawn(cap)) * 400.0
        rms = float(np.sqrt(np.mean(res_w**2)))
        assert rms == pytest.approx(recorded[name]["drawn"]["residual_rms_w"], rel=1e-3), name
        assert rms < 2.5 and np.max(np.abs(res_w)) < 3.5, name
        assert d.x_demand == pytest.approx(load_curve(name).x_demand, rel=1e-12), name
    assert load_drawn("fine-tuning").drawn(350 / 400) * 400 == pytest.approx(320.6, abs=1.5)


def test_drawn_power_limits_inverse_and_curves_without_fit():
    """Clipped normal: a narrow demand draws min(mu, eta c); the cap inverse is a round trip; Zeus curves
    (drawn = cap by construction) carry no fit."""
    from factory_twin.models.gpu import DrawnPower
    from factory_twin.twin.facility.curves import load_drawn

    narrow = DrawnPower(mu=0.8, sigma=1e-4, eta=0.98)
    c = np.array([0.3, 0.6, 0.9, 1.0])
    np.testing.assert_allclose(narrow.drawn(c), np.minimum(0.8, 0.98 * c), atol=1e-4)
    d = load_drawn("training")
    caps = np.linspace(0.3, 1.0, 15)
    np.testing.assert_allclose(d.cap_for(d.drawn(caps)), caps, atol=1e-6)
    assert np.all(np.diff(d.drawn(caps)) > 0) and np.all(d.drawn(caps) <= caps * d.eta + 1e-12)
    assert load_drawn("v100-bert") is None
