"""The exposition text: checked by promtool (Prometheus' own linter), every meter exported under a valid name, the
format's escapes, and the endpoint's answers."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections import Counter

import pytest
from factory_twin.links.prometheus import dcgm
from factory_twin.links.prometheus.exporter import Exporter, MetricsServer
from factory_twin.links.prometheus.exposition import labels, number, shared_value_block
from factory_twin.links.prometheus.facility import NAMES, RUNNER, meter_metric
from factory_twin.links.prometheus.readings import Readings
from factory_twin.twin.live.runner import RUNNER_SERIES
from factory_twin.twin.simulation.engine import Twin
from factory_twin.twin.simulation.meters import METERS
from support import free_port

from factory_twin import twin

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


@pytest.fixture(scope="module")
def phoenix_body():
    f = twin.load_facility("emerald-phoenix")
    tw = Twin(f, twin.load_scenario("srp-2025-05-04", f))
    tw.advance()
    return Exporter(f).render(Readings.from_twin(tw, "uncapped", {"cooling": 0}))


def test_every_meter_is_exported_once_under_a_valid_name():
    assert set(NAMES) == set(METERS) and set(RUNNER) == set(RUNNER_SERIES)
    names = [meter_metric(m)[0] for m in (*METERS, *RUNNER)]
    assert len(set(names)) == len(names) and all(NAME.match(n) for n in names)
    assert meter_metric("grid_import_mw")[:2] == ("factory_twin_grid_import_watts", 1e6)
    assert meter_metric("bess_soc_mwh")[:2] == ("factory_twin_bess_stored_energy_joules", 3.6e9)
    assert meter_metric("carbon_t_per_h")[:2] == ("factory_twin_carbon_emissions_grams_per_second", 1e6 / 3600)
    assert meter_metric("throttled_gpus")[0] == "factory_twin_throttled_gpus"  # a count: no unit


def test_promtool_finds_only_what_the_dcgm_exporter_does_by_design(phoenix_body):
    """promtool's lint: DCGM's camelCase labels and its energy counter without ``_total`` (both on purpose: the
    exporter's exact names), nothing else; and the text parses (promtool exits 1 on a parse error)."""
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    r = subprocess.run([promtool, "check", "metrics"], input=phoenix_body, capture_output=True, check=False)
    problems = Counter((r.stdout + r.stderr).decode().splitlines())
    expected = {f"{n} label names should be written in 'snake_case' not 'camelCase'" for n in dcgm.FIELDS}
    expected.add(f'{dcgm.ENERGY} counter metrics should have "_total" suffix')
    assert set(problems) == expected and r.returncode == 3  # 3: lint findings only


def test_body_lists_the_families_in_the_dcgm_exporters_terms(phoenix_body):
    text = phoenix_body.decode()
    for name, (kind, help_text) in dcgm.FIELDS.items():
        assert f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n" in text
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n" in text and "_total" not in text
    line = next(x for x in text.splitlines() if x.startswith("DCGM_FI_DEV_POWER_USAGE{"))
    assert re.fullmatch(
        r'DCGM_FI_DEV_POWER_USAGE\{gpu="0",UUID="GPU-[0-9a-f-]{36}",pci_bus_id="00000000:01:00.0",device="nvidia0",'
        r'modelName="NVIDIA A100-SXM4-40GB",Hostname="oci-phoenix-r01-01-n00"\} \d+\.\d{6}',
        line,
    )


def test_escapes_and_numbers():
    assert labels({"a": 'x"y\\z\nw', "b": 1}) == '{a="x\\"y\\\\z\\nw",b="1"}'
    assert [number(x) for x in (float("nan"), float("inf"), -float("inf"), 0.1, 3.0)] == [
        "NaN", "+Inf", "-Inf", "0.1", "3.0"]  # fmt: skip
    assert shared_value_block(b"m", [b'{g="0"}', b'{g="1"}'], b"5") == b'm{g="0"} 5\nm{g="1"} 5\n'
    assert shared_value_block(b"m", [], b"5") == b""


def test_endpoint_serves_only_metrics_and_says_why_it_cannot():
    answers = iter([None, b"x 1\n"])

    def render():
        body = next(answers, None)
        if body is None and render.calls > 1:
            raise RuntimeError("renderer broke")
        render.calls += 1
        return body

    render.calls = 0
    server = MetricsServer(render, port=free_port()).start()
    try:

        def get(path):
            try:
                with urllib.request.urlopen(server.url.replace("/metrics", path), timeout=5) as r:
                    return r.status, r.headers["Content-Type"], r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.headers["Content-Type"], e.read()

        assert get("/metrics")[0] == 503  # before the twin's first step
        status, ctype, body = get("/metrics")
        assert (status, ctype, body) == (200, "text/plain; version=0.0.4; charset=utf-8", b"x 1\n")
        assert get("/")[0] == 404 and get("/metrics/../etc")[0] == 404
        status, _, body = get("/metrics")
        assert status == 500 and b"renderer broke" in body  # the scrape fails visibly; the server keeps going
        assert server.url.startswith("http://127.0.0.1:")
    finally:
        server.close()
