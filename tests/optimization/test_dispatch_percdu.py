"""Dispatch per class x CDU on a real facility: the CDU limits against a first-principles assembly, the
limits binding where a per-hall plan breaks them, conflicts that name the CDU, the plan followed by
the twin, and the command line."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from factory_twin.models.cooling import ConstantFlowCdus
from factory_twin.optimization import PlanFollower, dispatch, dispatch_plan
from factory_twin.optimization.cdu_limits import cdu_limits_w, cdu_rooms
from factory_twin.optimization.groups import make_groups, rack_caps_w
from factory_twin.twin.facility.assembly import load_facility
from factory_twin.twin.scenario.scenario import load_scenario
from factory_twin.twin.simulation.engine import Twin

from factory_twin import data
from factory_twin.cli import main

FOULED = (0, 3)  # CDUs of hall-a
START = "2026-08-08T12:00:00"  # hot-day-dr's afternoon, before its DR event


def facility(tmp_path, ua=0.7, max_rise_k=None):
    """campus-100mw with CDUs 0 and 3 of hall-a fouled to ``ua`` (a user's facility file)."""
    text = data.path("facilities", "campus-100mw.toml").read_text(encoding="utf-8")
    if max_rise_k is not None:
        text = text.replace("[cooling.tcs]\n", f"[cooling.tcs]\nmax_rise_k = {max_rise_k}\n")
    text += f'\n[[cooling.cdu.fouling]]\nhall = "hall-a"\ncdus = [{FOULED[0]}, {FOULED[1]}]\nua_fraction = {ua}\n'
    path = tmp_path / "fouled.toml"
    path.write_text(text, encoding="utf-8")
    return load_facility(path)


def counterflow_eps(ntu, cr):
    return (1 - np.exp(-ntu * (1 - cr))) / (1 - cr * np.exp(-ntu * (1 - cr)))


def test_cdu_limits_equal_a_first_principles_assembly(tmp_path):
    f = facility(tmp_path, ua=0.7, max_rise_k=8.0)
    s = f.spec
    cool = s.cooling
    t_set, t_fws = cool.tcs.supply_setpoint_c, cool.facility_water.supply_setpoint_c
    rho, cp = f.tcs.rho_kg_m3(t_set), f.tcs.cp_j_kgk(t_set)
    z = f.n_cdus
    heat, flow, base = np.zeros(z), np.zeros(z), np.zeros((3, z))
    times = np.array(["2026-08-08T12:00", "2026-08-08T15:00", "2026-08-08T03:00"], "datetime64[s]")
    sc = load_scenario("hot-day-dr", f)
    u = {c: sc.utilization(c, times) for c in f.class_names}
    for c in range(z):  # CDU by CDU, rack by rack: the eps-NTU balance of the CDU's design, then fouling
        racks = np.flatnonzero(f.rack_cdu == c)
        design_w = f.gpus[racks] * f.tdp_w[racks] + f.non_gpu_w[racks]
        c_tcs = sum(cool.tcs.flow_l_min_per_kw * w / 1e3 / 60e3 * rho * cp for w in design_w)
        c_fws = cool.cdu.fws_flow_ratio * c_tcs
        q_design = sum(design_w * f.liquid_fraction[racks])
        c_min, cr = min(c_tcs, c_fws), min(c_tcs, c_fws) / max(c_tcs, c_fws)
        eps_d = q_design / (c_min * (cool.cdu.design_approach_k + q_design / c_tcs))
        ntu = np.log((1 - eps_d * cr) / (1 - eps_d)) / (1 - cr) * (0.7 if c in FOULED else 1.0)
        e = counterflow_eps(ntu, cr) * c_min
        heat[c] = e * (t_set - t_fws) / (1 - e / c_tcs)
        flow[c] = c_tcs * 8.0
        for i, r in enumerate(racks):
            busy = u[f.class_names[f.rack_class[r]]]
            liquid_other = min(max(f.liquid_fraction[r] * design_w[i] - f.gpus[r] * f.tdp_w[r], 0), f.non_gpu_w[r])
            base[:, c] += f.gpus[r] * (1 - busy) * f.idle_w[r] + liquid_other
        if c not in FOULED and abs(t_set - t_fws - cool.cdu.design_approach_k) < 1e-12:
            assert heat[c] == pytest.approx(q_design, rel=1e-12)  # a clean CDU at design holds exactly its design
    lim = cdu_limits_w(f)
    np.testing.assert_allclose(lim["cdu_heat"], heat, rtol=1e-9)
    np.testing.assert_allclose(lim["cdu_flow"], flow, rtol=1e-9)
    groups = make_groups(f, "cdu")
    assert groups.n == z and np.array_equal(groups.zone, np.arange(z))  # one class per CDU
    rooms = cdu_rooms(f, groups, np.stack([u[c] for c in groups.class_names], axis=1))
    np.testing.assert_allclose(rooms["cdu_heat"], (heat - base) / 1e6, rtol=1e-9)
    np.testing.assert_allclose(rooms["cdu_flow"], (flow - base) / 1e6, rtol=1e-9)
    # the exchanger model agrees: at the limit the CDU holds its setpoint, just above it cannot
    cdus = ConstantFlowCdus(
        np.bincount(f.rack_cdu, f.rack_m_dot_kg_s, z) * cp, f.c_fws_max_w_k, f.cdu_ua_nom_w_k, t_set
    )
    c_tcs_all = cdus.c_tcs_w_k
    sup, short = cdus.control(t_set + heat * (1 - 1e-9) / c_tcs_all, t_fws)
    assert not short.any() and np.allclose(sup, t_set)
    _, short = cdus.control(t_set + heat * (1 + 1e-6) / c_tcs_all, t_fws)
    assert short.all()


def cdu_heat_w(f, plan) -> np.ndarray:
    """Liquid heat per CDU [W] under a plan's caps, from the facility arrays (not the LP): [T, Z]."""
    groups = make_groups(f, plan.attrs["grouping"])
    sc = load_scenario("hot-day-dr", f)
    times = plan.time.values
    u = np.stack([sc.utilization(c, times) for c in f.class_names], axis=1)[:, f.rack_class]
    out = []
    for t in range(times.size):
        drawn = f.drawn_w(rack_caps_w(f, groups, plan.gpu_cap_w.values[t]))
        q = f.gpus * (u[t] * drawn + (1 - u[t]) * f.idle_w) + f.non_gpu_liquid_w
        out.append(np.bincount(f.rack_cdu, q, f.n_cdus))
    return np.array(out)


def test_cdu_limits_bind_where_the_per_hall_plan_exceeds_them(tmp_path):
    f = facility(tmp_path, ua=0.7)
    sc = load_scenario("hot-day-dr", f)
    limit = cdu_limits_w(f)["cdu_heat"]
    plans = {g: dispatch(f, sc, horizon="1h", step="30min", start=START, grouping=g) for g in ("hall", "cdu")}
    assert all(p.attrs["status"] == "optimal" for p in plans.values())
    hall, cdu = cdu_heat_w(f, plans["hall"]), cdu_heat_w(f, plans["cdu"])
    fouled = list(FOULED)
    assert np.all(hall[:, fouled] > 1.05 * limit[fouled])  # the per-hall plan overloads the fouled CDUs
    np.testing.assert_allclose(cdu[:, fouled], np.broadcast_to(limit[fouled], (2, 2)), rtol=1e-6)  # binding
    assert np.all(cdu <= limit * (1 + 1e-9))
    # only the fouled CDUs' groups give up power; the plan knows why it keeps less throughput
    assert plans["cdu"].attrs["objective"] < plans["hall"].attrs["objective"]
    caps = plans["cdu"].gpu_cap_w.values
    others = np.setdiff1d(np.flatnonzero(f.cdu_class == f.cdu_class[0]), fouled)
    assert np.all(caps[:, fouled].max(axis=1) < caps[:, others].min(axis=1))


def test_cdu_limits_follow_the_measured_facility_water(tmp_path):
    from types import SimpleNamespace

    f = facility(tmp_path, ua=0.7)
    sc = load_scenario("hot-day-dr", f)
    warm = SimpleNamespace(grid_import_w=np.nan, gpu_cap_w=f.tdp_w, fws_supply_c=32.2)  # setpoint 32 degC
    plan = dispatch(f, sc, horizon="1h", step="30min", start=START, grouping="cdu", initial=warm)
    assert plan.attrs["status"] == "optimal", plan.attrs["conflicts"]
    limit = cdu_limits_w(f, 32.2)["cdu_heat"]
    assert np.all(limit < cdu_limits_w(f)["cdu_heat"])
    np.testing.assert_allclose(
        cdu_heat_w(f, plan)[:, list(FOULED)], np.broadcast_to(limit[list(FOULED)], (2, 2)), rtol=1e-6
    )


def test_conflicting_cdu_limits_are_named(tmp_path):
    f = facility(tmp_path, ua=0.3, max_rise_k=2.0)
    sc = load_scenario("hot-day-dr", f)
    plan = dispatch(f, sc, horizon="1h", step="30min", start=START, grouping="cdu")
    assert plan.attrs["status"].startswith("infeasible")
    conflicts = plan.attrs["conflicts"]
    assert any(f"cdu_heat (2 CDU(s), worst cdu-{c} (hall-a #{c})" in conflicts for c in FOULED)
    assert f"cdu_flow ({f.n_cdus} CDU(s)" in conflicts and "cooling.tcs.max_rise_k" in conflicts
    assert np.isnan(plan.gpu_cap_w.values).all()
    soft = dispatch(f, sc, horizon="1h", step="30min", start=START, grouping="cdu", soft=("cdu",))
    assert soft.attrs["status"] == "optimal" and "cdu_heat" in soft.attrs["violations"]
    assert dispatch(f, sc, horizon="1h", step="30min", start=START).attrs["status"] == "optimal"  # per hall: unseen


def test_twin_follows_the_plan_step_by_step(tmp_path):
    f = facility(tmp_path)
    sc = load_scenario("hot-day-dr", f)
    plan = dispatch_plan(f, sc, horizon="1h", step="30min", start=START, grouping="cdu")
    follower = PlanFollower(f, plan)
    tw = Twin(f, sc, start=START, controller=follower)
    groups = make_groups(f, "cdu")
    for step in range(2):
        for _ in range(90):  # 30 min of 20 s plant steps
            tw.advance()
            want = np.clip(rack_caps_w(f, groups, plan.gpu_cap_w[step]), f.min_cap_w, f.tdp_w)
            np.testing.assert_array_equal(tw.cap, want)
    assert follower.period_s == 1800.0
    with pytest.raises(ValueError, match="plan: 84 groups"):
        PlanFollower(load_facility("campus-1gw"), plan)


def test_optimize_per_cdu_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "plan.nc"
    args = ["optimize", "campus-100mw", "--horizon", "1h", "--step", "30min", "--grouping", "cdu", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr()
    plan = xr.load_dataset(out)
    assert plan.attrs["grouping"] == "cdu" and plan.sizes["group"] == load_facility("campus-100mw").n_cdus
    with pytest.raises(SystemExit):
        main(["optimize", "--grouping", "rack"])
    assert "--grouping: invalid choice: 'rack'" in capsys.readouterr().err
