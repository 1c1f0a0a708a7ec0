"""The twin's side of the VEN: events in, an opt decision with its reason, targets into the MPC-driven twin, the meter.

:class:`TwinVen` owns a :class:`twin.simulation.engine.Twin` whose controller reads the scenario's grid targets and DR
events (an :class:`optimization.mpc.MPCController`). The OpenADR link (:mod:`links.openadr.link`, openleadr's thread)
calls :meth:`TwinVen.on_event` for every new or modified event; it maps the event (:mod:`links.openadr.signals`),
decides, logs the decision and returns ``optIn`` or ``optOut``. The twin's own thread runs :meth:`TwinVen.run`: it
steps the twin on the :class:`Clock`, hands the opted-in events' targets to the twin whenever they change
(:func:`links.grid_targets.hand_over`, the path DSX Flex takes, with :func:`links.grid_targets.cut_now` as soon as
an import limit in force or ahead needs the import to start falling for the facility's ramp limit to reach it by its
start: :func:`links.grid_targets.ramp_lead_w`) and records the campus import after every plant step, which the
TELEMETRY_USAGE reports send.

Decisions: opt out when the event cannot be mapped (the reason names the field or the missing mapping), when a
target is below the floor (every GPU at its minimum cap, jobs stopped as far as they may, the BESS's charge spread
over the interval: :func:`optimization.feasibility.site_floors_mw`) or, with ``keep_flex_floors``, below what the jobs'
flex floors allow; opt in otherwise, noting when the facility's ramp limit cannot reach the target by its start.
A cancelled or completed event's targets leave at once; a modification replaces the event's targets (or opts out
and removes them). DR events (SIMPLE levels) become :class:`twin.scenario.grid_signals.DREvent` ramping in over the
event's ramp before its start; import targets :class:`twin.scenario.scenario.GridTarget` on the grid meter from the
start. Events arrive on the utility's clock (UTC); the :class:`Clock` maps them onto the twin's (``speed`` > 1
compresses them, for tests and demonstrations).

Files in ``state_dir``: ``openadr-decisions.jsonl`` (one line per decision and per change of the VTN link's state)
and ``openadr-status.json`` (what the dashboard shows; written atomically every ``status_s`` of wall time).
"""

from __future__ import annotations

import logging
import math
import threading
import time as wall
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from factory_twin.links.grid_targets import cut_now, hand_over, ramp_lead_w
from factory_twin.links.openadr.signals import Mapped, Target, UnmappableError, map_event
from factory_twin.models.units import J_PER_MWH, MW, S_PER_MIN
from factory_twin.optimization.feasibility import site_floors_mw
from factory_twin.optimization.options import MPC_OPTIONS
from factory_twin.twin.runs import strict_json
from factory_twin.twin.runs.atomic import write_json_atomic
from factory_twin.twin.scenario.grid_signals import DREvent
from factory_twin.twin.scenario.scenario import GridTarget
from factory_twin.twin.scenario.timeparse import site_time
from factory_twin.twin.simulation.meters import grid_import_w

log = logging.getLogger("factory_twin.openadr")
DECISIONS = "openadr-decisions.jsonl"
STATUS = "openadr-status.json"
OPEN_ENDED_S = 31 * 86400.0  # an open-ended DR event is held this long (until cancelled): signals.MAX_EVENT


@dataclass(frozen=True)
class Clock:
    """Wall UTC <-> the twin's local time: ``twin = twin0 + speed x (utc - utc0)``. At speed 1 with ``twin0`` the
    site's local time at ``utc0`` the twin runs on the site's clock."""

    utc0: datetime
    twin0: np.datetime64
    speed: float = 1.0

    @classmethod
    def site(cls, utc_offset_h: float, speed: float = 1.0, now: datetime | None = None) -> Clock:
        """Starting now (whole seconds) at the site's local time."""
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        local = (now + timedelta(hours=utc_offset_h)).replace(tzinfo=None)
        return cls(now, np.datetime64(local, "s"), speed)

    def twin(self, t: datetime) -> np.datetime64:
        """The twin's time at ``t``, to the second (the twin's clock counts whole seconds)."""
        s = (t - self.utc0).total_seconds() * self.speed
        return np.datetime64(self.twin0, "s") + np.timedelta64(round(s), "s")

    def utc(self, t: np.datetime64) -> datetime:
        s = float((np.datetime64(t, "ms") - self.twin0).astype(np.int64)) / 1000 / self.speed
        return self.utc0 + timedelta(seconds=s)


@dataclass
class Entry:
    """An event the twin takes part in."""

    mapped: Mapped
    baseline_w: float
    received: datetime


class TwinVen:
    """See the module docstring. ``cfg`` is the facility's ``[openadr]`` (:class:`twin.facility.spec.OpenADR`)."""

    def __init__(self, twin, cfg, clock: Clock, state_dir: Path | None = None, metrics=None, status_s: float = 1.0):
        if cfg is None:
            raise ValueError("openadr: the facility file has no [openadr] table (the mapping of OpenADR signals)")
        self.twin, self.cfg, self.clock, self.state_dir, self.metrics = twin, cfg, clock, state_dir, metrics
        self.status_s = status_s
        self.ven_name = ""
        self._lock = threading.Lock()
        self.book: dict[str, Entry] = {}
        self.opts: dict[str, str] = {}  # event id -> the latest answer
        self.decisions: deque[dict] = deque(maxlen=50)
        self.readings: deque[tuple[datetime, float]] = deque(maxlen=100_000)  # (UTC end of a plant step, import W)
        self.history: deque[tuple[str, float, float | None]] = deque(maxlen=720)  # (UTC ISO, import MW, target MW)
        self.link: dict = {"state": "starting", "detail": "", "since": _iso(datetime.now(UTC)), "problems": []}
        self.reports_sent = 0
        self._changed = True
        self._base_dr = tuple(twin.scenario.dr_events)
        opts = getattr(twin.controller, "options", None)
        self.options = opts if opts is not None else MPC_OPTIONS
        self._soft = tuple(opts.soft) if opts is not None else ()
        self._last_status = -math.inf
        self.follow: dict[tuple, dict] = {}  # per import target: when the import first met it (see _track)
        if state_dir is not None:
            Path(state_dir).mkdir(parents=True, exist_ok=True)

    @classmethod
    def build(cls, facility, scenario=None, speed: float = 1.0, state_dir: Path | None = None,
              plant_step_s: float = 20.0, options=None, replan_every: str = "5min") -> TwinVen:  # fmt: skip
        """A VEN over a new MPC-driven twin of ``facility`` (a name or path) on the site's clock from now: the
        scenario (a name, path or None for the defaults) is rebuilt to start at the twin's present time."""
        from factory_twin.optimization.controllers import make_controller
        from factory_twin.twin import Twin, load_facility, load_scenario
        from factory_twin.twin.scenario.scenario import build_scenario

        f = load_facility(facility)
        if f.spec.openadr is None:
            raise ValueError(f"{f.source}: no [openadr] table: the facility must state how OpenADR signals map")
        # one plant step back: the first step is due at once, so the first meter reading is there from the start
        clock = Clock.site(f.spec.site.utc_offset_h, speed, datetime.now(UTC) - timedelta(seconds=plant_step_s / speed))
        sc = load_scenario(scenario, f)
        base = Path(scenario).parent if scenario and Path(scenario).is_file() else None
        sc = build_scenario(sc.spec.model_copy(update={"start": str(clock.twin0)}), f, base, sc.name)
        mpc = make_controller("mpc", f, sc, options=options or MPC_OPTIONS, replan_every=replan_every)
        tw = Twin(f, sc, start=clock.twin0, plant_step_s=plant_step_s, controller=mpc)
        return cls(tw, f.spec.openadr, clock, state_dir)

    # ------------------------------------------------------------------ link thread
    def on_event(self, event: dict) -> str:
        """Decide on a new or modified event: ``optIn`` or ``optOut`` (never raises: an error opts out)."""
        now = datetime.now(UTC)
        d = event.get("event_descriptor", {}) if isinstance(event, dict) else {}
        event_id, status = str(d.get("event_id", "?")), d.get("event_status")
        with self._lock:
            previous = self.opts.get(event_id, "optIn")
        # the DR baseline (twin.simulation.targets): the counterfactual uncapped import, not the meter, which an
        # event already in force has curtailed
        tw = self.twin
        baseline = float(tw.dr_baseline_mw(np.array([np.datetime64(tw.time, "s")]))[0]) * MW
        if status in ("cancelled", "completed"):
            with self._lock:
                gone = self.book.pop(event_id, None) is not None
                self._changed |= gone
            self._decide(event_id, d, previous, f"event {status}: " + ("its targets removed" if gone else "no targets"))
            return previous
        try:
            m = map_event(event, self.cfg, self.twin.f.spec.grid.import_limit_mw * MW, baseline, now)
            opt, reason = self._judge(m, baseline, now)
        except UnmappableError as e:
            m, opt, reason = None, "optOut", str(e)
        except Exception as e:  # a bug must not leave the VTN without an answer
            log.exception("deciding on event %s failed", event_id)
            m, opt, reason = None, "optOut", f"internal error: {type(e).__name__}: {e}"
        with self._lock:
            if opt == "optIn":
                self.book[event_id] = Entry(m, baseline, now)
            else:
                self.book.pop(event_id, None)
            self.opts[event_id] = opt
            self._changed = True
        self._decide(event_id, d, opt, reason, m, baseline)
        return opt

    def _judge(self, m: Mapped, baseline_w: float, now: datetime) -> tuple[str, str]:
        """Opt in or out of a mapped event, and why (see the module docstring)."""
        if not m.targets:
            return "optIn", "nothing to shed: " + "; ".join(m.notes)
        tw, step = self.twin, self.options.step
        stored = getattr(tw, "bess_energy_j", 0.0) / J_PER_MWH
        horizon = timedelta(seconds=self.options.horizon / self.clock.speed)
        lines = []
        for t in m.targets:
            end = t.end or t.start + horizon
            times = _grid(self.clock.twin(t.start), self.clock.twin(end), step)
            floor, flex = site_floors_mw(tw.f, tw.scenario, times, self.options, stored)
            want = (1 - t.value) * baseline_w / MW if t.kind == "dr" else t.value / MW
            what = f"{want:.3f} MW from {_iso(t.start)}"
            if want < floor.max():
                return "optOut", (
                    f"target {what} is below the floor {floor.max():.3f} MW (every GPU at its minimum cap, jobs "
                    "stopped as far as they may, the BESS's charge spread over the interval)"
                )
            if self.cfg.keep_flex_floors and want < flex.max():
                return "optOut", (
                    f"target {what} is below what the jobs' flex floors allow ({flex.max():.3f} MW; "
                    "[openadr] keep_flex_floors)"
                )
            lines.append(f"target {what} >= floor {floor.max():.3f} MW (flex floors {flex.max():.3f} MW)")
            late = self._ramp_note(baseline_w / MW - want, t.start - now)
            if late:
                lines.append(late)
        return "optIn", "; ".join(lines)

    def _ramp_note(self, drop_mw: float, lead: timedelta) -> str:
        """A note when the facility's ramp limit cannot take ``drop_mw`` off within ``lead`` (wall time)."""
        rate = self.twin.f.spec.grid.ramp_limit_mw_per_min
        need_s = max(drop_mw, 0.0) / rate * S_PER_MIN  # twin seconds
        have_s = lead.total_seconds() * self.clock.speed
        if need_s <= have_s:
            return ""
        return (
            f"the ramp limit ({rate:g} MW/min) needs {need_s / S_PER_MIN:.1f} min for the {drop_mw:.3f} MW cut, "
            f"the event leaves {max(have_s, 0) / S_PER_MIN:.1f} min: the target will be met late"
        )

    def report_values(self) -> list[tuple[datetime, float]]:
        """TELEMETRY_USAGE sample: the latest campus import [W] with the UTC end of its plant step."""
        with self._lock:
            self.reports_sent += 1
            return [self.readings[-1]] if self.readings else []

    def set_link(self, state: str, detail: str = "") -> None:
        """The VTN link's state (starting, registered, unreachable, refused, error, stopped), logged on change."""
        with self._lock:
            changed = (state, detail) != (self.link["state"], self.link["detail"])
            if changed:
                self.link.update(state=state, detail=detail, since=_iso(datetime.now(UTC)))
        if changed:
            (log.warning if state in ("unreachable", "refused", "error") else log.info)("VTN link %s %s", state, detail)
            self._append({"kind": "link", "time": _iso(datetime.now(UTC)), "state": state, "detail": detail})

    def link_problem(self, text: str) -> None:
        with self._lock:
            self.link["problems"] = [*self.link["problems"][-19:], f"{_iso(datetime.now(UTC))} {text}"]

    # ------------------------------------------------------------------ twin thread
    def step(self) -> None:
        """Hand changed targets over, cut the caps when the import limit of the coming plant step is below the
        latest import, advance one plant step, record the import."""
        with self._lock:
            changed, self._changed = self._changed, False
            book = list(self.book.values())
        if changed:
            self._hand_over(book)
        tw = self.twin
        limit = float(tw.scenario.target_limit(np.array([tw.time]), "grid")[0]) * MW
        cut_now(tw, ramp_lead_w(tw))  # early enough for the ramp limit: the target holds from its start
        tw.advance()
        imp = float(grid_import_w(tw.last))
        t_utc = self.clock.utc(tw.time)
        with self._lock:
            self.readings.append((t_utc, imp))
            self.history.append((_iso(t_utc), imp / MW, limit / MW if math.isfinite(limit) else None))
        self._track(t_utc, imp)
        if self.metrics is not None:
            self.metrics.update()
        if wall.monotonic() - self._last_status >= self.status_s:
            self.write_status()

    def _hand_over(self, book: list[Entry]) -> None:
        targets, events = [], []
        for e in book:
            ramp_s = e.mapped.ramp_s
            for t in e.mapped.targets:
                if t.kind == "import":
                    end = self.clock.twin(t.end) if t.end else None
                    targets.append(GridTarget(self._plant_step_of(t.start), end, t.value / MW, "grid"))
                else:
                    events.append(self._dr_event(t, ramp_s))
        hand_over(self.twin, tuple(targets), self.cfg.keep_flex_floors, self._soft, (*self._base_dr, *events))
        live = set()
        for e in book:
            for t in e.mapped.targets:
                key = (e.mapped.event_id, e.mapped.modification, _iso(t.start), t.kind, t.value)
                live.add(key)
                row = dict(zip(("event_id", "modification", "start", "kind", "value"), key, strict=True))
                row |= {
                    "ramp_s": e.mapped.ramp_s,
                    "baseline_w": e.baseline_w,
                    "received": _iso(e.received),
                    "met_after_s": None,
                    "in_force": True,
                }
                self.follow.setdefault(key, row)
        for key, row in self.follow.items():
            row["in_force"] = key in live
        while len(self.follow) > 50:
            self.follow.pop(next(iter(self.follow)))

    def _plant_step_of(self, t: datetime) -> np.datetime64:
        """The start of the twin's plant step that holds ``t``: an import target holds over the whole step its
        start falls in (the twin's meter is the mean over each step), so the step is cut from its beginning."""
        dt = int(self.twin.plant_dt)
        since = int((self.clock.twin(t) - self.clock.twin0).astype("timedelta64[s]").astype(np.int64))
        return self.clock.twin0 + np.timedelta64(since // dt * dt, "s")

    def _dr_event(self, t: Target, ramp_s: float) -> DREvent:
        """A DR target as a DR event of the twin: ramping in over the event's ramp before its start, announced at
        the twin's present time (the MPC plans only for events announced by its re-plan)."""
        k = self.clock.speed
        begin = self.clock.twin(t.start - timedelta(seconds=ramp_s))
        held_s = (t.end - t.start).total_seconds() * k if t.end else OPEN_ENDED_S
        notice_s = max(float((begin - np.datetime64(self.twin.time, "s")).astype(float)), 0.0)
        return DREvent(begin, held_s + ramp_s * k, t.value, ramp_s * k, notice_s)

    def _track(self, t_utc: datetime, imp: float) -> None:
        """When the import first met each target in force (within 1 %): wall seconds from the target's start, or from
        its arrival when it arrived later (a modification), to the end of that plant step (negative: met during the
        ramp). An import target's limit; a DR target's (1 - depth) x baseline."""
        for row in self.follow.values():
            if row["met_after_s"] is not None or not row["in_force"]:
                continue
            want = row["value"] if row["kind"] == "import" else (1 - row["value"]) * row["baseline_w"]
            start = datetime.fromisoformat(row["start"])
            if imp <= want * 1.01 and t_utc >= start - timedelta(seconds=row["ramp_s"]):
                row["met_after_s"] = (t_utc - max(start, datetime.fromisoformat(row["received"]))).total_seconds()

    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        """Step the twin on the clock until ``stop`` is set (or ``duration_s`` of twin time has passed)."""
        t_end = None if duration_s is None else self.twin.time + np.timedelta64(int(duration_s), "s")
        dt = np.timedelta64(int(self.twin.plant_dt), "s")
        while not stop.is_set() and (t_end is None or self.twin.time < t_end):
            if self.twin.time + dt <= self.clock.twin(datetime.now(UTC)):
                self.step()
            else:
                stop.wait(min(0.05, self.twin.plant_dt / self.clock.speed / 4))
        self.write_status()

    # ------------------------------------------------------------------ records
    def _decide(self, event_id, d, opt, reason, m: Mapped | None = None, baseline_w: float = math.nan) -> None:
        row = {
            "kind": "decision",
            "time": _iso(datetime.now(UTC)),
            "event_id": event_id,
            "modification": d.get("modification_number"),
            "status": d.get("event_status"),
            "market_context": d.get("market_context"),
            "opt": opt,
            "reason": reason,
            "baseline_mw": baseline_w / MW if math.isfinite(baseline_w) else None,
        }
        if m is not None:
            row["mapping"] = list(m.notes)
            row["ramp_s"] = m.ramp_s
            row["targets"] = [_target_json(t) for t in m.targets]
        (log.info if opt == "optIn" else log.warning)("event %s: %s (%s)", event_id, opt, reason)
        with self._lock:
            self.decisions.append(row)
        self._append(row)

    def _append(self, row: dict) -> None:
        if self.state_dir is None:
            return
        with self._lock, (Path(self.state_dir) / DECISIONS).open("a", encoding="utf-8") as fh:
            fh.write(strict_json.dumps(row) + "\n")

    def status(self) -> dict:
        """What the dashboard shows (JSON; powers in MW, times UTC ISO)."""
        with self._lock:
            events = [
                {
                    "event_id": k,
                    "modification": e.mapped.modification,
                    "status": e.mapped.status,
                    "market_context": e.mapped.market_context,
                    "baseline_mw": e.baseline_w / MW,
                    "ramp_s": e.mapped.ramp_s,
                    "targets": [_target_json(t) for t in e.mapped.targets],
                }
                for k, e in self.book.items()
            ]
            return {
                "ven_name": self.ven_name,
                "facility": self.twin.f.spec.name,
                "time": _iso(datetime.now(UTC)),
                "twin_time": site_time(self.twin.time, self.twin.f.spec.site.utc_offset_h),
                "speed": self.clock.speed,
                "link": dict(self.link),
                "reports_sent": self.reports_sent,
                "events": events,
                "decisions": list(self.decisions)[-20:],
                "follow": list(self.follow.values()),
                "history": list(self.history),
            }

    def write_status(self) -> None:
        self._last_status = wall.monotonic()
        if self.state_dir is not None:
            write_json_atomic(Path(self.state_dir) / STATUS, self.status())


def _grid(t0: np.datetime64, t1: np.datetime64, step_s: float) -> np.ndarray:
    """Times from ``t0`` to ``t1`` every ``step_s`` (at least one)."""
    t0 = np.datetime64(t0, "s")
    n = max(1, math.ceil(float((np.datetime64(t1, "s") - t0).astype(float)) / step_s))
    return t0 + (np.arange(n) * step_s).astype("timedelta64[s]")


def _target_json(t: Target) -> dict:
    return {
        "kind": t.kind,
        "depth": t.value if t.kind == "dr" else None,
        "import_mw": t.value / MW if t.kind == "import" else None,
        "start": _iso(t.start),
        "end": _iso(t.end) if t.end else None,
    }


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


__all__ = ["DECISIONS", "STATUS", "Clock", "TwinVen"]
