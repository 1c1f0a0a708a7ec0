"""The twin connected to the plant: DSX Exchange telemetry in, a shadow twin that estimates and diagnoses,
guarded setpoint requests out.

Messages arrive in paho's network thread and are queued; :meth:`Connector.process` applies them in order:
metadata builds the :class:`PointMap`, values land in per-signal arrays (internal units) and in the
:class:`History`. The plant clock is the BMS's own (value timestamps). Every ``TICK_S`` of plant time, once
every value stamped up to the tick has arrived, the shadow twin steps: data checks (stale, quality,
heartbeat, metadata), the residual checks of :mod:`diagnosis`, the Kalman estimates of each CDU's UA and
each rack's coolant-side resistance (:mod:`estimator`), die temperatures from measured rack power, the
prediction of each CDU's supply temperature and valve from the estimated UA, then setpoint requests and
heartbeats. State (estimates, filters, active alarms, requests) is saved to ``DIR/state.json`` so a
restart resumes; the history is ``DIR/history.duckdb``; alarms ``DIR/alarms.jsonl``; requests
``DIR/requests.jsonl``; a status snapshot ``DIR/status.json``.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time as wall
from collections import deque
from dataclasses import dataclass, field
from json import loads as _loads
from pathlib import Path

import numpy as np
from factory_twin.links.dsx_exchange.contract import (
    GOOD,
    HEARTBEAT_S,
    REPUBLISH_S,
    integration_value_topic,
    metadata_topic,
    parse_value,
    value_topic,
)
from factory_twin.links.dsx_exchange.diagnosis import (
    FOULING_FRACTION,
    PUMP_FLOW_FRACTION,
    AlarmLog,
    Check,
    group_median,
)
from factory_twin.links.dsx_exchange.estimator import ScalarKalman, ua_nominal_from_measurements
from factory_twin.links.dsx_exchange.history import History
from factory_twin.links.dsx_exchange.ingest import SlotTable, latest_per_index, parse_batch
from factory_twin.links.dsx_exchange.pointmap import Mapped, Override, PointMap
from factory_twin.links.dsx_exchange.points import SIGNALS, Catalog
from factory_twin.links.mqtt import MqttClient
from factory_twin.models.heat_exchange import cdu_supply_control
from factory_twin.models.units import KW, M3_S_PER_L_MIN
from factory_twin.twin.facility.assembly import Facility

TICK_S = 10.0  # shadow-twin step [s of plant time]
STALE_S = 2 * REPUBLISH_S  # contract: republished every 100 s; stale past twice that
HEARTBEAT_LOSS_S = 3 * HEARTBEAT_S
METADATA_GRACE_S = REPUBLISH_S + 2 * TICK_S  # metadata is complete one republish period after start
FOULING_PERSIST = 6
STATE_VERSION = 1
LOAD_STEP = 0.1  # requests leave room for the GPUs to draw this share of TDP more than measured
LAG_SAMPLE = 20  # one value in this many has its lag (wall now - value timestamp) recorded
LAG_RECENT_S = 30.0  # the "recent" lag figures cover samples taken this long before the latest [wall s]
BATCH_MIN, BATCH_WAIT_S = 1000, 0.01  # fewer queued than this: wait this long for more before applying


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


@dataclass
class Meas:
    """Latest value of every point of one signal, over the spec's entities."""

    n: int
    value: np.ndarray = field(init=False)
    ts: np.ndarray = field(init=False)
    quality: np.ndarray = field(init=False)
    mapped: np.ndarray = field(init=False)
    since: np.ndarray = field(init=False)
    points: list = field(init=False)

    def __post_init__(self) -> None:
        self.value = np.full(self.n, np.nan)
        self.ts = np.zeros(self.n, np.int64)
        self.quality = np.full(self.n, GOOD)
        self.mapped = np.zeros(self.n, bool)
        self.since = np.zeros(self.n, np.int64)
        self.points = [None] * self.n


class Connector:
    """The shadow twin beside the plant (see the module docstring)."""

    def __init__(
        self,
        facility: Facility,
        state_dir: Path,
        client: MqttClient,
        integration: str = "FactoryTwin",
        override: Override | None = None,
        guard: RequestGuard | None = None,
        requests: bool = True,
    ) -> None:
        self.f = facility
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cat = Catalog(facility, integration)
        self.integration = integration
        self.map = PointMap(self.cat, override)
        self.history = History(self.dir / "history.duckdb")
        self.client = client
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()  # held while messages are applied; readers (the dashboard) take it too
        self.meas = {(s.entity, s.name): Meas(len(self.cat.entity_ids(s.entity))) for s in SIGNALS}
        self._integration_signal = {(s.entity, s.name): s.integration for s in SIGNALS}
        self._meas_list = list(self.meas.values())
        self._meas_code = {k: i for i, k in enumerate(self.meas)}
        self.fast = SlotTable()  # value topics that take the batch path (mapped, with a history id)
        cool = facility.spec.cooling
        sp = float(cool.tcs.supply_setpoint_c)
        self.guard = guard or RequestGuard(sp, sp + 4.0)
        self.requests_enabled = requests
        self.rho_cp_tcs = facility.tcs.rho_kg_m3(sp) * facility.tcs.cp_j_kgk(sp)
        fws = float(cool.facility_water.supply_setpoint_c)
        self.rho_cp_fws = facility.fws.rho_kg_m3(fws) * facility.fws.cp_j_kgk(fws)
        self.v_sec_design = facility.tcs_v_dot_m3_s
        self.v_pri_max = facility.c_fws_max_w_k / self.rho_cp_fws
        self.ua_design = facility.cdu_ua_nom_w_k
        self.ua = ScalarKalman.start(self.ua_design, 0.2, 0.3)
        self.rack_r = ScalarKalman.start(np.full(facility.n_racks, np.nan), 0.0, 0.05)
        nr, nc = facility.n_racks, facility.n_cdus
        self.checks = {
            # sigma: the spread of each residual on a clean plant (sensor noise, resolution, transients of
            # load steps), measured with the emulator over load steps: |z| stays below ~2 there
            "rack_supply": Check("rack_supply", "rack", "supply_c", 0.05, nr),
            "rack_return": Check("rack_return", "rack", "return_c", 0.08, nr),
            "rack_flow": Check("rack_flow", "rack", "flow_lpm", 1.2 * M3_S_PER_L_MIN, nr),
            "rack_power": Check("rack_power", "rack", "power_kw", 1.5 * KW, nr),
            "row_power": Check("row_power", "cdu", "row_power", 1.5 * KW, nc),
            "cdu_supply": Check("cdu_supply", "cdu", "sec_supply_c", 0.04, nc),
            "cdu_return": Check("cdu_return", "cdu", "sec_return_c", 0.15, nc),
            "cdu_flow": Check("cdu_flow", "cdu", "sec_flow_lpm", 12.0 * M3_S_PER_L_MIN, nc),
            "cdu_pri_supply": Check("cdu_pri_supply", "cdu", "pri_supply_c", 0.04, nc),
            "cdu_balance": Check("cdu_balance", "cdu", "pri_balance", 0.01, nc),
            "cdu_valve": Check("cdu_valve", "cdu", "pri_flow_lpm", 15.0 * M3_S_PER_L_MIN, nc),
        }
        self.fouling_over = np.zeros(nc, int)
        self.pump_over = np.zeros(nc, int)
        self.now_ms = 0
        self.first_ms = 0
        self.next_tick_ms = 0
        self.grace_until_ms = 0
        self._regrace = False  # the grace after a reconnect or resume starts with the next clock step
        self.ticks = 0
        self.received = 0
        self.values_received = 0
        self.rejected = 0
        self.tick_s = 0.0  # CPU time in shadow-twin steps
        self.busy_s = 0.0  # CPU time applying messages (ticks included)
        self.main_cpu_s = 0.0  # CPU time of the thread that applies messages since run() (paho's is apart)
        self._cpu0 = wall.thread_time()
        self.unmapped_values: dict[str, int] = {}
        self._pending: dict[str, tuple] = {}  # values that came before their metadata
        self.requests: dict[int, dict] = {}
        self._last_hb_ms = 0
        self.die_c = np.full(nr, np.nan)
        self._p_gpu = np.full(nr, np.nan)
        self.predicted: dict[str, np.ndarray] = {}
        self.started_wall = wall.time()
        self.lag_s: deque[float] = deque(maxlen=100_000)
        self.lag_at: deque[float] = deque(maxlen=100_000)  # wall time each lag sample was taken
        self._last_state_wall = 0.0
        self.resumed = self._load_state()
        self.alarms = AlarmLog(self.dir / "alarms.jsonl", self._saved_alarms)
        self._req_fh = (self.dir / "requests.jsonl").open("a", encoding="utf-8")

    # ------------------------------------------------------------------ MQTT
    def subscribe(self) -> None:
        """Metadata first (retained snapshot at QoS 0, see the contract README), then values."""
        self.client.subscribe("BMS/v1/PUB/Metadata/#", qos=0)
        self.client.subscribe("BMS/v1/PUB/Value/#", qos=0)

    def _on_connect(self) -> None:
        self._inbox.put(("__connect__", b"", wall.time()))

    def _on_message(self, msg) -> None:
        self._inbox.put((msg.topic, msg.payload, wall.time()))

    # ------------------------------------------------------------------ ingest
    def process(self, max_messages: int = 20_000, timeout_s: float = 0.2) -> int:
        """Apply queued messages (waits up to ``timeout_s`` for the first); returns how many."""
        try:
            item = self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            self._housekeeping()
            return 0
        if self._inbox.qsize() < BATCH_MIN:  # a trickle: let a batch gather (per-batch costs, paho's thread)
            wall.sleep(BATCH_WAIT_S)
        t0 = wall.thread_time()
        with self.lock:
            n = self._drain(item, max_messages)
        self.busy_s += wall.thread_time() - t0
        self._housekeeping()
        self.main_cpu_s = wall.thread_time() - self._cpu0
        return n

    def _drain(self, item, max_messages: int) -> int:
        items = [item]
        get = self._inbox.get_nowait
        try:
            while len(items) < max_messages:
                items.append(get())
        except queue.Empty:
            pass
        # in arrival order: runs of values on known points in batches, everything else one by one
        fast, run = self.fast.slot, []
        for it in items:
            if it[0] in fast:
                run.append(it)
                continue
            if run:
                self._apply_values(run)
                run = []
            self._handle(*it)
        if run:
            self._apply_values(run)
        return len(items)

    def _apply_values(self, run: list[tuple[str, bytes, float]]) -> None:
        """A run of value messages on points in :attr:`fast`, with the effect of :meth:`_handle` on each."""
        parsed = parse_batch([it[1] for it in run]) if self.first_ms else None
        if parsed is None:  # a malformed payload among them: the careful path names it
            for it in run:
                self._handle(*it)
            return
        val, ts, quality = parsed
        n = len(run)
        slot = self.fast.slot
        slots = np.fromiter((slot[it[0]] for it in run), np.int64, n)
        recv_ms = (np.fromiter((it[2] for it in run), float, n) * 1000).astype(np.int64)
        grp, idx, scale, offset, pid = (c[slots] for c in self.fast.columns())
        self.received += n
        self.history.add_batch(pid, ts, val, quality, recv_ms)
        val = val * scale + offset
        a = 0
        while a < n:
            # a value stamped past the next tick runs that tick first (with everything before it stored)
            past = np.flatnonzero(ts[a:] > self.next_tick_ms)
            b = a + int(past[0]) if past.size else n
            if b == a:
                self._advance_clock(int(ts[a]))
                continue
            self.now_ms = max(self.now_ms, int(ts[a:b].max()))
            self._store_many(grp[a:b], idx[a:b], ts[a:b], quality[a:b], val[a:b])
            count = self.values_received + np.arange(1, b - a + 1)
            sample = np.flatnonzero(count % LAG_SAMPLE == 0)
            if sample.size:
                now = wall.time()
                self.lag_s.extend((now - ts[a:b][sample] / 1000.0).tolist())
                self.lag_at.extend([now] * sample.size)
            self.values_received += b - a
            a = b

    def _store_many(self, grp, idx, ts, quality, value) -> None:
        keep = latest_per_index(grp.astype(np.int64) << 32 | idx, ts)
        for code in np.unique(grp[keep]):
            k = keep[grp[keep] == code]
            g, i = self._meas_list[code], idx[k]
            newer = ts[k] >= g.ts[i]
            k, i = k[newer], i[newer]
            g.ts[i], g.quality[i], g.value[i] = ts[k], quality[k], value[k]

    def _handle(self, topic: str, payload: bytes, recv_wall: float) -> None:
        if topic == "__connect__":
            if self.now_ms:  # a reconnect: no stale verdicts until the BMS has republished everything
                self._regrace = True
            return
        self.received += 1
        parts = topic.split("/", 4)
        if len(parts) < 5 or parts[2] != "PUB":
            return
        point = parts[4]
        if parts[3] == "Metadata":
            before = self.map.points.get(point)
            m = self.map.on_metadata(point, payload)
            if self.map.points.get(point) is not before:
                self.fast.drop(value_topic(point))
            if m is not None:
                self._mapped(point, m)
            elif not payload:
                self._withdraw(point)
            return
        if parts[3] != "Value":
            return
        try:
            d = _loads(payload)
            value, ts, quality = d["value"], d["timestamp"], d["quality"]
            if type(ts) is not int or type(quality) is not int or not (value is None or type(value) in (float, int)):
                value, ts, quality = parse_value(payload)  # the careful path names what is wrong
        except (ValueError, KeyError, TypeError):
            self.unmapped_values[point] = self.unmapped_values.get(point, 0) + 1
            self.rejected += 1
            return
        self.values_received += 1
        m = self.map.points.get(point)
        pid = self.history.ids.get(point)
        if pid is None:
            pid = self.history.point_id(point, *((m.entity, m.signal, m.unit) if m else (None, None, None)))
        self.history.add(pid, ts, value, quality, int(recv_wall * 1000))
        if ts > self.now_ms:
            self._advance_clock(ts)
        if m is None:
            self._pending[point] = (value, ts, quality)
            if point not in self.map.raw:
                self.unmapped_values[point] = self.unmapped_values.get(point, 0) + 1
            return
        self._store(m, value, ts, quality)
        if self.values_received % LAG_SAMPLE == 0:
            now = wall.time()
            self.lag_s.append(now - ts / 1000.0)  # sample time -> in the shadow twin
            self.lag_at.append(now)

    def _store(self, m: Mapped, value: float | None, ts: int, quality: int) -> None:
        g = self.meas[(m.entity, m.signal)]
        i = m.index
        if ts < g.ts[i]:
            return
        g.ts[i] = ts
        g.quality[i] = quality
        g.value[i] = np.nan if value is None else value * m.scale + m.offset

    def _mapped(self, point: str, m: Mapped) -> None:
        g = self.meas[(m.entity, m.signal)]
        g.mapped[m.index] = True
        g.points[m.index] = point
        if g.since[m.index] == 0:
            g.since[m.index] = self.now_ms
        self.alarms.clear(self.now_ms, "metadata_missing", self._eid(m.entity, m.index), f"{m.entity}/{m.signal}")
        pend = self._pending.pop(point, None)
        if pend is not None:
            self._store(m, *pend)
        # its values take the batch path from the first one on (start-up: 51,861 points at campus-1gw)
        pid = self.history.point_id(point, m.entity, m.signal, m.unit)
        self.fast.add(value_topic(point), self._meas_code[(m.entity, m.signal)], m.index, m.scale, m.offset, pid)

    def _withdraw(self, point: str) -> None:
        m = self.map.withdrawn.get(point)
        if m is not None:
            self.meas[(m.entity, m.signal)].mapped[m.index] = False

    def _eid(self, entity: str, index: int) -> str:
        return self.cat.entity_ids(entity)[index]

    def _advance_clock(self, ts: int) -> None:
        """Run every tick whose values are complete (a value stamped later has arrived)."""
        if not self.first_ms:
            self.first_ms = ts
            self.next_tick_ms = (ts // int(TICK_S * 1000) + 1) * int(TICK_S * 1000)
            for g in self.meas.values():
                g.since[g.mapped & (g.since == 0)] = ts
        if self._regrace:
            # counted from the plant time of the data that came after the gap, not from before it: what the
            # broker queued while connect was away may be lost (clean session), and the plant clock jumps
            self.grace_until_ms = ts + int((REPUBLISH_S + 2 * TICK_S) * 1000)
            self._regrace = False
        self.now_ms = ts
        while self.next_tick_ms < ts:
            self.tick(self.next_tick_ms)
            self.next_tick_ms += int(TICK_S * 1000)

    # ------------------------------------------------------------------ the shadow twin step
    def tick(self, t_ms: int) -> None:
        t0 = wall.thread_time()
        self._tick(t_ms)
        self.tick_s += wall.thread_time() - t0

    def _tick(self, t_ms: int) -> None:
        self.ticks += 1
        self._data_checks(t_ms)
        v = self._views(t_ms)
        flagged = self._residual_checks(t_ms, v)
        self._estimate(t_ms, v, flagged)
        self._process_faults(t_ms, v, flagged)
        self._shadow(v)
        if self.requests_enabled:
            self._requests(t_ms, v)
        self._heartbeats(t_ms)

    def _views(self, t_ms: int) -> dict[tuple[str, str], np.ndarray]:
        """Usable values: good quality, mapped and fresh; NaN elsewhere."""
        out = {}
        for k, g in self.meas.items():
            ok = g.mapped & (g.quality == GOOD) & (t_ms - g.ts <= STALE_S * 1000) & (g.ts > 0)
            out[k] = np.where(ok, g.value, np.nan)
        return out

    def _data_checks(self, t_ms: int) -> None:
        still: set[str] = set()
        in_grace = t_ms < self.grace_until_ms
        for (entity, name), g in self.meas.items():
            if self._integration_signal[(entity, name)] or entity == "bms" or not g.mapped.any():
                continue  # values the integration writes; the BMS's heartbeats are judged as heartbeats
            last = np.where(g.ts > 0, g.ts, g.since)
            stale = g.mapped & (t_ms - last > STALE_S * 1000) & (last > 0)
            bad = g.mapped & (g.ts > 0) & (g.quality != GOOD)
            point_name = f"{entity}/{name}"
            for i in np.flatnonzero(stale):
                eid = self._eid(entity, i)
                k = AlarmLog.key("stale", eid, point_name)
                if in_grace and k not in self.alarms.active:
                    continue
                still.add(k)
                age = (t_ms - last[i]) / 1000
                self.alarms.raise_(t_ms, eid, "stale", {"topic": g.points[i], "age_s": age}, point_name)
            for i in np.flatnonzero(bad):
                eid = self._eid(entity, i)
                still.add(AlarmLog.key("bad_quality", eid, point_name))
                ev = {"topic": g.points[i], "quality": int(g.quality[i]), "value": float(g.value[i])}
                self.alarms.raise_(t_ms, eid, "bad_quality", ev, point_name)
        hb = self.meas[("bms", "heartbeat_ms")]
        if hb.mapped[0] and hb.ts[0] > 0 and t_ms - hb.ts[0] > HEARTBEAT_LOSS_S * 1000 and not in_grace:
            still.add(AlarmLog.key("heartbeat_loss", "BMS", None))
            self.alarms.raise_(t_ms, "BMS", "heartbeat_loss", {"last_heartbeat_ms": int(hb.ts[0])})
        elif hb.mapped[0] and hb.ts[0] > 0 and t_ms - hb.ts[0] <= HEARTBEAT_LOSS_S * 1000:
            pass
        else:
            k = AlarmLog.key("heartbeat_loss", "BMS", None)
            if k in self.alarms.active:
                still.add(k)
        if t_ms - self.first_ms > METADATA_GRACE_S * 1000:
            for eid, name in self.map.missing():
                entity = "rack" if name in ("power_kw", "supply_c", "return_c", "flow_lpm") else "cdu"
                k = AlarmLog.key("metadata_missing", eid, f"{entity}/{name}")
                still.add(k)
                self.alarms.raise_(t_ms, eid, "metadata_missing", {"signal": name}, f"{entity}/{name}")
        self.alarms.clear_missing(t_ms, ("stale", "bad_quality", "heartbeat_loss", "metadata_missing"), still)

    def _residual_checks(self, t_ms: int, v: dict) -> dict[str, np.ndarray]:
        """Feed every check; raise sensor alarms; return the flagged masks by check name."""
        f = self.f
        rc, nc = f.rack_cdu, f.n_cdus
        P, Ts, Tr, V = (
            v[("rack", "power_kw")],
            v[("rack", "supply_c")],
            v[("rack", "return_c")],
            v[("rack", "flow_lpm")],
        )
        Tss, Tsr = v[("cdu", "sec_supply_c")], v[("cdu", "sec_return_c")]
        Tps, Tpr = v[("cdu", "pri_supply_c")], v[("cdu", "pri_return_c")]
        Vs, Vp, valve = v[("cdu", "sec_flow_lpm")], v[("cdu", "pri_flow_lpm")], v[("cdu", "valve_pct")]
        meters = v[("meter", "power_kw")]
        row_meter = meters[self._row_meter_index]
        with np.errstate(invalid="ignore", divide="ignore"):
            med_ts = group_median(Ts, rc, nc)
            norm_rise = (Tr - Ts) * V / P
            med_rise = group_median(norm_rise, rc, nc)
            med_v = group_median(V, rc, nc)
            res = {
                "rack_supply": Ts - med_ts[rc],
                "rack_return": (Tr - Ts) - med_rise[rc] * P / V,
                "rack_flow": V - med_v[rc],
                "rack_power": P - (Tr - Ts) * V / med_rise[rc],
                "row_power": row_meter - _group_sum(P, rc, nc),
                "cdu_supply": Tss - med_ts,
                "cdu_return": Tsr - _group_sum(Tr * V, rc, nc) / _group_sum(V, rc, nc),
                "cdu_flow": Vs - _group_sum(V, rc, nc),
                "cdu_pri_supply": Tps - np.nanmedian(Tps) if np.isfinite(Tps).any() else Tps,
                "cdu_balance": (self.rho_cp_fws * Vp * (Tpr - Tps) - self.rho_cp_tcs * Vs * (Tsr - Tss))
                / f.cdu_design_q_w,
                "cdu_valve": Vp - valve * self.v_pri_max,
            }
        values = {
            "rack_supply": Ts,
            "rack_return": Tr,
            "rack_flow": V,
            "rack_power": P,
            "row_power": row_meter,
            "cdu_supply": Tss,
            "cdu_return": Tsr,
            "cdu_flow": Vs,
            "cdu_pri_supply": Tps,
            "cdu_balance": Tpr,
            "cdu_valve": Vp,
        }
        flagged = {name: ch.update(res[name], values[name]) for name, ch in self.checks.items()}
        self._raise_sensor_alarms(t_ms, flagged, res, v)
        return flagged

    def _raise_sensor_alarms(self, t_ms: int, flagged: dict, res: dict, v: dict) -> None:
        f = self.f
        rc = f.rack_cdu
        still: set[str] = set()
        ck = self.checks

        def sensor(check: str, entity: str, i: int, signal: str, extra: dict | None = None) -> None:
            kind, ev = ck[check].classify(i)
            eid = self._eid(entity, i)
            point = f"{entity}/{signal}"
            for other in ("sensor_bias", "sensor_drift", "sensor_stuck"):
                if AlarmLog.key(other, eid, point) in self.alarms.active:
                    kind = other  # keep the first verdict while it lasts
            still.add(AlarmLog.key(kind, eid, point))
            self.alarms.raise_(t_ms, eid, kind, ev | (extra or {}), point)

        # a loop losing flow moves every related sensor at once: that is the process, not the sensors
        flow_loss = self.pump_over > 0
        for name, ch in ck.items():
            mask = flow_loss[rc] if ch.entity == "rack" else flow_loss
            flagged[name] = flagged[name] & ~mask
        # racks: a power meter fault shows in the row balance and in that rack's return check (same sign)
        row_z = ck["row_power"].zf
        rack_flow_cdus = set(rc[flagged["rack_flow"]].tolist())
        # the rack's power and its coolant rise disagree (rack_return and rack_power are that one relation
        # seen from either side): the row meter says which of the two sensors is wrong
        for i in np.flatnonzero(flagged["rack_return"] | flagged["rack_power"]):
            c = rc[i]
            if abs(row_z[c]) > 2.5 and np.sign(res["rack_power"][i]) == -np.sign(res["row_power"][c]):
                sensor("rack_power", "rack", i, "power_kw", {"row_balance_w": float(res["row_power"][c])})
            else:
                sensor("rack_return", "rack", i, "return_c")
        for i in np.flatnonzero(flagged["rack_supply"]):
            sensor("rack_supply", "rack", i, "supply_c")
        for i in np.flatnonzero(flagged["rack_flow"]):
            sensor("rack_flow", "rack", i, "flow_lpm")
        for c in np.flatnonzero(flagged["cdu_supply"]):
            sensor("cdu_supply", "cdu", c, "sec_supply_c")
        for c in np.flatnonzero(flagged["cdu_return"]):
            sensor("cdu_return", "cdu", c, "sec_return_c")
        for c in np.flatnonzero(flagged["cdu_flow"]):
            if c not in rack_flow_cdus:
                sensor("cdu_flow", "cdu", c, "sec_flow_lpm")
        for c in np.flatnonzero(flagged["cdu_pri_supply"]):
            sensor("cdu_pri_supply", "cdu", c, "pri_supply_c")
        secondary_ok = ~(
            flagged["cdu_supply"] | flagged["cdu_return"] | flagged["cdu_flow"] | flagged["cdu_pri_supply"]
        )
        for c in np.flatnonzero(flagged["cdu_valve"] & secondary_ok):
            sensor("cdu_valve", "cdu", c, "pri_flow_lpm")
        for c in np.flatnonzero(flagged["cdu_balance"] & secondary_ok & ~flagged["cdu_valve"]):
            sensor("cdu_balance", "cdu", c, "pri_return_c")
        # a sensor verdict stands until its check has been quiet for a while (and a stuck value moved)
        for k, rec in self.alarms.active.items():
            if rec["kind"].startswith("sensor_") and k not in still and not self._sensor_recovered(rec):
                still.add(k)
        self.alarms.clear_missing(t_ms, ("sensor_bias", "sensor_drift", "sensor_stuck"), still)

    def _sensor_recovered(self, rec: dict) -> bool:
        ch = self.checks.get(rec["evidence"].get("check", ""))
        if ch is None:
            return True
        i = self.map.index[ch.entity].get(rec["entity"])
        if i is None:
            return True
        if not ch.quiet(i):
            return False
        if rec["kind"] == "sensor_stuck":
            return ch.latest_value(i) != rec["evidence"].get("unchanged_value")
        return True

    @property
    def _row_meter_index(self) -> np.ndarray:
        if not hasattr(self, "_row_idx"):
            meters = list(self.cat.meters)
            self._row_idx = np.array([meters.index(f"M-{c}") for c in self.cat.cdu_ids])
        return self._row_idx

    def _suspect_cdus(self) -> np.ndarray:
        """CDUs with a sensor or data alarm on themselves or their racks (their data is not trusted)."""
        bad = self.alarms.entities_with(("sensor_bias", "sensor_drift", "sensor_stuck", "stale", "bad_quality"))
        out = np.zeros(self.f.n_cdus, bool)
        for eid in bad:
            if eid in self.cat.cdu_index:
                out[self.cat.cdu_index[eid]] = True
            elif eid in self.map.index["rack"]:
                out[self.f.rack_cdu[self.map.index["rack"][eid]]] = True
        return out

    def _estimate(self, t_ms: int, v: dict, flagged: dict) -> None:
        f, cool = self.f, self.f.spec.cooling
        Vs, Vp = v[("cdu", "sec_flow_lpm")], v[("cdu", "pri_flow_lpm")]
        z = ua_nominal_from_measurements(
            v[("cdu", "sec_return_c")],
            v[("cdu", "sec_supply_c")],
            v[("cdu", "pri_supply_c")],
            self.rho_cp_tcs * Vs,
            self.rho_cp_fws * Vp,
            f.c_fws_max_w_k,
            cool.cdu.arrangement,
            cool.cdu.ua_flow_exponent,
        )
        r = self._ua_variance(v, z)
        trusted = ~self._suspect_cdus()
        for name in ("cdu_supply", "cdu_return", "cdu_flow", "cdu_pri_supply", "cdu_balance", "cdu_valve"):
            trusted &= ~flagged[name] & (np.abs(self.checks[name].zf) < 3.0)
        self.ua.update(z, r, TICK_S, trusted)
        P, Ts, Tr = v[("rack", "power_kw")], v[("rack", "supply_c")], v[("rack", "return_c")]
        with np.errstate(invalid="ignore", divide="ignore"):
            zr = (Tr - Ts) / P
            rr = (2 * 0.06**2) / P**2 + ((Tr - Ts) * 200.0 / P**2) ** 2
        self.rack_r.update(zr, rr, TICK_S, ~self._suspect_cdus()[f.rack_cdu] & (P > 1.0))

    def _ua_variance(self, v: dict, z: np.ndarray) -> np.ndarray:
        """Variance of one UA solution, propagated from each input's noise and resolution (finite steps)."""
        f, cool = self.f, self.f.spec.cooling
        keys = ["sec_return_c", "sec_supply_c", "pri_supply_c", "sec_flow_lpm", "pri_flow_lpm"]
        sd = {k: self._sd(("cdu", k)) for k in keys}
        base = {k: v[("cdu", k)] for k in keys}
        var = np.zeros(f.n_cdus)
        for k in keys:
            x = dict(base)
            x[k] = base[k] + sd[k]
            zk = ua_nominal_from_measurements(
                x["sec_return_c"],
                x["sec_supply_c"],
                x["pri_supply_c"],
                self.rho_cp_tcs * x["sec_flow_lpm"],
                self.rho_cp_fws * x["pri_flow_lpm"],
                f.c_fws_max_w_k,
                cool.cdu.arrangement,
                cool.cdu.ua_flow_exponent,
            )
            var += (zk - z) ** 2
        return var

    def _sd(self, key: tuple[str, str]) -> float:
        s = next(s for s in SIGNALS if (s.entity, s.name) == key)
        m = next((m for m in self.map.points.values() if (m.entity, m.signal) == key), None)
        scale = m.scale if m is not None else 1.0
        return math.sqrt(s.noise**2 + s.resolution**2 / 12.0) * scale

    def _process_faults(self, t_ms: int, v: dict, flagged: dict) -> None:
        still: set[str] = set()
        Vs = v[("cdu", "sec_flow_lpm")]
        rack_sum = _group_sum(v[("rack", "flow_lpm")], self.f.rack_cdu, self.f.n_cdus)
        with np.errstate(invalid="ignore"):
            low = (Vs < PUMP_FLOW_FRACTION * self.v_sec_design) & (np.abs(rack_sum - Vs) < 0.1 * self.v_sec_design)
        self.pump_over = np.where(low, self.pump_over + 1, 0)
        pump = self.pump_over >= 3
        for c in np.flatnonzero(pump):
            eid = self.cat.cdu_ids[c]
            still.add(AlarmLog.key("pump_failure", eid, None))
            ev = {
                "sec_flow_lpm": Vs[c] / M3_S_PER_L_MIN,
                "design_lpm": self.v_sec_design[c] / M3_S_PER_L_MIN,
                "rack_flow_sum_lpm": rack_sum[c] / M3_S_PER_L_MIN,
                "pump_pct": 100 * v[("cdu", "pump_pct")][c],
            }
            self.alarms.raise_(t_ms, eid, "pump_failure", ev)
        ratio = self.ua.theta / self.ua_design
        sure = (self.ua_design * FOULING_FRACTION - self.ua.theta) > 3 * self.ua.sd
        foul = (ratio < FOULING_FRACTION) & sure & ~self._suspect_cdus()
        self.fouling_over = np.where(foul, self.fouling_over + 1, 0)
        for c in np.flatnonzero(self.fouling_over >= FOULING_PERSIST):
            eid = self.cat.cdu_ids[c]
            still.add(AlarmLog.key("hx_fouling", eid, None))
            ev = {
                "ua_estimate_w_k": self.ua.theta[c],
                "ua_sd_w_k": self.ua.sd[c],
                "ua_design_w_k": self.ua_design[c],
                "ua_drop": 1 - ratio[c],
                "valve_pct": 100 * v[("cdu", "valve_pct")][c],
            }
            self.alarms.raise_(t_ms, eid, "hx_fouling", ev)
        self.alarms.clear_missing(t_ms, ("pump_failure", "hx_fouling"), still)

    def _shadow(self, v: dict) -> None:
        """Unmeasured states from measured inputs: die temperatures (steady two-node RC from measured rack
        power and coolant), each CDU's supply temperature and valve as the model predicts them with the
        estimated UA."""
        f, cool = self.f, self.f.spec.cooling
        P, Ts, Tr = v[("rack", "power_kw")], v[("rack", "supply_c")], v[("rack", "return_c")]
        eta = np.interp(P / (f.psu_count * f.psu_rating_w), f.spec.grid.psu.load_points, f.spec.grid.psu.efficiencies)
        p_gpu = np.clip((P * eta - f.non_gpu_w) / f.gpus, 0.0, None)
        self._p_gpu = p_gpu
        t_cool = 0.5 * (Ts + Tr)
        self.die_c = t_cool + p_gpu * (f.r_die_plate_k_w + f.r_plate_coolant_k_w)
        Tsr, Tps, sp = v[("cdu", "sec_return_c")], v[("cdu", "pri_supply_c")], v[("cdu", "setpoint_c")]
        Vs = v[("cdu", "sec_flow_lpm")]
        ok = np.isfinite(Tsr) & np.isfinite(Tps) & np.isfinite(sp) & np.isfinite(Vs) & (Vs > 0)
        pred_sup, pred_valve = np.full(f.n_cdus, np.nan), np.full(f.n_cdus, np.nan)
        if ok.any():
            ctl = cdu_supply_control(
                Tsr[ok],
                self.rho_cp_tcs * Vs[ok],
                Tps[ok],
                f.c_fws_max_w_k[ok],
                self.ua.theta[ok],
                sp[ok],
                arrangement=cool.cdu.arrangement,
                exponent=cool.cdu.ua_flow_exponent,
                iterations=30,
            )
            pred_sup[ok], pred_valve[ok] = ctl.t_supply_c, 100 * ctl.flow_fraction
        self.predicted = {
            "cdu_supply_c": pred_sup,
            "cdu_valve_pct": pred_valve,
            "rack_return_c": Ts + self.rack_r.theta * P,
        }

    # ------------------------------------------------------------------ out: requests and heartbeats
    def _healthy_cdus(self, t_ms: int, v: dict) -> np.ndarray:
        f = self.f
        ok = ~self._suspect_cdus()
        for eid in self.alarms.entities_with(("pump_failure", "hx_fouling", "metadata_missing")):
            if eid in self.cat.cdu_index:
                ok[self.cat.cdu_index[eid]] = False
        if any(r["kind"] == "heartbeat_loss" for r in self.alarms.active.values()) or not self.client.connected:
            ok[:] = False
        if t_ms < self.grace_until_ms:
            ok[:] = False
        die_ok = np.isfinite(self.die_c)
        ok &= np.bincount(f.rack_cdu, die_ok, f.n_cdus) == np.bincount(f.rack_cdu, minlength=f.n_cdus)
        return ok

    def _requests(self, t_ms: int, v: dict) -> None:
        f, g = self.f, self.guard
        req_meas = self.meas[("cdu", "sp_request_c")]
        if not req_meas.mapped.any():
            return
        healthy = self._healthy_cdus(t_ms, v)
        # highest supply keeping every rack's die under t_max - margin with the GPUs at their measured power
        # plus a load step of LOAD_STEP of TDP (at most TDP), and the estimated coolant rise at that power
        p_gpu = np.nan_to_num(self._p_gpu, nan=np.inf)
        p_plan = np.minimum(f.tdp_w, p_gpu + LOAD_STEP * f.tdp_w)
        rack_plan_w = f.gpus * p_plan + f.non_gpu_w
        rise = np.where(np.isfinite(self.rack_r.theta), self.rack_r.theta, 0.0) * rack_plan_w * 1.05
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
                    self._log_request(t_ms, c, None, "withheld: health in doubt")
                continue
            prev = self.requests.get(c)
            active = prev is not None and prev.get("active")
            # the request ramps from the BMS's present setpoint toward the target at the rate limit
            base = prev.get("ramp", prev["value"]) if active else (sp[c] if np.isfinite(sp[c]) else g.sp_min_c)
            ramp = float(np.clip(np.clip(target[c], base - step, base + step), g.sp_min_c, g.sp_max_c))
            value = round(ramp, 2)
            due = not active or abs(value - prev["value"]) >= 0.05 or t_ms - prev["sent_ms"] >= g.resend_s * 1000
            if due:
                topic = integration_value_topic(metadata_topic(m_point), self.integration)
                self.client.publish(topic, f'{{"value":{value:.2f},"timestamp":{t_ms},"quality":1}}', qos=1)
                if not active or value != prev["value"]:
                    self.requests[c] = {"value": value, "sent_ms": t_ms, "active": True, "acked_ms": None}
                    self._log_request(t_ms, c, value, "sent")
                else:
                    prev["sent_ms"] = t_ms
            r = self.requests[c]
            r["ramp"] = ramp
            sp_ts = self.meas[("cdu", "setpoint_c")].ts[c]  # the BMS's setpoint, published after the request
            if r["acked_ms"] is None and sp_ts > r["sent_ms"] and abs(sp[c] - r["value"]) <= 0.051:
                r["acked_ms"] = t_ms
                self._log_request(t_ms, c, r["value"], "acknowledged", setpoint=float(sp[c]))

    def _log_request(self, t_ms: int, c: int, value: float | None, state: str, **extra) -> None:
        rec = {"time_ms": int(t_ms), "cdu": self.cat.cdu_ids[c], "value_c": value, "state": state} | extra
        self._req_fh.write(json.dumps(rec) + "\n")
        self._req_fh.flush()

    def _heartbeats(self, t_ms: int) -> None:
        if t_ms - self._last_hb_ms < HEARTBEAT_S * 1000:
            return
        self._last_hb_ms = t_ms
        hb, echo = self.meas[("integration", "heartbeat_ms")], self.meas[("integration", "echo_ms")]
        if hb.mapped[0]:
            topic = integration_value_topic(metadata_topic(hb.points[0]), self.integration)
            self.client.publish(topic, f'{{"value":{t_ms},"timestamp":{t_ms},"quality":1}}')
        bms = self.meas[("bms", "heartbeat_ms")]
        if echo.mapped[0] and bms.ts[0] > 0:
            topic = integration_value_topic(metadata_topic(echo.points[0]), self.integration)
            val = int(bms.value[0]) if np.isfinite(bms.value[0]) else int(bms.ts[0])
            self.client.publish(topic, f'{{"value":{val},"timestamp":{t_ms},"quality":1}}')

    # ------------------------------------------------------------------ state, status
    def _housekeeping(self, force: bool = False) -> None:
        if self.history.pending >= 50_000 or force or wall.time() - getattr(self, "_last_flush", 0) > 1.0:
            self.history.flush()
            self._last_flush = wall.time()
        if force or wall.time() - self._last_state_wall > 2.0:
            self.save_state()
            self._last_state_wall = wall.time()

    def status(self) -> dict:
        p50, p99 = np.percentile(self.lag_s, [50, 99]) if self.lag_s else (math.nan, math.nan)
        at = np.array(self.lag_at)
        recent = np.array(self.lag_s)[at >= at.max() - LAG_RECENT_S] if at.size else at
        r50, r99 = np.percentile(recent, [50, 99]) if recent.size else (math.nan, math.nan)
        return {
            "plant_time_ms": int(self.now_ms),
            "ticks": self.ticks,
            "messages": self.received,
            "values": self.values_received,
            "history_rows": self.history.rows_written + self.history.pending,
            "connected": self.client.connected,
            "outages": [
                {"start": o.start, "end": o.end, "seconds": o.seconds, "reason": o.reason}
                for o in self.client.outages
                if o.reason != "not yet connected"
            ],
            "blind_s": self.client.blind_seconds(),
            "point_map": self.map.report(),
            "unmapped_value_topics": len([p for p in self.unmapped_values if p not in self.map.points]),
            "active_alarms": list(self.alarms.active.values()),
            "ua_estimate_w_k": dict(zip(self.cat.cdu_ids, np.round(self.ua.theta, 1).tolist(), strict=True)),
            "ua_ratio_min": float(np.nanmin(self.ua.theta / self.ua_design)),
            "requests": {self.cat.cdu_ids[c]: r for c, r in self.requests.items()},
            # meaningful when the plant clock is the wall clock (a real site, or emulate-bms --start now)
            "lag_p50_s": float(p50),
            "lag_p99_s": float(p99),
            "lag_recent_p50_s": float(r50),  # the last LAG_RECENT_S of intake: now, without start-up
            "lag_recent_p99_s": float(r99),
            "max_die_c": float(np.nanmax(self.die_c)) if np.isfinite(self.die_c).any() else None,
            "resumed": self.resumed,
            "busy_s": self.busy_s,
            "tick_s": self.tick_s,
            "flush_s": self.history.flush_s,
            "main_cpu_s": self.main_cpu_s,
        }

    def view(self) -> dict:
        """A consistent copy for readers in other threads (the dashboard): status, per-CDU measured and
        predicted values, point health counts."""
        with self.lock:
            st = self.status()
            v = self._views(self.now_ms) if self.now_ms else {}
            health = {"mapped": 0, "stale": 0, "bad_quality": 0}
            for (entity, name), g in self.meas.items():
                if self._integration_signal[(entity, name)]:
                    continue
                health["mapped"] += int(g.mapped.sum())
                last = np.where(g.ts > 0, g.ts, g.since)
                health["stale"] += int((g.mapped & (self.now_ms - last > STALE_S * 1000) & (last > 0)).sum())
                health["bad_quality"] += int((g.mapped & (g.ts > 0) & (g.quality != GOOD)).sum())
            health["unmapped"] = st["point_map"]["unmapped_count"] + st["unmapped_value_topics"]
            cdu = {
                "id": list(self.cat.cdu_ids),
                "supply_measured_c": v.get(("cdu", "sec_supply_c"), np.full(self.f.n_cdus, np.nan)).tolist(),
                "supply_predicted_c": self.predicted.get("cdu_supply_c", np.full(self.f.n_cdus, np.nan)).tolist(),
                "valve_measured_pct": (100 * v.get(("cdu", "valve_pct"), np.full(self.f.n_cdus, np.nan))).tolist(),
                "valve_predicted_pct": self.predicted.get("cdu_valve_pct", np.full(self.f.n_cdus, np.nan)).tolist(),
                "ua_ratio": (self.ua.theta / self.ua_design).tolist(),
            }
            rack = {
                "return_measured_c": v.get(("rack", "return_c"), np.full(self.f.n_racks, np.nan)).tolist(),
                "return_predicted_c": self.predicted.get("rack_return_c", np.full(self.f.n_racks, np.nan)).tolist(),
                "die_c": self.die_c.tolist(),
            }
        return {"status": st, "health": health, "cdu": cdu, "rack": rack}

    def save_state(self) -> None:
        state = {
            "version": STATE_VERSION,
            "facility": self.f.spec.name,
            "now_ms": int(self.now_ms),
            "first_ms": int(self.first_ms),
            "next_tick_ms": int(self.next_tick_ms),
            "ua": self.ua.state(),
            "rack_r": self.rack_r.state(),
            "checks": {k: c.state() for k, c in self.checks.items()},
            "alarms_active": self.alarms.active if hasattr(self, "alarms") else {},
            "requests": {str(c): r for c, r in self.requests.items()},
        }
        _atomic_write(self.dir / "state.json", json.dumps(state))
        _atomic_write(self.dir / "status.json", json.dumps(self.status(), default=float))

    def _load_state(self) -> bool:
        self._saved_alarms: dict = {}
        path = self.dir / "state.json"
        if not path.is_file():
            return False
        s = json.loads(path.read_text(encoding="utf-8"))
        if s.get("facility") != self.f.spec.name:
            raise ValueError(
                f"--state-dir {self.dir}: holds the state of {s.get('facility')!r}, not {self.f.spec.name!r}"
            )
        self.now_ms, self.first_ms, self.next_tick_ms = s["now_ms"], s["first_ms"], s["next_tick_ms"]
        self.ua.restore(s["ua"])
        self.rack_r.restore(s["rack_r"])
        for k, c in self.checks.items():
            c.restore(s["checks"].get(k, {}))
        self._saved_alarms = s.get("alarms_active", {})
        self.requests = {int(c): r for c, r in s.get("requests", {}).items()}
        # the latest value of every point, applied when its metadata maps it again
        for point, ts, value, quality in self.history.latest().itertuples(index=False):
            self._pending[point] = (None if value != value else float(value), int(ts), int(quality))
        self._regrace = bool(self.now_ms)  # a resume: the same grace as after a reconnect
        return True

    def close(self) -> None:
        self._housekeeping(force=True)
        self.history.close()
        self.alarms.close()
        self._req_fh.close()

    def run(self, should_stop=lambda: False) -> dict:
        """Process messages until ``should_stop()``; returns the final status."""
        self._cpu0 = wall.thread_time()
        self.subscribe()
        while not should_stop():
            self.process()
        while self.process(timeout_s=0.05):
            pass
        st = self.status()
        self.close()
        return st


def _group_sum(x: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """Sum per group; NaN if any member is NaN (a balance with a missing term says nothing)."""
    s = np.bincount(groups, np.nan_to_num(x), n)
    bad = np.bincount(groups, ~np.isfinite(x), n) > 0
    return np.where(bad, np.nan, s)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["Connector", "RequestGuard"]
