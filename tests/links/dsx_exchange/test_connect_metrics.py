"""``connect``'s /metrics: the shadow twin's view of the plant, scraped by a real Prometheus and equal to
``Connector.view()``; promtool finds nothing to lint."""

from __future__ import annotations

import json
import shutil
import subprocess
import zlib

import numpy as np
import pytest
from factory_twin.links.dsx_exchange import metrics
from factory_twin.links.dsx_exchange.connect import Connector
from factory_twin.links.dsx_exchange.points import Catalog
from factory_twin.links.mqtt import BrokerConfig, MqttClient
from factory_twin.links.prometheus.exporter import MetricsServer
from factory_twin.twin import load_facility
from prometheus_server import Prometheus
from support import free_port

T0 = 1_764_500_000_000


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    """A connector fed every BMS point of campus-100mw for a minute (values 30-34 by point)."""
    f = load_facility("campus-100mw")
    cat = Catalog(f, "FactoryTwin")
    c = Connector(f, tmp_path_factory.mktemp("connect"), MqttClient(BrokerConfig.from_url("mqtt://127.0.0.1:1")),
                  requests=False)  # fmt: skip
    for g in cat.groups:
        for t, m in zip(g.metadata_topics, g.metadata, strict=True):
            c._inbox.put((t, json.dumps(m).encode(), 0.0))
    topics = [t for g in cat.groups if not g.signal.integration for t in g.value_topics]
    for ts in range(T0, T0 + 60_000, 20_000):
        for t in topics:
            value = 30.0 + zlib.crc32(t.encode()) % 5  # different per point, the same every run
            c._inbox.put((t, f'{{"value":{value},"timestamp":{ts},"quality":1}}'.encode(), ts / 1000))
    while c.process(max_messages=50_000, timeout_s=0.01):
        pass
    yield c
    c.close()


def test_connect_metrics_lint_clean_and_equal_the_view_through_prometheus(con, tmp_path):
    body = metrics.render(con)
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()[:2000]

    server = MetricsServer(lambda: metrics.render(con), port=free_port()).start()
    prom = Prometheus(tmp_path, [server.url.split("/")[2]])
    try:
        prom.wait_scrape()
        view = con.view()
        sup = {(m["cdu"], m["basis"]): v for m, v in prom.query("factory_twin_cdu_supply_temperature_celsius")}
        assert len(sup) == 2 * 84
        for cid, x in zip(view["cdu"]["id"], view["cdu"]["supply_measured_c"], strict=True):
            assert sup[(cid, "measured")] == x or (np.isnan(x) and np.isnan(sup[(cid, "measured")]))
        assert np.isfinite([sup[(c, "measured")] for c in view["cdu"]["id"]]).any()
        die = prom.query("factory_twin_rack_die_temperature_celsius")
        assert len(die) == 840 and {m["rack"] for m, _ in die} == set(con.cat.rack_ids)
        assert prom.scalar('factory_twin_alarms{source="connect"}') == len(view["status"]["active_alarms"])
        assert prom.scalar("factory_twin_connect_values_received_total") == view["status"]["values"] > 0
        assert prom.scalar("factory_twin_plant_time_seconds") == view["status"]["plant_time_ms"] / 1000
    finally:
        prom.stop()
        server.close()
