"""``/metrics`` of ``factory-twin connect``: the shadow twin beside a plant, as Prometheus reads it.

From :meth:`Connector.view` (a consistent copy taken under the connector's lock), in the names and units of
:mod:`links.prometheus.facility`, per CDU and rack (labels ``hall``, ``cdu`` or ``rack`` as the BMS names them) with
``basis="measured"`` (the BMS's value) or ``"predicted"`` (the shadow twin's):
``factory_twin_cdu_supply_temperature_celsius``, ``factory_twin_cdu_valve_ratio``,
``factory_twin_rack_return_temperature_celsius``; the shadow's estimates ``factory_twin_cdu_ua_ratio`` (estimated UA
over design) and ``factory_twin_rack_die_temperature_celsius`` (from measured rack power); active alarms
(``factory_twin_alarms{source="connect"}``), the plant clock, the broker link and the intake's lag. NaN where the
plant has not sent a value. The GPU series of the DCGM exporter come from the site's own exporters, not from here.
"""

from __future__ import annotations

import numpy as np
from factory_twin.links.prometheus.exposition import family, labels, number
from factory_twin.links.prometheus.facility import PREFIX, Labelled


def render(con) -> bytes:
    """The exposition text of the connector's present view."""
    v = con.view()
    st, cdu, rack, f = v["status"], v["cdu"], v["rack"], con.f
    cdus = [{"hall": f.hall_names[h], "cdu": c} for h, c in zip(f.cdu_hall.tolist(), cdu["id"], strict=True)]
    racks = [{"hall": f.hall_names[h], "rack": r} for h, r in zip(f.rack_hall.tolist(), con.cat.rack_ids, strict=True)]
    fams = [
        _both("cdu_supply_temperature_celsius", "TCS supply temperature leaving the CDU", cdus,
              cdu["supply_measured_c"], cdu["supply_predicted_c"]),
        _both("cdu_valve_ratio", "CDU facility-water valve opening", cdus,
              np.asarray(cdu["valve_measured_pct"], float) / 100, np.asarray(cdu["valve_predicted_pct"], float) / 100),
        Labelled("cdu_ua_ratio", "estimated CDU heat-exchanger UA over its design UA", cdus, cdu["ua_ratio"]),
        _both("rack_return_temperature_celsius", "TCS return temperature of the rack", racks,
              rack["return_measured_c"], rack["return_predicted_c"]),
        Labelled("rack_die_temperature_celsius", "GPU die temperature estimated from measured rack power", racks,
                 rack["die_c"]),
    ]  # fmt: skip
    src = labels({"source": "connect"})
    lag = [
        (labels({"percentile": q}), number(st[k])) for q, k in (("50", "lag_recent_p50_s"), ("99", "lag_recent_p99_s"))
    ]
    scalars = [  # name, type, help, rows
        ("info", "gauge", "the shadow twin", [(labels({"facility": f.spec.name, "source": "connect"}), "1")]),
        ("plant_time_seconds", "gauge", "the plant's clock [s since 1970]", [("", number(st["plant_time_ms"] / 1000))]),
        ("alarms", "gauge", "active alarms, by source", [(src, number(len(st["active_alarms"])))]),
        ("connect_broker_connected", "gauge", "1 while connected to the broker", [("", number(st["connected"]))]),
        ("connect_values_received_total", "counter", "values received from the BMS", [("", number(st["values"]))]),
        ("connect_lag_seconds", "gauge", "time stamp to arrival of the BMS's values (recent)", lag),
    ]  # fmt: skip
    parts = [family(PREFIX + n, k, h, rows) for n, k, h, rows in scalars] + [x.render() for x in fams]
    return "".join(parts).encode()


def _both(name: str, text: str, sets: list[dict], measured, predicted) -> Labelled:
    """One family with the BMS's value (``basis="measured"``) and the shadow twin's (``"predicted"``)."""
    rows = [s | {"basis": "measured"} for s in sets] + [s | {"basis": "predicted"} for s in sets]
    values = np.concatenate([np.asarray(measured, float), np.asarray(predicted, float)])
    return Labelled(name, f"{text} (BMS: measured, shadow twin: predicted)", rows, values)


__all__ = ["render"]
