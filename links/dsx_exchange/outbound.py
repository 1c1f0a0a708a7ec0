"""What the twin publishes: guarded supply-temperature requests per CDU and the integration heartbeats.

A CDU's request is the highest supply that keeps every die of its racks ``die_margin_k`` under the throttle
limit with the GPUs at their measured power plus a load step of ``LOAD_STEP`` of TDP (at most TDP) and the
estimated coolant rise at that power, inside the twin's own bounds and ramped from the BMS's setpoint at
the rate limit. None goes out while the CDU's health is in doubt (a sensor, data or process alarm on it or
its racks, a lost BMS heartbeat, the broker down, the grace after a gap). Every request, withholding and
acknowledgement is a line of ``DIR/requests.jsonl``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from factory_twin.links.dsx_exchange.clock import TICK_S, PlantClock
from factory_twin.links.dsx_exchange.contract import HEARTBEAT_S, integration_value_topic, metadata_topic
from factory_twin.links.dsx_exchange.diagnosis import AlarmLog
from factory_twin.links.dsx_exchange.estimates import Estimates
from factory_twin.links.dsx_exchange.points import Catalog
from factory_twin.links.dsx_exchange.readings import Readings
from factory_twin.links.dsx_exchange.shadow import Shadow
from factory_twin.links.mqtt import MqttClient
from factory_twin.twin.facility.assembly import Facility

LOAD_STEP = 0.1  # requests leave room for the GPUs to draw this share of TDP more than measured
UNHEALTHY_KINDS = ("pump_failure", "hx_fouling", "metadata_missing")  # besides the suspect CDUs'


@dataclass
class RequestGuard:
    """The twin's own limits on supply-temperature requests (inside the BMS's) [degC, K/min, K]."""

    sp_min_c: float
    sp_max_c: float
    rate_k_min: float = 0.25
    die_margin_k: float = 3.0
    resend_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.sp_min_c < self.sp_max_c:
            raise ValueError(f"--request-min {self.sp_min_c:g} must be below --request-max {self.sp_max_c:g} degC")
        if self.rate_k_min <= 0 or self.die_margin_k < 0:
            raise ValueError("--request-rate must be > 0 K/min and --die-margin >= 0 K")


class Outbound:
    """Requests per CDU (``{cdu index: {value, sent_ms, active, acked_ms, ramp, state, state_ms}}``: ``state`` the
    latest line of ``requests.jsonl`` for it, "sent", "acknowledged" or "withheld: ..."), heartbeats."""

    def __init__(
        self,
        f: Facility,
        catalog: Catalog,
        client: MqttClient,
        readings: Readings,
        alarms: AlarmLog,
        guard: RequestGuard,
        log_path: Path,
    ) -> None:
        self.f, self.cat, self.client, self.guard = f, catalog, client, guard
        self.readings, self.alarms = readings, alarms
        self.requests: dict[int, dict] = {}
        self.last_hb_ms = 0
        self._log = log_path.open("a", encoding="utf-8")

    def healthy_cdus(self, t_ms: int, clock: PlantClock, suspect: np.ndarray, shadow: Shadow) -> np.ndarray:
        f = self.f
        ok = ~suspect
        for eid in self.alarms.entities_with(UNHEALTHY_KINDS):
            if eid in self.cat.cdu_index:
                ok[self.cat.cdu_index[eid]] = False
        if any(r["kind"] == "heartbeat_loss" for r in self.alarms.active.values()) or not self.client.connected:
            ok[:] = False
        if clock.in_grace(t_ms):
            ok[:] = False
        die_ok = np.isfinite(shadow.die_c)
        ok &= np.bincount(f.rack_cdu, die_ok, f.n_cdus) == np.bincount(f.rack_cdu, minlength=f.n_cdus)
        return ok

    def send_requests(
        self, t_ms: int, v: dict, clock: PlantClock, suspect: np.ndarray, shadow: Shadow, est: Estimates
    ) -> None:
        f, g = self.f, self.guard
        req_meas = self.readings[("cdu", "sp_request_c")]
        if not req_meas.mapped.any():
            return
        healthy = self.healthy_cdus(t_ms, clock, suspect, shadow)
        # highest supply keeping every rack's die under t_max - margin with the GPUs at their measured power
        # plus a load step of LOAD_STEP of TDP (at most TDP), and the estimated coolant rise at that power
        p_gpu = np.nan_to_num(shadow.p_gpu, nan=np.inf)
        p_plan = np.minimum(f.tdp_w, p_gpu + LOAD_STEP * f.tdp_w)
        rack_plan_w = f.gpus * p_plan + f.non_gpu_w
        r = est.rack_r.theta
        rise = np.where(np.isfinite(r), r, 0.0) * rack_plan_w * 1.05
        t_allow = f.t_max_c - g.die_margin_k - p_plan * (f.r_die_plate_k_w + f.r_plate_coolant_k_w) - 0.5 * rise
        t_max_cdu = np.full(f.n_cdus, np.inf)
        np.minimum.at(t_max_cdu, f.rack_cdu, t_allow)
        target = np.clip(t_max_cdu, g.sp_min_c, g.sp_max_c)
        sp = v[("cdu", "setpoint_c")]
        step = g.rate_k_min * TICK_S / 60.0
        for c in range(f.n_cdus):
            m_point = req_meas.points[c]
            if m_point is None or not healthy[c]:
                if c in self.requests and self.requests[c].get("active"):
                    self.requests[c]["active"] = False
                    self._write(t_ms, c, None, "withheld: health in doubt")
                continue
            prev = self.requests.get(c)
            active = prev is not None and prev.get("active")
            # the request ramps from the BMS's present setpoint toward the target at the rate limit
            base = prev.get("ramp", prev["value"]) if active else (sp[c] if np.isfinite(sp[c]) else g.sp_min_c)
            ramp = float(np.clip(np.clip(target[c], base - step, base + step), g.sp_min_c, g.sp_max_c))
            value = round(ramp, 2)
            due = not active or abs(value - prev["value"]) >= 0.05 or t_ms - prev["sent_ms"] >= g.resend_s * 1000
            if due:
                topic = integration_value_topic(metadata_topic(m_point), self.cat.integration)
                self.client.publish(topic, f'{{"value":{value:.2f},"timestamp":{t_ms},"quality":1}}', qos=1)
                if not active or value != prev["value"]:
                    self.requests[c] = {"value": value, "sent_ms": t_ms, "active": True, "acked_ms": None}
                    self._write(t_ms, c, value, "sent")
                else:
                    prev["sent_ms"] = t_ms
            r = self.requests[c]
            r["ramp"] = ramp
            sp_ts = self.readings[("cdu", "setpoint_c")].ts[c]  # the BMS's setpoint, published after the request
            if r["acked_ms"] is None and sp_ts > r["sent_ms"] and abs(sp[c] - r["value"]) <= 0.051:
                r["acked_ms"] = t_ms
                self._write(t_ms, c, r["value"], "acknowledged", setpoint=float(sp[c]))

    def _write(self, t_ms: int, c: int, value: float | None, state: str, **extra) -> None:
        """A line of ``requests.jsonl``; the request in force keeps the same ``state`` and its time (what
        status.json and the plant page show)."""
        if c in self.requests:
            self.requests[c] |= {"state": state, "state_ms": int(t_ms)}
        rec = {"time_ms": int(t_ms), "cdu": self.cat.cdu_ids[c], "value_c": value, "state": state} | extra
        self._log.write(json.dumps(rec) + "\n")
        self._log.flush()

    def heartbeats(self, t_ms: int) -> None:
        """The integration heartbeat (the plant clock) and the echo of the BMS's, every ``HEARTBEAT_S``."""
        if t_ms - self.last_hb_ms < HEARTBEAT_S * 1000:
            return
        self.last_hb_ms = t_ms
        hb, echo = self.readings[("integration", "heartbeat_ms")], self.readings[("integration", "echo_ms")]
        if hb.mapped[0]:
            topic = integration_value_topic(metadata_topic(hb.points[0]), self.cat.integration)
            self.client.publish(topic, f'{{"value":{t_ms},"timestamp":{t_ms},"quality":1}}')
        bms = self.readings[("bms", "heartbeat_ms")]
        if echo.mapped[0] and bms.ts[0] > 0:
            topic = integration_value_topic(metadata_topic(echo.points[0]), self.cat.integration)
            val = int(bms.value[0]) if np.isfinite(bms.value[0]) else int(bms.ts[0])
            self.client.publish(topic, f'{{"value":{val},"timestamp":{t_ms},"quality":1}}')

    def rebase(self, d_ms: int) -> None:
        """The plant clock jumped back by ``-d_ms``: the times of heartbeats and requests move with it."""
        self.last_hb_ms += d_ms
        for r in self.requests.values():
            r["sent_ms"] += d_ms
            if r.get("acked_ms") is not None:
                r["acked_ms"] += d_ms

    def state(self) -> dict:
        return {str(c): r for c, r in self.requests.items()}

    def restore(self, s: dict) -> None:
        self.requests = {int(c): r for c, r in s.items()}

    def close(self) -> None:
        self._log.close()


__all__ = ["LOAD_STEP", "Outbound", "RequestGuard"]
