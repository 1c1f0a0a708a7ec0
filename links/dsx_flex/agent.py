"""DSX Flex agent: verified grid load targets become limits of the running MPC; status and breaches go out.

The agent owns a :class:`twin.simulation.engine.Twin` driven by an :class:`optimization.mpc.MPCController`. Its clock is
the twin's, and the twin keeps its own pace: with a ``speed`` the plant step from twin time ``t`` runs once ``speed`` x
(wall time since the start) has reached ``t`` (so the twin leads that clock by at most one plant step), whatever arrives
meanwhile. Inbound ``grid.loadtarget.set.v1`` events arrive from MQTT (paho's thread puts them on a bounded queue: at
most :data:`INBOX_MAX` waiting, each cut to :data:`MAX_PAYLOAD_BYTES` + 1 bytes, the rest counted as dropped); as they
come, between plant steps, the agent verifies them (:mod:`links.dsx_flex.protocol`), applies them to its
:class:`links.dsx_flex.state.FlexState`, saves the state atomically, hands the feeds' limits to the scenario as
:class:`twin.scenario.scenario.GridTarget` (feed limit / share on the feed's meter, ``default_constraint`` where no
target is in force) and asks for a re-plan, so the next plant step runs under new caps (:mod:`links.grid_targets`, the
path OpenADR takes too). The MPC's import ramp row applies the facility's ``ramp_limit_mw_per_min``. ``best_effort``
targets keep the jobs' flex floors hard (shed only what the floors allow and report non-compliance); other targets may
push the jobs below their floors.

After each plant step the measured load per feed (share x grid import or GPU power) drives the ramp and breach trackers;
transitions and a heartbeat every ``heartbeat_s`` of twin time publish ``grid.powerstate.status.v1``; breaches publish
``grid.powerbreach.alert.v1`` with shed hints, one per dispatch group (workload class x zone), the classes with the
largest tolerated throughput loss first. Times: the twin's local times map to UTC with the site's ``utc_offset_h``.
"""

from __future__ import annotations

import logging
import math
import queue
import time as wall
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from factory_twin.links.dsx_flex.protocol import (
    BREACH,
    STATUS,
    Key,
    RefusedError,
    TrustStore,
    breach_topic,
    build_event,
    iso,
    loadtarget_topic,
    parse_loadtarget,
    power,
    status_topic,
)
from factory_twin.links.dsx_flex.state import STATUS_FILE, FlexState, feeds_of
from factory_twin.links.grid_targets import cut_now, hand_over
from factory_twin.models.units import KW, MW, S_PER_MIN
from factory_twin.optimization.groups import make_groups
from factory_twin.twin.runs import strict_json
from factory_twin.twin.runs.atomic import write_json_atomic
from factory_twin.twin.scenario.scenario import GridTarget
from factory_twin.twin.simulation.meters import grid_import_w

log = logging.getLogger("factory_twin.flex")
FAR = np.timedelta64(3650, "D")
MAX_PAYLOAD_BYTES = 256 * 1024  # a load target event larger than this is refused unread (a day of 1-min steps: ~0.4 MB)
INBOX_MAX = 200  # messages waiting for verification; more are dropped (and counted) rather than held in memory
REASON_CHARS = 300  # a refusal's reason as logged and shown (the sender chose what it quotes)
LOG_EVERY_S = 10.0  # refusals and drops are logged at most LOG_BURST per this many wall seconds, then summed
LOG_BURST = 10


@dataclass
class AgentConfig:
    """Agent settings: ``identifier`` names its topics and source; times in twin seconds."""

    identifier: str = "factory-twin"
    heartbeat_s: float = 60.0
    max_age_s: float = 300.0
    tolerance: float = 0.01
    grace_s: float = 120.0
    escalate_s: float = 300.0


@dataclass
class Published:
    topic: str
    event: dict
    data: dict


@dataclass
class FlexAgent:
    """See the module docstring. The twin's controller is normally an :class:`optimization.mpc.MPCController`
    (any controller that reads the scenario's grid targets works); ``client`` is a started
    :class:`links.mqtt.MqttClient` (or None: feed events to :meth:`handle` directly)."""

    twin: object
    trust: TrustStore
    key: Key
    client: object = None
    state_dir: Path | None = None
    config: AgentConfig = field(default_factory=AgentConfig)
    published: list[Published] = field(default_factory=list)
    refusals: deque[str] = field(default_factory=lambda: deque(maxlen=1000))  # the latest reasons
    keep_published: bool = True

    def __post_init__(self) -> None:
        f = self.twin.f
        self.offset = timedelta(hours=f.spec.site.utc_offset_h)
        ramp = f.spec.grid.ramp_limit_mw_per_min * MW / S_PER_MIN
        c = self.config
        self.state = FlexState(feeds_of(f.spec), tolerance=c.tolerance, grace_s=c.grace_s, escalate_s=c.escalate_s)
        self.state.ramp_w_per_s = ramp
        self.inbox: queue.Queue = queue.Queue(maxsize=INBOX_MAX)
        self.refused_total = 0
        self.dropped = 0  # messages that found the inbox full
        self._log_window = (-math.inf, 0, 0)  # (start [wall s], lines logged, lines held back)
        self.source = f"//grid/v1/dsx-flex-agent/{c.identifier}"
        self.mpc = self.twin.controller  # an MPCController (plans, soft limits) or any other controller
        self.hints = _shed_hints(f, getattr(self.mpc, "groups", None) or make_groups(f, "hall"))
        self._next_heartbeat = None
        opts = getattr(self.mpc, "options", None)
        self._soft = tuple(opts.soft) if opts is not None else ()
        self.latency_s: list[float] = []  # arrival -> new caps in the twin, per accepted event [wall s]
        self.history = {x.tag: deque(maxlen=720) for x in self.state.feeds}  # (time, measured, limit) [s, W, W]
        self.alerts: deque = deque(maxlen=50)
        self.refused: deque = deque(maxlen=20)
        self._saved: dict | None = None  # what flex-state.json holds
        if self.state_dir is not None and self.state.load(self.state_dir):
            log.info("reloaded flex state from %s", self.state_dir)
            self._saved = self.state.to_json()
        self._push_targets()
        if self.client is not None:
            self.client.on_message = self.on_message
            self.client.subscribe(loadtarget_topic("+"), qos=1)

    # ------------------------------------------------------------------ time and measurements
    def now(self) -> datetime:
        """The twin's time in UTC."""
        local = self.twin.time.astype("datetime64[ms]").astype(datetime)
        return (local - self.offset).replace(tzinfo=UTC)

    def _local(self, t: datetime) -> np.datetime64:
        return np.datetime64((t.astimezone(UTC) + self.offset).replace(tzinfo=None), "s")

    def measured_w(self) -> dict[str, float]:
        r = self.twin.last
        if r is None:
            return {f.tag: 0.0 for f in self.state.feeds}
        return {f.tag: f.share * (grid_import_w(r) if f.meter == "grid" else r.gpu_w) for f in self.state.feeds}

    def planned_w(self) -> dict[str, float]:
        plan = self.mpc.plan
        if plan is None or not np.isfinite(plan.grid_import_w[0]):
            return self.measured_w()
        grid, gpu = float(plan.grid_import_w[0]), float(plan.gpu_power_w[0])
        return {f.tag: f.share * (grid if f.meter == "grid" else gpu) for f in self.state.feeds}

    # ------------------------------------------------------------------ inbound
    def on_message(self, msg) -> None:
        """MQTT thread: queue the message (its first :data:`MAX_PAYLOAD_BYTES` + 1 bytes: more is refused anyway)
        with its arrival time; a full inbox drops it."""
        try:
            self.inbox.put_nowait((msg.topic, bytes(msg.payload[: MAX_PAYLOAD_BYTES + 1]), wall.perf_counter()))
        except queue.Full:
            self.dropped += 1

    def handle_inbox(self) -> int:
        """Verify and apply every queued message; return how many were accepted."""
        n = 0
        while True:
            try:
                topic, payload, arrived = self.inbox.get_nowait()
            except queue.Empty:
                return n
            n += self.handle(topic, payload, arrived)

    def handle(self, topic: str, payload: bytes, arrived: float | None = None) -> bool:
        """Verify and apply one inbound message; False (logged with the reason, nothing changed) when refused."""
        parts = topic.split("/")
        isv = parts[3] if len(parts) == 6 else ""
        now = self.now()
        try:
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise RefusedError(f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
            ev = parse_loadtarget(payload, isv, self.trust, now, self.state.seen, self.config.max_age_s)
            self.state.apply(ev)
        except RefusedError as e:
            self._refused(now, topic, str(e))
            return False
        self.state.prune(now, self.config.max_age_s + 60.0)
        self._save_state()
        self._push_targets()
        self._reflex()
        if arrived is not None:
            self.latency_s.append(wall.perf_counter() - arrived)
        log.info("accepted loadtarget %s from %s (%d target(s))", ev.id, ev.source, len(ev.targets))
        tags = {tag for t in ev.targets for tag in (t.feeds or [f.tag for f in self.state.feeds])}
        trace = ev.traceparent.split("-")[1]
        for tag in sorted(tags):
            self._status({tag: "target_set"}, ev.correlation_id, trace)
        return True

    def _refused(self, now: datetime, topic: str, why: str) -> None:
        why, topic = _clip(why), _clip(topic)
        self.refused_total += 1
        self.refusals.append(why)
        self.refused.append((iso(now), topic, why))
        self._log(logging.WARNING, "refused loadtarget on %r: %s", topic, why)

    def _log(self, level: int, msg: str, *args) -> None:
        """Log at most :data:`LOG_BURST` lines per :data:`LOG_EVERY_S` wall seconds; say how many were held back."""
        start, n, held = self._log_window
        t = wall.monotonic()
        if t - start >= LOG_EVERY_S:
            if held:
                log.warning("%d more refusal or drop line(s) held back in the last %g s", held, LOG_EVERY_S)
            start, n, held = t, 0, 0
        if n < LOG_BURST:
            log.log(level, msg, *args)
            n += 1
        else:
            held += 1
        self._log_window = (start, n, held)

    def grid_targets(self) -> tuple[GridTarget, ...]:
        """Each feed's limit over time as site-level targets on its meter (defaults fill the gaps)."""
        out = []
        now = self._local(self.now())
        for f in self.state.feeds:
            t0 = now - FAR
            for t in self.state.targets[f.tag]:
                s = self._local(t.start)
                if s > t0:
                    out.append(GridTarget(t0, s, f.default_w / f.share / MW, f.meter))
                e = self._local(t.end) if t.end else None
                out.append(GridTarget(s, e, t.constraint_w / f.share / MW, f.meter))
                t0 = e if e is not None else None
                if t0 is None:
                    break
            if t0 is not None:
                out.append(GridTarget(t0, None, f.default_w / f.share / MW, f.meter))
        return tuple(out)

    def _reflex(self) -> None:
        """Cut the caps at once when a new limit is below the present load, before the MPC re-plans
        (:func:`links.grid_targets.cut_now`): enough GPU power to meet the tightest feed."""
        if self.twin.last is None:
            return
        now, measured = self.now(), self.measured_w()
        cut_now(self.twin, max((measured[x.tag] - self.state.limit_w(x.tag, now)) / x.share for x in self.state.feeds))

    def _push_targets(self) -> None:
        best_effort = any(t.best_effort for ts in self.state.targets.values() for t in ts)
        hand_over(self.twin, self.grid_targets(), best_effort, self._soft)

    # ------------------------------------------------------------------ outbound
    def _publish(self, topic: str, type_: str, subject: str, data: dict, corr=None, trace=None, qos=1) -> None:
        ev = build_event(type_, self.source, subject, data, self.key, self.now(), corr, trace)
        if self.keep_published:
            self.published.append(Published(topic, ev, data))
        if self.client is not None:
            self.client.publish(topic, strict_json.dumps(ev), qos=qos)

    def _status(self, events: dict[str, str], corr=None, trace=None) -> None:
        data = self.state.status_data(self.now(), self.measured_w(), self.planned_w(), events)
        self._publish(status_topic(self.config.identifier), STATUS, "powerstate", data, corr, trace)

    # ------------------------------------------------------------------ loop
    def step(self) -> None:
        """Apply queued targets, advance one plant step, publish transitions, breaches and the heartbeat."""
        self.handle_inbox()
        self.twin.advance()
        now, measured = self.now(), self.measured_w()
        for tag, what in self.state.tick(now, measured):
            if what.startswith("breach:"):
                status = what.split(":")[1]
                data = self.state.breach_data(tag, status, now, measured[tag], self.hints)
                self._publish(breach_topic(self.config.identifier), BREACH, "powerbreach", data, qos=2)
                self.alerts.append(data)
                log.warning("breach %s on feed %s: %.1f kW measured", status, tag, measured[tag] / KW)
            else:
                self._status({tag: what})
        if self._next_heartbeat is None or self.twin.time >= self._next_heartbeat:
            self._status({})
            self._next_heartbeat = self.twin.time + np.timedelta64(int(self.config.heartbeat_s), "s")
        for x in self.state.feeds:
            self.history[x.tag].append((iso(now), measured[x.tag], self.state.limit_w(x.tag, now)))
        self.state.prune(now, self.config.max_age_s + 60.0)
        self._save_state()  # the power-event start set or cleared by the trackers, targets that ended
        if self.state_dir is not None:
            write_json_atomic(self.state_dir / STATUS_FILE, self.status_file())

    def _save_state(self) -> None:
        """Write ``flex-state.json`` whenever what it holds has changed (targets, seen ids, power-event start)."""
        if self.state_dir is None:
            return
        doc = self.state.to_json()
        if doc != self._saved:
            self.state.save(self.state_dir, doc)
            self._saved = doc

    def status_file(self) -> dict:
        """What the dashboard shows: per feed the limit, measured and planned load and ramp phase; the
        targets; recent history, breach alerts and refusals (JSON, SI units)."""
        now, measured, planned = self.now(), self.measured_w(), self.planned_w()
        feeds = {}
        for x in self.state.feeds:
            tr = self.state.tracks[x.tag]
            feeds[x.tag] = {
                "meter": x.meter,
                "share": x.share,
                "limit_w": self.state.limit_w(x.tag, now),
                "default_w": x.default_w,
                "measured_w": measured[x.tag],
                "planned_w": planned[x.tag],
                "phase": tr.phase,
                "compliant": self.state.compliant(x.tag, now, measured[x.tag]),
                "breach": None if tr.breach is None else {"status": tr.breach.status, "id": tr.breach.id},
                "targets": [
                    {
                        "constraint_w": t.constraint_w,
                        "start": iso(t.start),
                        "end": iso(t.end) if t.end else None,
                        "active": t.start <= now and (t.end is None or now < t.end),
                        "best_effort": t.best_effort,
                        "correlation_id": t.correlation_id,
                    }
                    for t in self.state.targets[x.tag]
                ],
                "history": list(self.history[x.tag]),
            }
        return {
            "agent": self.config.identifier,
            "facility": self.twin.f.spec.name,
            "time": iso(now),
            "feeds": feeds,
            "alerts": list(self.alerts),
            "refused": list(self.refused),
            "refused_total": self.refused_total,
            "dropped": self.dropped,
        }

    def run(self, duration_s: float, speed: float | None = 1.0, stop=None) -> None:
        """Step for ``duration_s`` of twin time at ``speed`` twin seconds per wall second (None: flat out). The
        plant step from twin time ``t`` runs once ``speed`` x (wall seconds since the start) has reached ``t``;
        messages are verified as they arrive in between and never move the clock."""
        t_end = self.twin.time + np.timedelta64(int(duration_s), "s")
        start_wall, start_twin = wall.monotonic(), self.twin.time
        stopped = (lambda: False) if stop is None else stop.is_set
        while self.twin.time < t_end and not stopped():
            ahead = 0.0 if not speed else self._twin_s(start_twin) / speed - (wall.monotonic() - start_wall)
            if ahead <= 0:
                self.step()
                continue
            try:
                item = self.inbox.get(timeout=min(ahead, 0.05))
            except queue.Empty:
                continue
            self.handle(*item)
        if self.dropped:
            log.warning("%d inbound message(s) dropped: the inbox was full (%d waiting)", self.dropped, INBOX_MAX)

    def _twin_s(self, since: np.datetime64) -> float:
        return float((self.twin.time - since) / np.timedelta64(1, "s"))


def _clip(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS] + f"... ({len(text)} characters)"


def _shed_hints(f, groups) -> list[dict]:
    """One power-cap hint per dispatch group, largest tolerated throughput loss (flex tier) first."""
    tier = np.array([f.spec.workloads[c].flex_tier for c in groups.cls])
    order = sorted(range(groups.n), key=lambda g: (-tier[g], -groups.gpus[g]))
    return [
        {
            "resource_id": groups.names[g],
            "resource_type": "node",
            "action": "power_cap",
            "priority": i + 1,
            "target_power": power(groups.min_cap_w[g], "watt"),
        }
        for i, g in enumerate(order)
    ]


__all__ = ["AgentConfig", "FlexAgent", "Published"]
