"""Storage on the 800 VDC bus (issue 24 item 2): each layer of data/grid_mitigation.toml is a first-order high-pass
of the load (discrete response to 1e-6, continuous limit), its charge is the integral of its power less its losses,
what it absorbs equals what it returns plus its losses and stored change, and in the fast run the layers on the
DC-DC inputs close the energy books and hide the iteration swing from the grid."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from factory_twin.models.storage_split import run_split
from factory_twin.optimization.studies.power_architecture import study_facility
from factory_twin.optimization.studies.storage_sizing import storage_layers
from factory_twin.twin.grid_dynamics.fast_electrical import Mitigation, StartState, TrainingJob, run_fast

from factory_twin import twin

DT = 0.01  # s
F_HZ = 0.5  # the default iteration (2 s period)


def _amplitude(x: np.ndarray, t: np.ndarray, w: float) -> float:
    """Amplitude of the ``w`` component of ``x`` over whole periods (exact for a discrete sinusoid)."""
    c, s = 2 * np.mean(x * np.cos(w * t)), 2 * np.mean(x * np.sin(w * t))
    return math.hypot(c, s)


@pytest.mark.parametrize("name", ["supercap", "battery"])
def test_each_bus_layer_is_a_first_order_high_pass(name):
    layer = next(x for x in storage_layers(True, 10.0, 1800.0, {"supercap": (1e7, 1e5), "battery": (1e7, 1e5)})["bus"]
                 if x.name == name)  # fmt: skip
    tau = layer.law.tau_s
    law = replace(layer.law, soc_gain_per_s=0.0)  # the filter alone
    w = 2 * math.pi * F_HZ
    n = int(round((40 * tau + 20) / DT))
    t = np.arange(n) * DT
    load = 1000.0 + 800.0 * np.sin(w * t)  # W per GPU
    up, p, loss, e = run_split(load, DT, law, layer.store())
    tail = slice(n - int(round(10 / DT)), n)  # the last 10 s (5 periods), transient below e^-30
    a = math.exp(-DT / tau)
    z = np.exp(-1j * w * DT)
    discrete = abs(a * (1 - z) / (1 - a * z))  # 1 - (1 - a)/(1 - a z^-1): the split's store share
    assert _amplitude(p[tail], t[tail], w) / 800.0 == pytest.approx(discrete, rel=1e-6)
    assert _amplitude(up[tail], t[tail], w) / 800.0 == pytest.approx(abs((1 - a) / (1 - a * z)), rel=1e-6)
    continuous = w * tau / math.sqrt(1 + (w * tau) ** 2)
    assert discrete == pytest.approx(continuous, rel=DT / tau)  # the continuous limit, to first order in dt / tau
    # charge = integral of power through the efficiencies; absorbed = returned + losses + stored change
    store = layer.store()
    flow = np.where(p > 0, p / store.eta_discharge, p * store.eta_charge)
    e0 = law.soc_ref * store.energy_capacity_j
    assert e[-1] - e0 == pytest.approx(-flow.sum() * DT, rel=1e-9, abs=1e-9 * np.abs(p).sum() * DT)
    absorbed, returned = -p[p < 0].sum() * DT, p[p > 0].sum() * DT
    assert absorbed == pytest.approx(returned + loss.sum() * DT + (e[-1] - e0), rel=1e-9)
    assert np.allclose(up * DT, load * DT + loss * DT + np.diff(e, prepend=e0), rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def dc_site():
    f = study_facility("campus-100mw", "dc800-2n")
    tw = twin.Twin(f, twin.load_scenario(None, f))
    tw.advance()
    return f, StartState.from_twin(tw)


def test_bus_layers_in_the_fast_run_close_the_books_and_hide_the_swing(dc_site):
    f, start = dc_site
    job = [TrainingJob("j", 40_000, period_s=2.0, duty=0.875, edge_s=0.05)]
    sizes = {"supercap": (2_000.0, 1_500.0), "battery": (20_000.0, 1_500.0)}
    bus = storage_layers(True, 5.0, float(f.tdp_w.max()), sizes)["bus"]
    bare = run_fast(f, start, job, Mitigation(), duration_s=30.0)
    run = run_fast(f, start, job, Mitigation(bus_layers=bus), duration_s=30.0)
    a = run.dataset.attrs
    book = a["dc_load_j"] + a["mech_j"] + a["conversion_loss_j"] + a["storage_loss_j"] + a["stored_change_j"]
    assert a["poi_energy_j"] == pytest.approx(book, rel=1e-9) and abs(a["energy_book_residual"]) < 1e-9
    assert a["storage_loss_j"] > 0 and a["bus_battery_peak_w_per_gpu"] > 0
    assert a["dc_load_j"] == pytest.approx(bare.dataset.attrs["dc_load_j"], rel=1e-12)  # storage upstream of the racks
    swing = lambda r: float(np.ptp(r.poi_w[-int(10 / 0.01) :]))  # noqa: E731
    assert swing(run) < 0.2 * swing(bare)
    assert float(np.ptp(run.dataset.bus_store_mj.values)) > 0
