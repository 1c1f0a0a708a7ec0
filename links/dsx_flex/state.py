"""DSX Flex agent state: feeds, active and scheduled load targets, ramp and breach tracking, persistence.

Target rules (the contract leaves them open; this is the reading the agent follows):

* a target applies to the feeds it names, or to every feed when it names none; an unknown feed, a
  constraint <= 0, below the feed's ``power_minimum`` or above its ``power_maximum`` (the feed's capacity: such a
  constraint would limit nothing, most likely a unit error) refuses the whole event (nothing changes);
* a new target replaces, from its start, every target of the feed that overlaps its interval (an
  earlier target is cut at the new start; later ones inside the interval are dropped); a ``null``
  constraint does the same without adding a target, so the feed reverts to its default;
* a feed's limit at time ``t`` is the constraint of the target whose interval holds ``t``, else its
  ``default_constraint``; targets whose interval has ended are dropped.

Ramp events follow the limit: a lower limit starts a ramp down, which ends when the measured load is
within ``tolerance`` of it; a higher limit starts a ramp up, which ends when the load reaches the limit or
stops rising. A breach is measured load above the active target by more than ``tolerance`` once the
ramp-down time the facility needs (drop / ramp rate + ``grace_s``) has passed: ``active``, then
``escalated`` after ``escalate_s``, ``resolved`` when the load is back within the target or the target is
gone. Severity is ``critical`` when the excess is more than 20 % of the target, else ``warning``.
State (targets, recently seen event ids, power-event start) is saved atomically as JSON.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from factory_twin.links.dsx_flex.protocol import LoadTarget, LoadTargetEvent, RefusedError, iso, power
from factory_twin.models.units import KW, MW
from factory_twin.twin.runs import strict_json
from factory_twin.twin.runs.atomic import write_json_atomic

STATE_FILE = "flex-state.json"
STATUS_FILE = "flex-status.json"  # what the agent shows the dashboard (links.dsx_flex.agent)
FOREVER = "forever"  # FlexState.seen: a signed-data digest whose targets have an open end
CRITICAL_EXCESS = 0.20  # contract: critical when the excess is more than 20 % over the target


@dataclass(frozen=True)
class Feed:
    """A feed in SI: ``share`` of the power at ``meter`` (``"grid"`` or ``"gpu"``) flows through it."""

    tag: str
    minimum_w: float
    maximum_w: float
    default_w: float
    share: float
    meter: str

    def metadata(self) -> dict:
        return {
            "power_minimum": power(self.minimum_w),
            "power_maximum": power(self.maximum_w),
            "default_constraint": power(self.default_w),
        }


def feeds_of(spec) -> tuple[Feed, ...]:
    """Feeds of a facility spec; one feed ``main`` (the whole import, default = import limit) if none."""
    g = spec.grid
    if not g.feeds:
        lim = g.import_limit_mw * MW
        return (Feed("main", 0.0, lim, lim, 1.0, "grid"),)
    n = len(g.feeds)
    return tuple(
        Feed(
            f.tag,
            f.power_minimum_mw * MW,
            f.power_maximum_mw * MW,
            f.default_constraint_mw * MW,
            f.share if f.share is not None else 1.0 / n,
            f.meter,
        )
        for f in g.feeds
    )


@dataclass
class Breach:
    id: str
    detected: datetime
    status: str  # active | escalated
    correlation_id: str
    constraint_w: float


@dataclass
class FeedTrack:
    """Per-feed ramp and breach state."""

    limit_w: float
    phase: str = "steady"  # steady | ramp_down | ramp_up
    ramp_deadline: datetime | None = None
    last_w: float | None = None
    event_start: datetime | None = None
    breach: Breach | None = None
    resolved: Breach | None = None  # the breach last resolved (for its alert)


@dataclass
class FlexState:
    """Targets per feed plus the trackers; :meth:`tick` turns measurements into status and breach events."""

    feeds: tuple[Feed, ...]
    targets: dict[str, list[LoadTarget]] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)  # event id -> ISO time
    tolerance: float = 0.01
    grace_s: float = 120.0
    escalate_s: float = 300.0
    ramp_w_per_s: float = float("inf")  # facility ramp limit, on each feed's share
    tracks: dict[str, FeedTrack] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in self.feeds:
            self.targets.setdefault(f.tag, [])
            self.tracks.setdefault(f.tag, FeedTrack(f.default_w))

    @property
    def feed(self) -> dict[str, Feed]:
        return {f.tag: f for f in self.feeds}

    # ------------------------------------------------------------------ targets
    def apply(self, ev: LoadTargetEvent) -> None:
        """Apply a verified event (rules in the module docstring); raise :class:`RefusedError` changing nothing."""
        feeds = self.feed
        plan: list[tuple[str, LoadTarget]] = []
        for i, t in enumerate(ev.targets):
            tags = t.feeds or tuple(feeds)
            unknown = [x for x in tags if x not in feeds]
            if unknown:
                raise RefusedError(f"targets.{i}.feed_tags: unknown feed(s) {unknown}; feeds: {list(feeds)}")
            for tag in tags:
                c = t.constraint_w
                if c is not None and c <= 0:
                    raise RefusedError(f"targets.{i}.load_constraint: must be > 0, got {c:g} W")
                if c is not None and c < feeds[tag].minimum_w:
                    raise RefusedError(
                        f"targets.{i}.load_constraint: {c / KW:g} kW is below feed {tag!r} power_minimum "
                        f"{feeds[tag].minimum_w / KW:g} kW"
                    )
                if c is not None and c > feeds[tag].maximum_w:  # no limit at all: most likely the wrong unit
                    raise RefusedError(
                        f"targets.{i}.load_constraint: {c / KW:g} kW is above feed {tag!r} power_maximum "
                        f"{feeds[tag].maximum_w / KW:g} kW (a constraint the feed cannot reach limits nothing: "
                        f"check the unit; send null to remove a target)"
                    )
                plan.append((tag, replace(t, feeds=(tag,))))
        for tag, t in plan:
            kept = []
            for old in self.targets[tag]:
                if not _overlaps(old, t.start, t.end):
                    kept.append(old)
                elif old.start < t.start:
                    kept.append(replace(old, end=t.start))
            if t.constraint_w is not None:
                kept.append(t)
            self.targets[tag] = sorted(kept, key=lambda x: x.start)
        self.seen[ev.id] = iso(ev.time)
        if ev.data_digest:  # kept until its last interval ends (FOREVER when one is open-ended)
            ends = [t.end for t in ev.targets]
            self.seen[ev.data_digest] = FOREVER if any(e is None for e in ends) else iso(max(ends))

    def active(self, tag: str, now: datetime) -> LoadTarget | None:
        for t in self.targets[tag]:
            if t.start <= now and (t.end is None or now < t.end):
                return t
        return None

    def limit_w(self, tag: str, now: datetime) -> float:
        t = self.active(tag, now)
        return t.constraint_w if t is not None else self.feed[tag].default_w

    def prune(self, now: datetime, keep_ids_s: float) -> None:
        """Drop ended targets, event ids older than ``keep_ids_s`` (older events are refused as expired) and signed-data
        digests whose intervals have all ended (their data is refused as expired)."""
        for tag in self.targets:
            self.targets[tag] = [t for t in self.targets[tag] if t.end is None or t.end > now]
        cutoff = now - timedelta(seconds=keep_ids_s)
        self.seen = {k: v for k, v in self.seen.items() if _remembered(k, v, now, cutoff)}

    # ------------------------------------------------------------------ events
    @property
    def tol(self) -> float:
        return self.tolerance

    def tick(self, now: datetime, measured_w: dict[str, float]) -> list[tuple[str, str]]:
        """Advance the trackers with the measured load per feed; return ``(feed, event)`` transitions and
        ``(feed, "breach:<status>")`` for breach alerts to publish."""
        out: list[tuple[str, str]] = []
        for f in self.feeds:
            tr, m = self.tracks[f.tag], measured_w[f.tag]
            lim = self.limit_w(f.tag, now)
            target = self.active(f.tag, now)
            if lim < tr.limit_w:
                tr.phase = "ramp_down"
                drop = max(m - lim, 0.0)
                tr.ramp_deadline = now + timedelta(seconds=drop / (self.ramp_w_per_s * f.share) + self.grace_s)
                out.append((f.tag, "start_ramp_down"))
            elif lim > tr.limit_w:
                tr.phase = "ramp_up"
                out.append((f.tag, "start_ramp_up"))
            tr.limit_w = lim
            if tr.phase == "ramp_down" and m <= lim * (1 + self.tolerance):
                tr.phase = "steady"
                out.append((f.tag, "end_ramp_down"))
            elif tr.phase == "ramp_up" and (m >= lim * (1 - self.tol) or _settled(tr.last_w, m, self.tol * lim)):
                tr.phase = "steady"
                out.append((f.tag, "end_ramp_up"))
            if target is not None and tr.event_start is None:
                tr.event_start = now
            elif target is None and tr.phase == "steady":  # over once the ramp back up has ended
                tr.event_start = None
            tr.last_w = m
            out += self._breach(f, tr, target, m, now)
        return out

    def _breach(self, f: Feed, tr: FeedTrack, target: LoadTarget | None, m: float, now: datetime) -> list:
        over = target is not None and m > target.constraint_w * (1 + self.tolerance)
        ramping = tr.phase == "ramp_down" and tr.ramp_deadline is not None and now < tr.ramp_deadline
        b = tr.breach
        if b is None and over and not ramping:
            tr.breach = Breach(str(uuid.uuid4()), now, "active", target.correlation_id, target.constraint_w)
            return [(f.tag, "breach:active")]
        if b is not None and (not over or target.constraint_w != b.constraint_w):
            # back within the target, or the target changed (a breach of a new target starts afresh)
            tr.resolved, tr.breach = b, None
            return [(f.tag, "breach:resolved")]
        if b is not None and b.status == "active" and now - b.detected >= timedelta(seconds=self.escalate_s):
            b.status = "escalated"
            return [(f.tag, "breach:escalated")]
        return []

    def compliant(self, tag: str, now: datetime, measured_w: float) -> bool:
        t = self.active(tag, now)
        tr = self.tracks[tag]
        within = measured_w <= t.constraint_w * (1 + self.tolerance) if t is not None else True
        return t is None or (tr.breach is None and (within or tr.phase == "ramp_down"))

    # ------------------------------------------------------------------ messages
    def status_data(self, now: datetime, measured_w: dict, planned_w: dict, events: dict[str, str]) -> dict:
        """``PowerStateStatusData`` with each feed's ``event`` (``periodic`` unless given)."""
        feeds = {}
        for f in self.feeds:
            tr = self.tracks[f.tag]
            state = {
                "metadata": f.metadata(),
                "targets": [
                    {
                        "active": t.start <= now and (t.end is None or now < t.end),
                        "load_constraint": power(t.constraint_w),
                        "interval": {"start_time": iso(t.start)} | ({"end_time": iso(t.end)} if t.end else {}),
                        "strategy": {"best_effort": t.best_effort},
                        "correlation_id": t.correlation_id,
                    }
                    for t in self.targets[f.tag]
                ],
                "calculated_load": power(planned_w[f.tag]),
                "in_flight": tr.phase != "steady",
                "event": events.get(f.tag, "periodic"),
                "compliant": self.compliant(f.tag, now, measured_w[f.tag]),
            }
            if tr.event_start is not None:
                state["power_event_start_time"] = iso(tr.event_start)
            feeds[f.tag] = state
        return {"snapshot_time": iso(now), "feeds": feeds}

    def breach_data(self, tag: str, status: str, now: datetime, measured_w: float, hints: list[dict]) -> dict:
        """``PowerBreachAlertData`` for the feed's current (or just resolved) breach."""
        tr = self.tracks[tag]
        b = tr.resolved if status == "resolved" else tr.breach
        excess = measured_w / b.constraint_w - 1.0
        data = {
            "feed_tag": tag,
            "status": status,
            "severity": "critical" if excess > CRITICAL_EXCESS else "warning",
            "breach": {"breach_id": b.id, "detected_at": iso(b.detected)},
            "target": {"correlation_id": b.correlation_id, "load_constraint": power(b.constraint_w)},
            "measured_load": power(measured_w),
            "infrastructure_actions": [],
        }
        if status == "resolved":
            data["breach"]["resolved_at"] = iso(now)
        else:
            data["shed_hints"] = hints
            if status == "escalated":
                critical = excess > CRITICAL_EXCESS
                data["infrastructure_actions"] = ["SHUTDOWN_NODES"] + (["SHUTDOWN_RACKS"] if critical else [])
        return data

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> dict:
        return {
            "version": 1,
            "targets": {tag: [_target_json(t) for t in ts] for tag, ts in self.targets.items()},
            "seen": self.seen,
            "event_start": {k: iso(v.event_start) for k, v in self.tracks.items() if v.event_start},
        }

    def save(self, folder: Path, doc: dict | None = None) -> None:
        """Write ``flex-state.json`` atomically (:func:`write_json_atomic`); ``doc``: :meth:`to_json`, if at hand."""
        write_json_atomic(Path(folder) / STATE_FILE, doc if doc is not None else self.to_json())

    def load(self, folder: Path) -> bool:
        """Reload saved targets for the feeds that still exist; False when there is no saved state."""
        p = Path(folder) / STATE_FILE
        if not p.is_file():
            return False
        raw = strict_json.loads(p.read_text(encoding="utf-8"))
        if raw.get("version") != 1:
            raise ValueError(f"{p}: unknown state version {raw.get('version')!r}")
        for tag, ts in raw["targets"].items():
            if tag in self.targets:
                self.targets[tag] = [_target_from_json(t) for t in ts]
        self.seen = dict(raw.get("seen", {}))
        for tag, t in raw.get("event_start", {}).items():
            if tag in self.tracks:
                self.tracks[tag].event_start = datetime.fromisoformat(t)
        return True


def _settled(last: float | None, now: float, band: float) -> bool:
    return last is not None and abs(now - last) <= band


def _overlaps(t: LoadTarget, start: datetime, end: datetime | None) -> bool:
    return (end is None or t.start < end) and (t.end is None or t.end > start)


def _target_json(t: LoadTarget) -> dict:
    d = asdict(t)
    d["start"] = iso(t.start)
    d["end"] = iso(t.end) if t.end else None
    return d


def _target_from_json(d: dict) -> LoadTarget:
    return LoadTarget(
        tuple(d["feeds"]),
        d["constraint_w"],
        datetime.fromisoformat(d["start"]),
        datetime.fromisoformat(d["end"]) if d["end"] else None,
        bool(d["best_effort"]),
        d["correlation_id"],
        d["event_id"],
    )


def _remembered(key: str, value: str, now: datetime, cutoff: datetime) -> bool:
    """Keep an event id seen after ``cutoff``, a signed-data digest until its intervals end (``FOREVER``: never)."""
    if key.startswith("jws:"):
        return value == FOREVER or datetime.fromisoformat(value) > now
    return datetime.fromisoformat(value) >= cutoff
