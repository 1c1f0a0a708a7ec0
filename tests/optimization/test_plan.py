"""The typed plan hand-off (DispatchPlan, the twin's ControlPlan) and the controller registry."""

from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path

import numpy as np
import pytest
from factory_twin.models.units import MW
from factory_twin.optimization import DispatchPlan, dispatch, dispatch_plan
from factory_twin.optimization.controllers import CONTROLLERS, NAMEABLE, make_controller
from factory_twin.optimization.groups import make_groups
from factory_twin.optimization.plan import plan_dataset
from factory_twin.twin.simulation.controllers import Controller, ControlPlan, FixedCap, Uncapped

from factory_twin import twin

PACKAGE = Path(__file__).resolve().parents[2]
OVER_DR = dict(horizon="4h", step="15min", start="2026-08-08T15:00:00", backend="highspy")  # hot-day-dr's event


@pytest.fixture(scope="module")
def over_dr(campus, hot) -> DispatchPlan:
    return dispatch_plan(campus, hot, **OVER_DR)


def test_the_plan_says_what_its_fields_are(campus, hot, over_dr):
    p, g = over_dr, make_groups(campus, over_dr.grouping)
    assert isinstance(p, ControlPlan) and p.optimal and p.group_names == g.names
    T, G = p.times.size, g.n
    assert p.gpu_cap_w.shape == p.gpu_drawn_w.shape == (T, G) and p.step_s == 900.0
    # a cap the GPUs take, and the draw under it (these classes draw min(demand, cap): the cap where it binds)
    assert np.all(p.gpu_cap_w >= g.min_cap_w) and np.all(p.gpu_cap_w <= g.tdp_w)
    assert np.all(p.gpu_drawn_w <= p.gpu_cap_w)
    np.testing.assert_array_equal(p.gpu_drawn_w, p.gpu_cap_w)
    assert np.any(p.gpu_cap_w < 0.95 * g.demand_w)  # the DR event binds: not a trivial plan
    # the campus GPU power is the busy GPUs' draw plus the idle ones' [W]
    u = np.stack([hot.utilization(c, p.times) for c in g.class_names], axis=1)
    want = np.sum(g.gpus * (u * p.gpu_drawn_w + (1 - u) * g.idle_w), axis=1)
    np.testing.assert_allclose(p.gpu_power_w, want, rtol=1e-12)
    # the targets it planned against, met
    assert np.all(p.grid_import_w <= p.import_limit_w * (1 + 1e-9))
    event = np.isfinite(p.dr_target_w)
    assert event.any() and np.all(p.grid_import_w[event] <= p.dr_target_w[event] * (1 + 1e-6))
    np.testing.assert_array_equal(p.import_limit_w, campus.spec.grid.import_limit_mw * MW)


def test_the_dataset_is_the_plan_in_mw(campus, hot, over_dr):
    ds = plan_dataset(over_dr)
    again = dispatch(campus, hot, **OVER_DR)
    for v in ("gpu_cap_w", "grid_import_mw", "import_limit_mw", "dr_target_mw", "bess_soc_mwh", "tokens_per_s"):
        np.testing.assert_allclose(ds[v].values, again[v].values, rtol=1e-9, equal_nan=True)
    assert ds.gpu_cap_w.attrs["units"] == "W" and ds.grid_import_mw.attrs["units"] == "MW"
    np.testing.assert_array_equal(ds.gpu_cap_w.values, over_dr.gpu_cap_w)
    np.testing.assert_allclose(ds.grid_import_mw.values * MW, over_dr.grid_import_w, rtol=1e-15)
    np.testing.assert_allclose(ds.gpu_power_mw.values * MW, over_dr.gpu_power_w, rtol=1e-15)
    assert ds.attrs["status"] == over_dr.status == "optimal" and ds.attrs["grouping"] == over_dr.grouping
    assert ds.attrs["optimal"] == 1 and ds.attrs["step_s"] == 900.0


def test_fitted_classes_get_the_cap_whose_mean_draw_is_planned():
    """``drawn_power = "fit"``: the LP decides the draw; the cap is the inverse of the fitted draw."""
    f = twin.load_facility("emerald-phoenix")
    sc = twin.load_scenario("srp-2025-05-04", f)
    p = dispatch_plan(f, sc, horizon="1h", step="15min", start="2025-05-04T16:30:00", backend="highspy")
    g = make_groups(f, p.grouping)
    assert p.optimal and any(d is not None for d in f.drawn)
    assert np.all(p.gpu_cap_w >= g.min_cap_w) and np.all(p.gpu_cap_w <= g.tdp_w)
    assert np.all(p.gpu_drawn_w <= p.gpu_cap_w)
    first = np.unique(g.rack_group, return_index=True)[1]  # a rack of each group
    for t in range(p.times.size):
        rack_cap = p.gpu_cap_w[t][g.rack_group]
        drawn = f.drawn_w(rack_cap)[first]
        np.testing.assert_allclose(drawn, p.gpu_drawn_w[t], rtol=2e-3)  # the inverse is a 2001-point table
    assert np.any(p.gpu_cap_w > p.gpu_drawn_w * 1.01)  # the cap sits above the mean draw it yields


def test_a_plan_refuses_arrays_of_the_wrong_shape(over_dr):
    from dataclasses import replace

    with pytest.raises(ValueError, match=r"gpu_cap_w: expected \[steps, groups\]"):
        replace(over_dr, gpu_cap_w=over_dr.gpu_cap_w[:, :1])
    with pytest.raises(ValueError, match=r"grid_import_w: expected \[steps\]"):
        replace(over_dr, grid_import_w=over_dr.grid_import_w[:-1])


# ------------------------------------------------------------------ the registry


def test_every_nameable_controller_is_built_by_name(campus, hot):
    assert NAMEABLE == ("uncapped", "fixed:FRACTION", "mpc", "mpc-n1")
    assert isinstance(make_controller("uncapped", campus, hot), Uncapped)
    fixed = make_controller("fixed:0.6", campus, hot)
    assert isinstance(fixed, FixedCap) and fixed.fraction == 0.6
    mpc = make_controller("mpc", campus, hot, replan_every="10min")
    assert type(mpc).__name__ == "MPCController" and mpc.period_s == 600.0
    n1 = make_controller("mpc-n1", campus, hot, replan_every="10min")
    assert n1.options.n_minus_1 and not mpc.options.n_minus_1 and n1.period_s == 600.0
    for c in (make_controller("uncapped", campus, hot), fixed, mpc):
        assert isinstance(c, Controller) and c.plan is None  # before its first call, an MPC has no plan either
    assert mpc.replans and not fixed.replans


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mcp", "--controller: expected uncapped, fixed:FRACTION, mpc or mpc-n1, got 'mcp'"),
        ("fixed", "--controller: expected uncapped, fixed:FRACTION, mpc or mpc-n1, got 'fixed'"),
        ("mpc:2", "--controller: expected uncapped, fixed:FRACTION, mpc or mpc-n1, got 'mpc:2'"),
        ("uniform", "--controller: expected uncapped, fixed:FRACTION, mpc or mpc-n1, got 'uniform'"),  # code only
        ("plan", "--controller: expected uncapped, fixed:FRACTION, mpc or mpc-n1, got 'plan'"),
        ("fixed:1.5", "--controller: fixed:FRACTION needs a fraction of TDP in (0, 1], got 1.5"),
        ("fixed:half", "--controller: fixed:FRACTION needs a number in (0, 1], got 'half'"),
    ],
)
def test_a_bad_name_names_the_option_and_the_choices(campus, hot, name, message):
    with pytest.raises(ValueError) as e:
        make_controller(name, campus, hot, option="--controller")
    assert str(e.value) == message


def _controller_classes() -> set[str]:
    """Classes in the package that implement ``__call__(self, state: TwinState, ...)`` (the engine's call)."""
    found = set()
    for folder in ("twin", "optimization", "links", "dashboard", "factory_twin"):
        for path in (PACKAGE / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef) and item.name == "__call__" and len(item.args.args) > 1:
                            ann = item.args.args[1].annotation
                            if isinstance(ann, ast.Name) and ann.id == "TwinState":
                                found.add(node.name)
    return found


def test_every_controller_in_the_package_is_registered_and_declares_the_protocol():
    registered = {r.defined_in.rsplit(".", 1)[1]: r for r in CONTROLLERS.values()}
    assert _controller_classes() - {"Controller"} == set(registered)  # a new one without a registration fails
    for name, r in registered.items():
        module, _, cls = r.defined_in.rpartition(".")
        c = getattr(importlib.import_module(f"factory_twin.{module}"), cls)
        assert cls == name and isinstance(c.replans, bool), r.defined_in  # declared on the class
        assert r.nameable == (r.build is not None)


def test_the_cli_offers_every_nameable_controller():
    from factory_twin.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in ("simulate", "dashboard"):
        ctl = next(a for a in sub[command]._actions if a.dest == "controller")
        assert all(n in ctl.help for n in NAMEABLE), (command, ctl.help)
