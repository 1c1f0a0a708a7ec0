"""A BMS to connect to: the twin runs as the plant and publishes itself on DSX Exchange as a BMS would.

Each plant step (``plant_step_s`` of simulated time) the twin advances; every point's true value is read
from the twin's arrays, sensor faults and noise are applied, the reading is quantized to the point's
resolution and published when it changed or :data:`REPUBLISH_S` after its last publication (in real-time
runs spread over the step, each value stamped when it leaves). Metadata goes out first (retained) and again
every 100 s; the BMS heartbeat every 10 s.

The emulated BMS honours the integration's CDU supply-temperature requests inside its own guardrails: a
request counts only while it is fresh (``request_timeout_s``) and the integration's heartbeat is alive;
it is clamped to ``[sp_min_c, sp_max_c]`` and the active setpoint moves toward it at most ``sp_rate_k_min``
per minute; otherwise the setpoint returns to the design value. The facility-water supply setpoint follows
the lowest active CDU setpoint less the CDU design approach (a supply-temperature reset sequence), never
below its design value, so warmer CDU supplies let the heat-rejection plant run warmer.
"""

from __future__ import annotations

import json
import math
import queue
import time as wall
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from factory_twin.links.dsx_exchange.contract import BAD, GOOD, HEARTBEAT_S, REPUBLISH_S, parse_topic, parse_value
from factory_twin.links.dsx_exchange.faults import CLOCK_KINDS, Fault
from factory_twin.links.dsx_exchange.points import Catalog, Group
from factory_twin.links.mqtt import MqttClient
from factory_twin.models.heat_exchange import ConstantFlowCdus, cdu_supply_control
from factory_twin.models.units import J_PER_MWH, KW, M3_S_PER_L_MIN
from factory_twin.twin.facility.assembly import Facility
from factory_twin.twin.scenario.scenario import Scenario
from factory_twin.twin.simulation.engine import Twin

FWS_RESET_K_MIN = 0.1  # facility-water reset rate [K/min]
VALVE_ROOM, VALVE_FULL = 0.90, 0.97  # CDU valve positions: room to warm up / too close to wide open
PUMP_SPEED_PCT = 80.0  # lead pump speed at design flow (variable-speed pumps run below full speed)
SLICE_S = 0.05  # paced runs publish a step's readings in slices this far apart [wall s], short against 1 s lag


@dataclass
class Guardrails:
    """The BMS's own limits on integration supply-temperature requests [degC, K/min, s]."""

    sp_min_c: float
    sp_max_c: float
    sp_rate_k_min: float = 0.5
    request_timeout_s: float = 300.0
    heartbeat_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.sp_min_c < self.sp_max_c:
            raise ValueError(f"--sp-min {self.sp_min_c:g} must be below --sp-max {self.sp_max_c:g} degC")
        if self.sp_rate_k_min <= 0:
            raise ValueError(f"--sp-rate must be > 0 K/min, got {self.sp_rate_k_min:g}")


@dataclass
class _Batch:
    """Readings of one signal group due for publication: value topics, values, decimals, qualities (None:
    all good), and how much later than the plant time their controller's clock stamps them [ms]."""

    topics: list[str]
    values: list[float]
    decimals: int
    quality: list[int] | None
    skew_ms: int = 0

    def split(self, at: int) -> tuple[_Batch, _Batch]:
        q = self.quality
        head = _Batch(self.topics[:at], self.values[:at], self.decimals, None if q is None else q[:at], self.skew_ms)
        tail = _Batch(self.topics[at:], self.values[at:], self.decimals, None if q is None else q[at:], self.skew_ms)
        return head, tail


@dataclass
class _Published:
    value: np.ndarray
    time_s: np.ndarray
    decimals: int
    meta_withdrawn: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


class BmsEmulator:
    """The plant: a :class:`Twin` with its own copy of the facility (faults change its UA and flows)."""

    def __init__(
        self,
        facility: Facility,
        scenario: Scenario,
        client: MqttClient,
        integration: str = "FactoryTwin",
        faults: tuple[Fault, ...] = (),
        guardrails: Guardrails | None = None,
        plant_step_s: float = 10.0,
        seed: int = 0,
        start: str | None = None,
        every_step: bool = False,
    ) -> None:
        self.cat = Catalog(facility, integration)
        self.f = replace(facility, cdu_ua_nom_w_k=facility.cdu_ua_nom_w_k.copy())
        self.twin = Twin(self.f, scenario, start, plant_step_s=plant_step_s, step_s=min(1.0, plant_step_s))
        self.every_step = every_step  # publish every point at every sample (a load test), not only on change
        self.client = client
        self.integration = integration
        cool = facility.spec.cooling
        self.sp_design = float(cool.tcs.supply_setpoint_c)
        self.fws_design = float(cool.facility_water.supply_setpoint_c)
        self.approach = float(cool.cdu.design_approach_k)
        self.guard = guardrails or Guardrails(self.sp_design - 3.0, self.sp_design + 5.0)
        self.rng = np.random.default_rng(seed)
        self.faults = list(faults)
        self._check_faults()
        self.requests = np.full(facility.n_cdus, np.nan)  # latest valid request per CDU [degC]
        self.request_t = np.full(facility.n_cdus, -np.inf)  # plant time of that request [s]
        self.requests_received = 0
        self.requests_rejected = 0
        self.integration_hb_t = -np.inf
        self.integration_hb_value: float | None = None
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        sp_req = self.cat.group("cdu", "sp_request_c")
        self._request_index = {t.split("/", 4)[4]: i for i, t in enumerate(sp_req.metadata_topics)}
        self.t0 = self.twin.time
        self.elapsed_s = 0.0
        self.base_c_rack = self.twin.c_rack_w_k.copy()
        self.base_c_tcs = self.twin.c_tcs.copy()
        self.ua_design = facility.cdu_ua_nom_w_k.copy()
        self.sp = np.full(facility.n_cdus, self.sp_design)  # the CDUs' active supply setpoints [degC]
        self.flow_factor = np.ones(facility.n_cdus)
        self.pump_failed = np.zeros(facility.n_cdus, bool)
        self._valve: np.ndarray | None = None
        self._pub = {
            id(g): _Published(
                np.full(len(g.ids), np.nan),
                np.full(len(g.ids), -np.inf),
                _decimals(g.signal.resolution),
                np.zeros(len(g.ids), bool),
            )
            for g in self.cat.groups
        }
        self._frozen: dict[tuple[int, int], float] = {}
        self._meta_bytes = {
            id(g): [json.dumps(m, separators=(",", ":")).encode() for m in g.metadata] for g in self.cat.groups
        }
        self.messages = 0
        self.value_messages = 0
        self.summary: dict = {"hr_power_kw": [], "max_die_margin_k": math.inf, "setpoints_c": []}
        self._last_meta_s = -np.inf
        self._last_hb_s = -np.inf
        self._nometa_applied = 0
        self.timing_s = {"twin": 0.0, "sensors": 0.0, "publish": 0.0}  # CPU time of the stepping thread
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.subscribe(f"BMS/v1/{integration}/Value/#", qos=1)

    # ------------------------------------------------------------------ faults
    def _check_faults(self) -> None:
        names = {(g.signal.entity, g.signal.name) for g in self.cat.groups}
        for flt in self.faults:
            if flt.kind in CLOCK_KINDS and flt.signal is None:
                continue
            if flt.signal is None:
                if flt.entity not in self.cat.cdu_index:
                    raise ValueError(f"--fault {flt}: {flt.entity!r} is not a CDU of {self.cat.facility.spec.name}")
                continue
            g = self._find(flt.entity, flt.signal)
            if g is None:
                raise ValueError(f"--fault {flt}: no point {flt.point!r} (signals: {sorted(n for _, n in names)})")

    def _find(self, entity: str, signal: str) -> tuple[Group, int] | None:
        for g in self.cat.groups:
            if g.signal.name == signal and not g.signal.integration:
                try:
                    return g, g.ids.index(entity)
                except ValueError:
                    continue
        return None

    def _active(self, kinds: tuple[str, ...]) -> list[Fault]:
        return [f for f in self.faults if f.kind in kinds and self.elapsed_s >= f.start_s]

    def _stamp(self, ts_ms: int) -> int:
        """A timestamp as the BMS's clock sends it (the clock and epoch faults of the whole site)."""
        for flt in self._active(("clock", "epoch")):
            if flt.entity == "BMS" and flt.kind == "clock":
                ts_ms += int(flt.value * 1000)
        for flt in self._active(("epoch",)):
            ts_ms = int(ts_ms * flt.value)
        return ts_ms

    def _apply_process_faults(self) -> None:
        ua = self.ua_design.copy()
        flow = np.ones(self.f.n_cdus)
        failed = np.zeros(self.f.n_cdus, bool)
        for flt in self._active(("fouling", "pump")):
            c = self.cat.cdu_index[flt.entity]
            if flt.kind == "fouling":
                ua[c] *= 1.0 - flt.value
            else:
                flow[c], failed[c] = flt.value, True
        self.f.cdu_ua_nom_w_k[:] = ua
        self.flow_factor, self.pump_failed = flow, failed
        self.twin.c_rack_w_k[:] = self.base_c_rack * flow[self.f.rack_cdu]
        self.twin.c_tcs[:] = self.base_c_tcs * flow

    # ------------------------------------------------------------------ integration inbox
    def _on_connect(self) -> None:
        self._last_meta_s = -np.inf  # after a broker restart the retained metadata is gone: publish it again

    def _on_message(self, msg) -> None:
        self._inbox.put((msg.topic, msg.payload))

    def _read_inbox(self, now_s: float) -> None:
        while True:
            try:
                topic, payload = self._inbox.get_nowait()
            except queue.Empty:
                return
            t = parse_topic(topic)
            if t is None or t.publisher != self.integration or t.kind != "Value":
                continue
            try:
                value, _ts, quality = parse_value(payload)
            except ValueError:
                self.requests_rejected += 1
                continue
            if t.point_type == "HeartbeatTimestampIntegration":
                self.integration_hb_t, self.integration_hb_value = now_s, value
            elif t.point_type == "LiquidTemperatureSpRequest":
                c = self._request_index.get(t.point)
                self.requests_received += 1
                if c is None or value is None or quality != GOOD or not math.isfinite(value):
                    self.requests_rejected += 1
                    continue
                self.requests[c], self.request_t[c] = value, now_s

    def _update_setpoints(self, now_s: float) -> None:
        g = self.guard
        alive = now_s - self.integration_hb_t <= g.heartbeat_timeout_s
        fresh = alive & (now_s - self.request_t <= g.request_timeout_s) & np.isfinite(self.requests)
        target = np.where(fresh, np.clip(self.requests, g.sp_min_c, g.sp_max_c), self.sp_design)
        step = g.sp_rate_k_min * self.twin.plant_dt / 60.0
        sp = self.sp
        sp[:] = sp + np.clip(target - sp, -step, step)
        # facility-water supply reset, trim and respond on the CDU valves (ASHRAE Guideline 36 style): warmer
        # while every CDU valve has room, colder as soon as one is nearly wide open; never above the lowest
        # CDU setpoint less 1 K, never below design
        valve = self._valve if self._valve is not None else np.ones(1)
        fws = self.twin.fws_setpoint_c
        rate = FWS_RESET_K_MIN * self.twin.plant_dt / 60.0
        if valve.max() < VALVE_ROOM:
            fws += rate
        elif valve.max() > VALVE_FULL:
            fws -= 2 * rate
        self.twin.fws_setpoint_c = float(np.clip(fws, self.fws_design, max(self.fws_design, sp.min() - 1.0)))
        # the engine's CDUs with today's UA (fouling), TCS flows (pump failure) and setpoints
        tw = self.twin
        arrangement = self.f.spec.cooling.cdu.arrangement
        tw.cdus = ConstantFlowCdus(tw.c_tcs, tw.c_fws, self.f.cdu_ua_nom_w_k, sp.copy(), arrangement)

    # ------------------------------------------------------------------ true values
    def _truth(self, fws_sup0: float, tcs_sup0: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
        """Every signal's true value in its engineering unit, as arrays over the group's entities."""
        tw, f, last = self.twin, self.f, self.twin.last
        cool = f.spec.cooling
        rack_dc = f.gpus * tw.gpu_power_w + f.non_gpu_w
        rack_in = tw.plant.psu_input_w(rack_dc, tw.psu_rating_w, f.psu_curve)
        ctl = cdu_supply_control(
            tw.tcs_return_c,
            tw.c_tcs,
            fws_sup0,
            tw.c_fws,
            f.cdu_ua_nom_w_k,
            self.sp,
            arrangement=cool.cdu.arrangement,
            exponent=cool.cdu.ua_flow_exponent,
            iterations=40,
        )
        self._valve = ctl.flow_fraction
        rho_cp_fws = f.fws.rho_kg_m3(self.fws_design) * f.fws.cp_j_kgk(self.fws_design)
        rho_tcs = f.tcs.rho_kg_m3(self.sp_design)
        l_min = 1.0 / M3_S_PER_L_MIN
        rack_flow = f.rack_m_dot_kg_s / rho_tcs * self.flow_factor[f.rack_cdu] * l_min
        hall_in = np.bincount(f.rack_hall, rack_in, len(f.hall_names))
        row_in = np.bincount(f.rack_cdu, rack_in, f.n_cdus)
        meters = {"M-UTIL": last.grid_w - last.bess_w, "M-MECH": last.cooling_w, "M-HR": tw.rejection.power_w}
        meters |= {f"M-{h}": hall_in[i] for i, h in enumerate(f.hall_names)}
        meters |= {f"M-{c}": row_in[i] for i, c in enumerate(self.cat.cdu_ids)}
        if self.cat.has_bess:
            meters["M-BESS"] = last.bess_w
        dry = cool.plant.dry_cooler
        fan_full_w = dry.fan_power_kw_per_mw * dry.capacity_mw * KW
        t = {
            ("rack", "power_kw"): rack_in / KW,
            ("rack", "supply_c"): tw.tcs_supply_c[f.rack_cdu],  # the CDU's supply, now
            ("rack", "return_c"): tcs_sup0[f.rack_cdu] + tw.rise_k,  # what the rack heated during the step
            ("rack", "flow_lpm"): rack_flow,
            ("rack", "leak"): np.zeros(f.n_racks),
            ("rack", "isolation"): np.zeros(f.n_racks),
            ("cdu", "sec_supply_c"): tw.tcs_supply_c,
            ("cdu", "sec_return_c"): tw.tcs_return_c,
            ("cdu", "pri_supply_c"): np.full(f.n_cdus, fws_sup0),
            ("cdu", "pri_return_c"): ctl.t_fws_return_c,
            ("cdu", "sec_flow_lpm"): f.tcs_v_dot_m3_s * self.flow_factor * l_min,
            ("cdu", "pri_flow_lpm"): ctl.c_fws_w_k / rho_cp_fws * l_min,
            ("cdu", "pump_pct"): np.where(self.pump_failed, 0.0, PUMP_SPEED_PCT),
            ("cdu", "valve_pct"): 100.0 * ctl.flow_fraction,
            ("cdu", "setpoint_c"): self.sp,
            ("cdu", "status"): np.where(self.pump_failed, 2.0, 1.0),
            ("meter", "power_kw"): np.array([meters[m] for m in self.cat.meters]) / KW,
            ("hr", "fan_pct"): np.array([100.0 * min(1.0, (tw.rejection.fan_w / fan_full_w) ** (1 / 3))]),
            ("hr", "supply_c"): np.array([tw.fws_supply_c]),
            ("hr", "return_c"): np.array([tw.fws_return_c]),
        }
        if self.cat.has_bess:
            b = f.spec.grid.bess
            t[("bess", "soc_pct")] = np.array([100.0 * tw.bess_energy_j / (b.energy_mwh * J_PER_MWH)])
            t[("bess", "status")] = np.array([0.0 if abs(last.bess_w) < 1.0 else (2.0 if last.bess_w > 0 else 1.0)])
        self.summary["hr_power_kw"].append(tw.rejection.power_w / KW)
        self.summary["max_die_margin_k"] = min(self.summary["max_die_margin_k"], float(np.min(f.t_max_c - tw.t_die)))
        return t

    # ------------------------------------------------------------------ publishing
    def publish_metadata(self, now_s: float) -> None:
        withdrawn = {(f.entity, f.signal) for f in self._active(("nometa",))}
        for g in self.cat.groups:
            pub = self._pub[id(g)]
            for i, topic in enumerate(g.metadata_topics):
                if (g.ids[i], g.signal.name) in withdrawn and not g.signal.integration:
                    if not pub.meta_withdrawn[i]:
                        self.client.publish(topic, b"", qos=1, retain=True)  # clears the retained message
                        pub.meta_withdrawn[i] = True
                    continue
                self.client.publish(topic, self._meta_bytes[id(g)][i], retain=True)
                self.messages += 1
        self._last_meta_s = now_s

    def _due_values(self, truth: dict, now_s: float) -> list[_Batch]:
        """The readings due now (changed, or ``REPUBLISH_S`` since the last), per signal group, marked
        published: sensor faults and noise applied, quantized to the point's resolution."""
        faults = {}
        for flt in self._active(("bias", "drift", "stuck", "dropout", "badquality")):
            faults.setdefault((flt.entity, flt.signal), []).append(flt)
        due_batches = []
        for g in self.cat.groups:
            s = g.signal
            key = (s.entity, s.name)
            if key not in truth:
                continue
            pub = self._pub[id(g)]
            skews = {
                g.ids.index(fl.entity): int(fl.value * 1000)
                for fl in self._active(("clock",))
                if fl.signal == s.name and fl.entity in g.ids
            }
            x = np.asarray(truth[key], float)
            if s.noise > 0:
                x = x + self.rng.normal(0.0, s.noise, x.shape)
            res = s.resolution
            meas = np.round(x / res) * res if res > 0 else x
            quality = None
            mine = [(g.ids.index(e), fl) for (e, n), fls in faults.items() if n == s.name for fl in fls if e in g.ids]
            skip = set()
            for i, fl in mine:
                if fl.kind == "bias":
                    meas[i] = np.round((x[i] + fl.value) / res) * res
                elif fl.kind == "drift":
                    meas[i] = np.round((x[i] + fl.value * (self.elapsed_s - fl.start_s) / 3600.0) / res) * res
                elif fl.kind == "stuck":
                    meas[i] = self._frozen.setdefault(
                        (id(g), i), pub.value[i] if np.isfinite(pub.value[i]) else meas[i]
                    )
                elif fl.kind == "dropout":
                    skip.add(i)
                elif fl.kind == "badquality":
                    quality = quality or {}
                    quality[i] = BAD
            due = (meas != pub.value) | (now_s - pub.time_s >= REPUBLISH_S - 1e-6)
            if self.every_step:
                due[:] = True
            if skip:
                due[list(skip)] = False
            idx = np.flatnonzero(due)
            if not idx.size:
                continue
            v = meas[idx]
            pub.value[idx], pub.time_s[idx] = v, now_s
            topics = g.value_topics if idx.size == len(g.ids) else [g.value_topics[i] for i in idx.tolist()]
            qs = None if quality is None else [quality.get(i, GOOD) for i in idx.tolist()]
            vals = v.tolist()
            own = [k for k, e in enumerate(idx.tolist()) if e in skews]  # a controller whose clock is off
            for k in own:
                q1 = None if qs is None else [qs[k]]
                due_batches.append(_Batch([topics[k]], [vals[k]], pub.decimals, q1, skews[int(idx[k])]))
            if own:
                keep = [k for k in range(idx.size) if k not in set(own)]
                topics, vals = [topics[k] for k in keep], [vals[k] for k in keep]
                qs = None if qs is None else [qs[k] for k in keep]
            if topics:
                due_batches.append(_Batch(topics, vals, pub.decimals, qs))
        return due_batches

    def _send(self, batches: list[_Batch], ts_ms: int) -> None:
        """Publish readings stamped ``ts_ms`` (one format per message, payloads built from Python floats)."""
        t0 = wall.thread_time()
        for b in batches:
            head, tail = '{"value":', f',"timestamp":{self._stamp(ts_ms + b.skew_ms)},"quality":'
            spec = f".{b.decimals}f"
            if b.quality is None:
                end = f"{tail}{GOOD}}}"
                bodies = [f"{head}{x:{spec}}{end}" for x in b.values]
            else:
                bodies = [f"{head}{x:{spec}}{tail}{q}}}" for x, q in zip(b.values, b.quality, strict=True)]
            self.client.publish_many(b.topics, bodies)
            self.messages += len(bodies)
            self.value_messages += len(bodies)
        self.timing_s["publish"] += wall.thread_time() - t0

    def _heartbeat(self, now_s: float, ts_ms: int) -> None:
        self._last_hb_s = now_s
        if any(f.entity == "BMS" and f.signal == "heartbeat_ms" for f in self._active(("dropout",))):
            return
        hb = self.cat.group("bms", "heartbeat_ms")
        ts_ms = self._stamp(ts_ms)
        self.client.publish(hb.value_topics[0], f'{{"value":{ts_ms},"timestamp":{ts_ms},"quality":1}}')
        self.messages += 1
        self.value_messages += 1
        if self.integration_hb_value is not None:
            echo = self.cat.group("bms", "echo_ms")
            v = int(self.integration_hb_value)
            self.client.publish(echo.value_topics[0], f'{{"value":{v},"timestamp":{ts_ms},"quality":1}}')
            self.messages += 1
            self.value_messages += 1

    # ------------------------------------------------------------------ run
    def step(self, release: Callable[[list[_Batch], int], None] | None = None) -> None:
        """One plant step: requests in, faults, advance, heartbeats, then the readings due, stamped at the
        step's end, or handed to ``release(batches, ts_ms)`` (the paced run spreads them over the step)."""
        now = self.elapsed_s
        self._read_inbox(now)
        self._apply_process_faults()
        self._update_setpoints(now)
        nometa = len(self._active(("nometa",)))
        if now - self._last_meta_s >= REPUBLISH_S - 1e-6 or nometa != self._nometa_applied:
            self.publish_metadata(now)
            self._nometa_applied = nometa
        fws0, tcs0 = float(self.twin.fws_supply_c), self.twin.tcs_supply_c.copy()
        t0 = wall.thread_time()
        self.twin.advance()
        self.elapsed_s += self.twin.plant_dt
        ts_ms = int(self.twin.time.astype("datetime64[ms]").astype(np.int64))
        t1 = wall.thread_time()
        batches = self._due_values(self._truth(fws0, tcs0), self.elapsed_s)
        self.timing_s["twin"] += t1 - t0
        self.timing_s["sensors"] += wall.thread_time() - t1
        for k in range(int(self.twin.plant_dt // HEARTBEAT_S), 0, -1):  # heartbeats inside the step, in order
            t_hb = self.elapsed_s - (k - 1) * HEARTBEAT_S
            if t_hb - self._last_hb_s >= HEARTBEAT_S - 1e-6:
                self._heartbeat(t_hb, ts_ms - int((k - 1) * HEARTBEAT_S * 1000))
        (release or self._send)(batches, ts_ms)
        self.summary["setpoints_c"].append(float(np.mean(self.sp)))

    def run(
        self,
        duration_s: float,
        speed: float | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        t0_epoch_s: float | None = None,
    ) -> dict:
        """Run ``duration_s`` simulated seconds at ``speed`` simulated s per wall s (None: as fast as possible).

        Paced (``speed`` given), a step's readings go out over the step's wall period in slices of at most
        :data:`SLICE_S`, each stamped with the plant time it leaves at (at the latest the step's end), as a
        BMS scanning its controllers spreads its updates: a timestamp is never later than its publication.
        ``t0_epoch_s``: the plant clock is the wall clock (``--start now``), the plant's start being this Unix
        time."""
        cpu0 = wall.process_time()
        start = wall.monotonic() - (wall.time() - t0_epoch_s if t0_epoch_s is not None else 0.0)
        run_start = wall.monotonic()
        while self.elapsed_s < duration_s - 1e-9 and not should_stop():
            if not speed:
                self.step()
                continue
            end = self.elapsed_s + self.twin.plant_dt  # the readings are sampled from this plant time on
            at = start + end / speed
            if not _wait_until(at, should_stop):
                break
            self.step(lambda batches, ts_ms, at=at: self._spread(batches, ts_ms, at, speed, should_stop))
        self.flush()
        self.timing_s["process_cpu"] = wall.process_time() - cpu0  # all threads, startup excluded
        return self.report(wall.monotonic() - run_start)

    def _spread(
        self, batches: list[_Batch], ts_ms: int, at: float, speed: float, should_stop: Callable[[], bool]
    ) -> None:
        """Publish ``batches`` in equal slices from monotonic time ``at`` over one plant step's wall period,
        each slice stamped with the plant time it leaves at (``ts_ms`` at ``at``), at the latest just before
        the next step: an emulator running late stamps within the step it sampled (the delay shows as lag)
        and never past heartbeats that the next step publishes. Once ``should_stop()`` the rest is dropped."""
        period = self.twin.plant_dt / speed
        slices = max(1, math.ceil(period / SLICE_S))
        size = math.ceil(sum(len(b.topics) for b in batches) / slices)  # slices x size covers every reading
        last_ms = round(self.twin.plant_dt * 1000) - 1
        queue_ = list(reversed(batches))
        for j in range(slices):
            if not queue_:
                return
            if not _wait_until(at + j * period / slices, should_stop):
                return
            out, n = [], 0
            while queue_ and n < size:
                b = queue_.pop()
                if n + len(b.topics) > size:
                    b, rest = b.split(size - n)
                    queue_.append(rest)
                out.append(b)
                n += len(b.topics)
            self._send(out, ts_ms + min(last_ms, round(max(0.0, wall.monotonic() - at) * speed * 1000)))

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until everything published so far has left: a QoS 1 heartbeat acknowledged by the broker comes
        after every earlier packet on the same connection."""
        if self.client.connected:
            hb = self.cat.group("bms", "heartbeat_ms")
            ts = self._stamp(int(self.twin.time.astype("datetime64[ms]").astype(np.int64)))
            info = self.client.publish(hb.value_topics[0], f'{{"value":{ts},"timestamp":{ts},"quality":1}}', qos=1)
            self.messages += 1
            self.value_messages += 1
            info.wait_for_publish(timeout_s)

    def report(self, wall_s: float) -> dict:
        hr = np.array(self.summary["hr_power_kw"])
        return {
            "simulated_s": self.elapsed_s,
            "plant_step_s": self.twin.plant_dt,
            "wall_s": wall_s,
            "messages": self.messages,
            "value_messages": self.value_messages,
            "points": self.cat.point_count(),
            "requests_received": self.requests_received,
            "requests_rejected": self.requests_rejected,
            "setpoint_mean_c": float(np.mean(self.sp)),
            "setpoint_range_c": [float(self.sp.min()), float(self.sp.max())],
            "fws_setpoint_c": self.twin.fws_setpoint_c,
            "hr_power_kw_first_hour": float(hr[: max(1, int(3600 / self.twin.plant_dt))].mean()) if hr.size else None,
            "hr_power_kw_last_hour": float(hr[-max(1, int(3600 / self.twin.plant_dt)) :].mean()) if hr.size else None,
            "hr_power_kw_series": hr.tolist(),
            "setpoint_series_c": self.summary["setpoints_c"],
            "min_die_margin_k": self.summary["max_die_margin_k"],
            "faults": [str(f) for f in self.faults],
            "timing_s": self.timing_s,
            "ua_w_k": {c: float(self.f.cdu_ua_nom_w_k[i]) for i, c in enumerate(self.cat.cdu_ids)},
        }


def _wait_until(t_monotonic: float, should_stop: Callable[[], bool]) -> bool:
    """Sleep until ``t_monotonic``, looking at ``should_stop()`` every 0.1 s (Ctrl-C answered within it);
    False if told to stop."""
    while (left := t_monotonic - wall.monotonic()) > 0:
        if should_stop():
            return False
        wall.sleep(min(left, 0.1))
    return not should_stop()


def _decimals(resolution: float) -> int:
    return max(0, int(math.ceil(-math.log10(resolution) - 1e-9))) if 0 < resolution < 1 else 0


__all__ = ["BmsEmulator", "Guardrails"]
