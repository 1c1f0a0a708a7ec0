"""The live twin's /metrics scraped by a real Prometheus (Debian's), checked through PromQL against the twin.

Two exporters, one Prometheus: the dashboard process (``serve`` with ``metrics_port``, campus-100mw, GPU series per
rack), read against the snapshot its runner published; and a twin stepped in this process (:class:`TwinMetrics`,
the path of ``steer`` and ``openadr-ven``, emerald-phoenix with a GPU series per GPU), read against the twin.
"""

from __future__ import annotations

import math
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from factory_twin.links.prometheus.exporter import TwinMetrics
from factory_twin.twin.facility.nodes import nodes
from factory_twin.twin.live.runner import SNAPSHOT, load_snapshot, send_command
from factory_twin.twin.simulation.controllers import FixedCap
from factory_twin.twin.simulation.engine import Twin
from prometheus_server import Prometheus
from support import free_port, wait_for

from factory_twin import twin

DCGM_LABELS = {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname"}


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, child_env):
    """``serve`` in a child process with /metrics on its own port, GPU series aggregated per rack."""
    run = tmp_path_factory.mktemp("live")
    port, metrics_port = free_port(), free_port()
    code = (
        "from factory_twin.dashboard.server import serve; "
        f"serve(facility='campus-100mw', port={port}, speed=60.0, controller='uncapped', folder={str(run)!r}, "
        f"studies_dir={str(run)!r}, metrics_port={metrics_port}, gpu_series='rack')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env
    )
    url = f"http://127.0.0.1:{metrics_port}/metrics"

    def serving():
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited: {proc.stdout.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_for(serving, 120, "the dashboard's /metrics")
        yield run, f"127.0.0.1:{metrics_port}"
    finally:  # also when it never served: no child left behind
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def stepped():
    """emerald-phoenix (256 A100s, 8 per node) under a fixed 75 % cap, stepped here, per-GPU series."""
    f = twin.load_facility("emerald-phoenix")
    sc = twin.load_scenario("srp-2025-05-04", f)
    tw = Twin(f, sc, plant_step_s=20.0, controller=FixedCap(f.tdp_w, f.min_cap_w, 0.75))
    for _ in range(3):
        tw.advance()
    m = TwinMetrics(tw, port=free_port(), controller="fixed:0.75")
    m.update()
    yield tw, m
    m.close()


@pytest.fixture(scope="module")
def prom(tmp_path_factory, dashboard, stepped):
    p = Prometheus(tmp_path_factory.mktemp("prom"), [dashboard[1], stepped[1].server.url.split("/")[2]])
    yield p
    p.stop()


def _by(rows, label):
    return {m[label]: v for m, v in rows}


def test_dashboard_metrics_equal_the_published_snapshot(prom, dashboard):
    run, target = dashboard
    send_command(run, {"kind": "pause"})  # the twin holds still: the snapshot and the scrape show one moment
    wait_for(lambda: (s := load_snapshot(run / SNAPSHOT)) is not None and s.meta["paused"], 30, "the paused snapshot")
    prom.wait_scrape()
    snap = load_snapshot(run / SNAPSHOT)
    now, sel = snap.meta["now"], f'{{instance="{target}"}}'

    for metric, meter, factor in [
        ("factory_twin_grid_import_watts", "grid_import_mw", 1e6),
        ("factory_twin_pue_ratio", "pue", 1.0),
        ("factory_twin_it_power_watts", "it_power_mw", 1e6),
        ("factory_twin_cooling_power_watts", "cooling_power_mw", 1e6),
        ("factory_twin_facility_water_supply_temperature_celsius", "fws_supply_c", 1.0),
        ("factory_twin_import_limit_watts", "import_limit_mw", 1e6),
    ]:
        assert prom.scalar(metric + sel) == pytest.approx(now[meter] * factor, rel=1e-12), metric
    assert math.isnan(prom.scalar("factory_twin_dr_target_watts" + sel))  # no DR event: NaN, as the meter
    assert prom.scalar(f'factory_twin_info{{instance="{target}",facility="campus-100mw"}}') == 1.0

    # every CDU's supply temperature, by its label
    sup = _by(prom.query("factory_twin_cdu_supply_temperature_celsius" + sel), "cdu")
    assert len(sup) == 84
    halls, hall = snap.meta["hall_names"], np.asarray(snap["cdu_hall"])
    for i, t in enumerate(np.asarray(snap["cdu_tcs_supply_c"])):
        row = i - int(np.flatnonzero(hall == hall[i])[0]) + 1
        assert sup[f"{halls[hall[i]]}-cdu{row:02d}"] == pytest.approx(t, rel=1e-12)

    # DCGM per rack: power sums to the campus GPU meter, energy counts the racks' draw, temperature per rack
    rows = prom.query("DCGM_FI_DEV_POWER_USAGE" + sel)
    assert len(rows) == 840 and {m["gpu"] for m, _ in rows} == {"all"} and {m["gpus"] for m, _ in rows} == {"72"}
    assert sum(v for _, v in rows) == pytest.approx(now["gpu_power_mw"] * 1e6, rel=1e-9)
    assert prom.scalar("sum(DCGM_FI_DEV_POWER_USAGE" + sel + ")") == pytest.approx(now["gpu_power_mw"] * 1e6, rel=1e-9)
    where = zip(snap["rack_hall"], snap["rack_row"], snap["rack_slot"], strict=True)
    names = [f"{halls[h]}-r{r + 1:02d}-{s + 1:02d}" for h, r, s in where]
    energy = _by(prom.query("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" + sel), "Hostname")
    want = np.floor(np.asarray(snap["rack_gpu_energy_j"]) * 72 * 1000)
    assert want.min() > 0 and [energy[n] for n in names] == want.tolist()
    temp = _by(prom.query("DCGM_FI_DEV_GPU_TEMP" + sel), "Hostname")
    assert [temp[n] for n in names] == np.round(snap["rack_die_temp_c"]).tolist()
    limit = _by(prom.query("DCGM_FI_DEV_ENFORCED_POWER_LIMIT" + sel), "Hostname")
    assert [limit[n] for n in names] == pytest.approx(np.asarray(snap["rack_gpu_cap_w"]).tolist(), abs=1e-6)
    assert prom.scalar(f'factory_twin_alarms{{source="cooling",instance="{target}"}}') == 0.0


def test_per_gpu_series_follow_the_twin_stepped_in_process(prom, stepped):
    tw, m = stepped
    target = f'{{instance="{m.server.url.split("/")[2]}"}}'
    f = tw.f
    prom.wait_scrape()
    power = prom.query("DCGM_FI_DEV_POWER_USAGE" + target)
    assert len(power) == 256
    assert {k for k in power[0][0] if k not in ("__name__", "instance", "job")} == DCGM_LABELS
    assert len({lab["UUID"] for lab, _ in power}) == 256 and len({lab["Hostname"] for lab, _ in power}) == 32
    assert {lab["modelName"] for lab, _ in power} == {"NVIDIA A100-SXM4-40GB"}
    assert sum(v for _, v in power) == pytest.approx(tw.last.gpu_w, rel=1e-9)  # the engine's GPU meter
    assert {(lab["Hostname"], lab["gpu"]) for lab, _ in power} == {
        (n, str(g)) for n in nodes(f).names for g in range(8)
    }
    limits = prom.query("DCGM_FI_DEV_ENFORCED_POWER_LIMIT" + target)
    assert {v for _, v in limits} == {300.0}  # 75 % of the A100's 400 W

    # the energy counter: the twin's energy per GPU, and its increase over 10 plant steps is the power drawn
    e0 = tw.gpu_energy_j.copy()
    drawn = np.zeros(f.n_racks)
    for _ in range(10):
        tw.advance()
        drawn += tw.gpu_power_w * tw.plant_dt
    m.update()
    prom.wait_scrape()
    counter = prom.query("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" + target)
    assert len(counter) == 256
    np.testing.assert_allclose(tw.gpu_energy_j - e0, drawn, rtol=1e-12)
    total_mj = sum(v for _, v in counter)
    assert total_mj == float(np.sum(np.floor(tw.gpu_energy_j * 1000) * f.gpus))
    assert total_mj / 1000 == pytest.approx(float(f.gpus @ tw.gpu_energy_j), abs=256e-3)
    meta = prom.api("metadata", metric="DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")
    assert meta["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"][0]["type"] == "counter"
    assert prom.query("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total") == []
    assert prom.scalar("factory_twin_grid_import_watts" + target) == pytest.approx(
        tw.last.grid_w - tw.last.bess_w, rel=1e-12
    )
