"""Live runner: the twin advancing in accelerated time, steered by commands, seen by snapshots.

The runner owns a :class:`twin.simulation.engine.Twin` (built in its own process by :func:`start_runner`)
and advances it at ``speed`` simulated seconds per wall second. Readers never touch the twin:
every ``publish_s`` wall seconds the runner writes one immutable snapshot,
``<folder>/snapshot.npz`` (numpy arrays plus a JSON ``meta`` string, read with
``allow_pickle=False``), to a temporary file first and then ``os.replace`` onto the final name,
so a reader sees either the previous or the next snapshot, whole.

Operators steer through JSON files dropped atomically into ``<folder>/commands/``
(:func:`send_command`). The runner validates each one on receipt (:func:`parse_command`),
applies it between plant steps and reports the outcome in the next snapshot's
``meta["messages"]``. Commands (``kind`` and fields)::

    dr_event         depth (0-1], duration_min, ramp_min, notice_min   starts after the notice
    clear_dr_events
    import_limit     import_limit_mw > 0                                a what-if: wins over every other limit
    ambient_offset   offset_k in [-30, 30]
    workload         workload_class, level [0, 1]                       constant utilization
    open_element     element                                            what-if: lose a feed (path)
    close_element    element                                            reset a tripped breaker, restore a feed
    speed            speed > 0                                          simulated s per wall s
    resource_group   group; priority [0, 2^31-1], guarantee_w, max_w     a resource group at run time (at least one
                     [W per GPU]                                        of the three; :data:`STEERING_KINDS`)
    power_policy     policy: MaxP | MaxQ | MaxLPS                       the power policy bundle in force
    pause | resume | replan

The resource groups and the policy bundle in force start as the facility's ``[steering]``
(:func:`twin.facility.resource_groups.resource_groups`, then ``steering`` commands given at start:
``factory-twin dashboard --policy/--group``); a change is checked as the facility file is
(:meth:`~twin.facility.resource_groups.ResourceGroups.updated`): a refused one leaves them as they were. The twin
itself does not steer per GPU: the groups drive what the Power page's steering panel allocates
(:mod:`dashboard.steering_panel`).

A snapshot's ``meta`` follows :class:`SnapshotMeta`; ``meta["import_limit"]`` is the import limit in force and
its source (what-if, grid signals, scenario, contract or grid target: :mod:`twin.scenario.scenario`);
``meta["steering"]`` (twins of a facility with steering) the groups in force: ``{"policy": ..., "groups":
[{"name", "priority", "guarantee_w", "max_w"}, ...]}`` [W per GPU; ``null``: the rack type's default, the minimum cap
and TDP]; ``meta["now"]`` holds every meter of
:mod:`factory_twin.twin.simulation.meters` over the latest plant step plus :data:`RUNNER_SERIES` (``None`` before
the first step). Snapshot arrays: ``hist_<name>`` the rolling history of the same quantities (default
24 h at 1 min, oldest first, ``hist_time`` in s since the epoch, local time); ``rack_*`` per-rack layout
and present state (``rack_gpu_power_w`` the mean draw per GPU, ``rack_gpu_demand_w_per_gpu`` what the same work
would draw per GPU at no cap: :class:`~twin.simulation.engine.Twin`); ``cdu_*`` per CDU; ``rack_hist_*``
[record, rack] recent per-rack history (float32);
``el_*`` the one-line diagram (elements, edges, ratings, present load, loading, headroom, open or closed) and
``el_hist_*`` [record, element] its recent loads, ``meta["power_events"]`` its latest events (trips, opened paths,
dark racks); ``plan_*`` the controller's latest plan (its :class:`~twin.simulation.controllers.ControlPlan`, when
it plans); ``dr_ahead_*`` the DR target ahead (:meth:`LiveRunner.dr_ahead`). DR baselines and targets, in the
history, the events of ``meta`` and ahead, are those of :mod:`twin.simulation.targets` (one definition).
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import signal
import time as wall
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np
from factory_twin.models import checks
from factory_twin.models.units import KW, MW, S_PER_MIN
from factory_twin.twin.facility.steering_spec import POLICIES, PRIORITY_MAX
from factory_twin.twin.runs import strict_json
from factory_twin.twin.runs.atomic import write_atomic
from factory_twin.twin.simulation import meters, targets
from factory_twin.twin.simulation.meters import IntervalMean, PlantStepResult, Reading
from numpy.typing import NDArray

if TYPE_CHECKING:  # the facility's assembly is heavy to import: loaded where groups are built (LiveRunner)
    from factory_twin.twin.facility.resource_groups import ResourceGroups

SNAPSHOT = "snapshot.npz"
RUNNER_ERROR = "runner-error.txt"  # why the runner process stopped, written by it before it exits
COMMANDS = "commands"

# series the runner adds to the meters (units MW): the controller's plan
RUNNER_SERIES = ("plan_mw",)
HISTORY = (*meters.METERS, *RUNNER_SERIES)
RACK_HISTORY = ("die_temp_c", "gpu_power_w", "gpu_cap_w")

# kind -> {field: (lo, hi, lo_open)}; bounds are sanity limits for operator input
COMMAND_BOUNDS: dict[str, dict[str, tuple[float, float, bool]]] = {
    "dr_event": {
        "depth": (0.0, 1.0, True),
        "duration_min": (0.0, 1440.0, True),
        "ramp_min": (0.0, 1440.0, False),
        "notice_min": (0.0, 1440.0, False),
    },
    "import_limit": {"import_limit_mw": (0.0, 1e5, True)},
    "ambient_offset": {"offset_k": (-30.0, 30.0, False)},
    "workload": {"level": (0.0, 1.0, False)},
    "speed": {"speed": (0.0, 86400.0, True)},
}
ELEMENT_KINDS = ("open_element", "close_element")  # commands naming an element of the one-line diagram
# resource groups and the policy bundle at run time (module docstring); per-GPU fields [W per GPU]: sanity limits as
# COMMAND_BOUNDS (the largest TDP of data/racks.toml is under 2.5 kW)
STEERING_KINDS = ("resource_group", "power_policy")
GROUP_BOUNDS: dict[str, tuple[float, float, bool]] = {"guarantee_w": (0.0, 1e4, False), "max_w": (0.0, 1e4, True)}
GROUP_FIELDS = ("priority", *GROUP_BOUNDS)
KINDS = (*COMMAND_BOUNDS, *ELEMENT_KINDS, *STEERING_KINDS, "clear_dr_events", "pause", "resume", "replan")
POWER_EVENTS = 50  # the one-line diagram's latest events in a snapshot


def parse_command(
    raw: Mapping[str, Any],
    class_names: tuple[str, ...] | None = None,
    element_names: Mapping[str, int] | None = None,
    group_names: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Validate an operator command; return it with numeric fields as floats (``priority`` an int).

    Raises ``ValueError`` naming the field for an unknown kind, a missing or unknown field, text
    where a number is expected, or a value out of range (bounds in ``COMMAND_BOUNDS`` and ``GROUP_BOUNDS``;
    ``dr_event.ramp_min`` must not exceed ``duration_min``; a ``resource_group`` changes at least one of
    ``GROUP_FIELDS``, its guarantee not above its maximum). ``class_names``, when given,
    restricts ``workload.workload_class``; ``element_names``, the ``element`` of ``open_element``/``close_element``;
    ``group_names``, the ``group`` of ``resource_group``.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(f"command: must be a JSON object, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    allowed = {
        "kind",
        "id",
        *COMMAND_BOUNDS.get(kind, {}),
        *(("workload_class",) if kind == "workload" else ()),
        *(("element",) if kind in ELEMENT_KINDS else ()),
        *(("group", *GROUP_FIELDS) if kind == "resource_group" else ()),
        *(("policy",) if kind == "power_policy" else ()),
    }
    extra = sorted(set(raw) - allowed)
    if extra:
        raise ValueError(f"{kind}: unknown field(s) {extra}; expected {sorted(allowed - {'kind', 'id'})}")
    out: dict[str, Any] = {"kind": kind, "id": str(raw.get("id") or uuid.uuid4().hex[:12])}
    for name, bounds in COMMAND_BOUNDS.get(kind, {}).items():
        if _missing(raw, name):
            raise ValueError(f"{name}: required")
        out[name] = _number(name, raw[name], *bounds)
    if kind == "dr_event" and out["ramp_min"] > out["duration_min"]:
        raise ValueError(f"ramp_min: {out['ramp_min']:g} min is longer than duration_min {out['duration_min']:g} min")
    if kind == "workload":
        cls = raw.get("workload_class")
        if not isinstance(cls, str) or (class_names is not None and cls not in class_names):
            known = f" (one of {list(class_names)})" if class_names is not None else ""
            raise ValueError(f"workload_class: unknown workload class {cls!r}{known}")
        out["workload_class"] = cls
    if kind in ELEMENT_KINDS:
        el = raw.get("element")
        known = element_names is None or el in element_names
        if not isinstance(el, str) or not el or len(el) > 200 or not known:
            raise ValueError(f"element: no element {el!r} in the facility's one-line diagram")
        out["element"] = el
    if kind in STEERING_KINDS:
        out |= _parse_steering(kind, raw, group_names)
    return out


def _missing(raw: Mapping[str, Any], name: str) -> bool:
    return name not in raw or raw[name] is None or (isinstance(raw[name], str) and not raw[name].strip())


def _number(name: str, value: Any, lo: float, hi: float, lo_open: bool) -> float:
    """``value`` (a number or its text) as a finite float within ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``)."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number, got {value!r}") from None
    x = float(checks.positive(name, x) if lo_open and lo == 0 else checks.finite(name, x))
    checks.in_range(name, x, lo, hi)
    return x


def _parse_steering(kind: str, raw: Mapping[str, Any], group_names: tuple[str, ...] | None) -> dict[str, Any]:
    """The fields of a ``resource_group`` or ``power_policy`` command (:func:`parse_command`)."""
    if kind == "power_policy":
        if raw.get("policy") not in POLICIES:
            raise ValueError(f"policy: one of {', '.join(POLICIES)}, got {raw.get('policy')!r}")
        return {"policy": raw["policy"]}
    name = raw.get("group")
    if not isinstance(name, str) or not name or len(name) > 64 or (group_names is not None and name not in group_names):
        known = f"; groups: {', '.join(group_names)}" if group_names is not None else ""
        raise ValueError(f"group: no resource group named {name!r}{known}")
    out: dict[str, Any] = {"group": name}
    given = [k for k in GROUP_FIELDS if not _missing(raw, k)]
    if not given:
        raise ValueError(f"resource_group: give at least one of {', '.join(GROUP_FIELDS)}")
    if "priority" in given:
        p = raw["priority"]
        if isinstance(p, str):
            p = p.strip()
        try:
            whole = not isinstance(p, bool) and (isinstance(p, int) or float(p) == int(float(p)))
        except (TypeError, ValueError, OverflowError):
            whole = False
        if not whole:
            raise ValueError(f"priority: must be a whole number (lower first), got {raw['priority']!r}")
        out["priority"] = int(float(p)) if not isinstance(p, int) else p
        if not 0 <= out["priority"] <= PRIORITY_MAX:
            raise ValueError(f"priority: must be within [0, {PRIORITY_MAX}] (lower first), got {out['priority']}")
    for k in GROUP_BOUNDS:
        if k in given:
            out[k] = _number(f"{k} [W per GPU]", raw[k], *GROUP_BOUNDS[k])
    if "guarantee_w" in out and "max_w" in out and out["guarantee_w"] > out["max_w"]:
        raise ValueError(f"guarantee_w: {out['guarantee_w']:g} W per GPU is above max_w {out['max_w']:g} W per GPU")
    return out


def steering_change(groups: ResourceGroups, cmd: Mapping[str, Any]) -> tuple[ResourceGroups, str]:
    """``groups`` with a parsed ``resource_group`` or ``power_policy`` command applied, and what was done;
    ``ValueError`` naming the field (:meth:`ResourceGroups.updated`) when the change is refused."""
    if cmd["kind"] == "power_policy":
        return groups.with_policy(cmd["policy"]), f"power policy {cmd['policy']} (was {groups.policy})"
    fields = {k: cmd[k] for k in GROUP_FIELDS if k in cmd}
    new = groups.updated(cmd["group"], **fields)
    g = groups.index(cmd["group"])
    was = {"priority": groups.priority[g], "guarantee_w": groups.guarantee_w[g], "max_w": groups.max_w[g]}
    label = {"priority": ("priority", ""), "guarantee_w": ("guarantee", " W/GPU"), "max_w": ("max", " W/GPU")}
    said = ", ".join(
        f"{label[k][0]} {v:g}{label[k][1]} (was {'default' if np.isnan(was[k]) else f'{was[k]:g}'})"
        for k, v in fields.items()
    )
    return new, f"resource group {cmd['group']}: {said}"


def start_groups(f: Any, steering: Sequence[Mapping[str, Any]] = ()) -> ResourceGroups | None:
    """The groups a runner of facility ``f`` starts with: its ``[steering]`` with the ``steering`` commands applied
    (``ValueError`` "<command id>: <field>: ..." for the first refused); ``None`` for a facility without steering."""
    if getattr(f.spec, "steering", None) is None:
        if steering:
            raise ValueError(f"steering: facility {f.spec.name!r} has no resource groups")
        return None
    from factory_twin.twin.facility.resource_groups import resource_groups

    groups = resource_groups(f)
    for raw in steering:
        try:
            groups, _ = steering_change(groups, parse_command(raw, group_names=groups.names))
        except ValueError as e:
            raise ValueError(f"{raw.get('id') or raw.get('kind')}: {e}") from None
    return groups


def steering_meta(groups: ResourceGroups) -> dict[str, Any]:
    """``meta["steering"]`` (module docstring): the policy and every group's settings, ``None`` for a default."""

    def w(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    return {
        "policy": groups.policy,
        "groups": [
            {"name": n, "priority": int(groups.priority[i]), "guarantee_w": w(groups.guarantee_w[i]),
             "max_w": w(groups.max_w[i])}
            for i, n in enumerate(groups.names)
        ],
    }  # fmt: skip


def send_command(folder: str | Path, raw: Mapping[str, Any]) -> str:
    """Validate ``raw`` and drop it atomically into ``<folder>/commands``; return the command id."""
    cmd = parse_command(raw)
    d = Path(folder) / COMMANDS
    d.mkdir(parents=True, exist_ok=True)
    name = f"{wall.time_ns():020d}-{cmd['id']}.json"
    payload = strict_json.dumps(cmd).encode()
    write_atomic(d / name, lambda fh: fh.write(payload))
    return cmd["id"]


# ---------------------------------------------------------------------------------------- snapshots
class DREventInfo(TypedDict):
    """A DR event and its own target at ``at`` (:func:`twin.simulation.targets.event_targets_at`: the end of its
    ramp, the present time while it holds, its last second once over)."""

    start: str
    end: str
    depth: float
    ramp_min: float
    notice_min: float
    at: str
    baseline_mw: float  # the DR baseline at ``at``: the counterfactual uncapped import
    target_mw: float  # (1 - depth) x baseline
    binding: bool  # no tighter overlapping event at ``at``


class Message(TypedDict):
    id: str
    kind: str
    ok: bool
    text: str
    time: str


class ImportLimitInfo(TypedDict):
    """The import limit in force at the snapshot's time and where it comes from."""

    mw: float
    source: str  # twin.scenario.scenario.IMPORT_LIMIT_SOURCES or GRID_TARGET


class Loops(TypedDict):
    """Loop constants of the facility (temperatures are meters, in ``now``)."""

    fws_setpoint_c: float
    tcs_setpoint_c: float
    tcs_v_dot_m3_s: float
    fws_v_dot_m3_s: float
    pump_w: float


class PowerEvent(TypedDict):
    """One event of the one-line diagram (twin.simulation.paths.PathEvent)."""

    time: str
    kind: str
    element: str
    detail: str
    racks: int


class SnapshotMeta(TypedDict):
    """The JSON part of a snapshot."""

    seq: int
    wall_time: float
    time: str  # simulated local time, ISO seconds
    facility: str
    scenario: str
    controller: str
    speed: float
    achieved_speed: float
    paused: bool
    plant_step_s: float
    record_s: float
    class_names: list[str]
    hall_names: list[str]
    currency: str
    offset_k: float
    workload: dict[str, float | None]  # constant utilization per class, None when profiled
    now: dict[str, float] | None  # HISTORY names -> value over the latest plant step
    import_limit: ImportLimitInfo
    plant_mode: int  # index into twin.simulation.plant.MODES
    dr_events: list[DREventInfo]
    messages: list[Message]
    loops: Loops
    power_events: NotRequired[list[PowerEvent]]  # the one-line diagram's latest events (twins with paths)
    steering: NotRequired[dict[str, Any]]  # the resource groups and policy in force (module docstring)


@dataclass(frozen=True)
class Snapshot:
    """One published state: ``meta`` (:class:`SnapshotMeta`) and named numpy arrays (read-only)."""

    meta: SnapshotMeta
    arrays: Mapping[str, NDArray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> NDArray:
        return self.arrays[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.arrays.get(name, default)


def write_snapshot(path: str | Path, snap: Snapshot) -> None:
    """Write ``snap`` as an uncompressed npz to a temporary file, then rename onto ``path``."""
    meta = np.array(json.dumps(snap.meta))
    write_atomic(path, lambda fh: np.savez(fh, meta=meta, **snap.arrays))


def load_snapshot(path: str | Path, rack_history: bool = False) -> Snapshot | None:
    """Read a snapshot (no pickle); ``None`` before the first. ``rack_hist_*`` only on request."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta" and (rack_history or not k.startswith("rack_hist_"))}
    except FileNotFoundError:
        return None
    for a in arrays.values():
        a.flags.writeable = False
    return Snapshot(meta, arrays)


# ---------------------------------------------------------------------------------------- runner
def _epoch_s(t: np.datetime64) -> int:
    return int(np.datetime64(t, "s").astype(np.int64))


class LiveRunner:
    """Advance ``twin`` in accelerated time, apply commands, publish snapshots into ``folder``.

    Parameters
    ----------
    twin : twin.simulation.engine.Twin
        The twin to run (its ``controller`` is called by the engine; ``replan`` forces a call).
    folder : path
        Where ``snapshot.npz`` is written and ``commands/`` is read.
    speed : float
        Simulated seconds per wall second [-].
    controller_name : str
        Shown in the dashboard.
    record_s : float
        Interval of the campus history [s] (default 60 s).
    history_s : float
        Length of the campus history [s] (default 24 h).
    rack_history : int
        Records of per-rack history kept for the rack detail panel (default 60).
    publish_s : float
        Wall time between snapshots [s].
    steering : sequence of mappings
        ``resource_group``/``power_policy`` commands applied at the start, over the facility's ``[steering]``
        (``ValueError`` naming the field when one is refused).
    """

    def __init__(
        self,
        twin: Any,
        folder: str | Path,
        speed: float = 60.0,
        controller_name: str = "",
        record_s: float = 60.0,
        history_s: float = 86400.0,
        rack_history: int = 60,
        publish_s: float = 0.5,
        steering: Sequence[Mapping[str, Any]] = (),
    ):
        self.twin, self.folder = twin, Path(folder)
        self.speed = float(checks.positive("speed", speed))
        self.controller_name = controller_name
        per = checks.positive("record_s", record_s) / twin.plant_dt
        if abs(per - round(per)) > 1e-9:
            raise ValueError(f"record_s: {record_s:g} s must be a whole multiple of the plant step")
        self.per_record = round(per)
        self.record_s = float(record_s)
        n_hist = int(history_s // record_s)
        f = twin.f
        self.hist_time = deque(maxlen=n_hist)
        self.hist: dict[str, deque[float]] = {k: deque(maxlen=n_hist) for k in HISTORY}
        self.rack_hist_time = deque(maxlen=rack_history)
        self.rack_hist = {k: deque(maxlen=rack_history) for k in RACK_HISTORY}
        self.el_hist: deque[NDArray] = deque(maxlen=rack_history)  # load of every element of the diagram [kW]
        self.publish_s = float(publish_s)
        self.paused = False
        self.messages: deque[Message] = deque(maxlen=20)
        self._ahead: tuple[Any, int, dict[str, NDArray]] | None = None  # (scenario, record, DR target ahead)
        self._plan_seen: object = None  # the controller's latest plan already checked for shortfalls
        self._shortfall = ""  # the limits last reported short (a change of them is logged once)
        self.seq = 0
        self.achieved_speed = 0.0
        self.interval = IntervalMean(f.n_racks)
        self._last: PlantStepResult | None = None
        self.groups = start_groups(f, steering)
        (self.folder / COMMANDS).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ stepping and recording
    def step(self) -> None:
        """One plant step of the twin, accumulated into the next history record."""
        r = self.twin.advance()
        self._last = r
        self._check_plan()
        self.interval.add(r, self.twin.gpu_power_w)
        if self.interval.count >= self.per_record:
            self._record()

    def _check_plan(self) -> None:
        """Log, as an error, the limits a new plan of the controller says it cannot meet (its
        ``conflicts`` and ``violations`` attributes), once for each change of which limits are short."""
        plan = self.twin.controller.plan
        if plan is None or plan is self._plan_seen:
            return
        self._plan_seen = plan
        short = "; ".join(x for x in (plan.conflicts, plan.violations) if x)
        limits = ", ".join(part.split(": ")[0] for part in short.split("; ")) if short else ""
        if limits and limits != self._shortfall:  # the same limits short again at the next re-plan: no new entry
            self._message("plan", "plan", False, f"the plan cannot meet every target: {short}")
        self._shortfall = limits

    def _values(self, step: PlantStepResult) -> dict[str, float]:
        """Every meter for ``step`` at the twin's present time, plus the runner's own series."""
        tw = self.twin
        return {**meters.read(Reading.of(step, tw)), "plan_mw": self._plan_at(tw.time)}

    def _record(self) -> None:
        tw = self.twin
        row = self._values(self.interval.mean())
        self.hist_time.append(_epoch_s(tw.time))
        for k in HISTORY:
            self.hist[k].append(float(row[k]))
        self.rack_hist_time.append(_epoch_s(tw.time))
        self.rack_hist["die_temp_c"].append(np.asarray(tw.t_die, np.float32).copy())
        self.rack_hist["gpu_power_w"].append(self.interval.gpu_power_w().astype(np.float32))
        self.rack_hist["gpu_cap_w"].append(np.asarray(tw.cap, np.float32).copy())
        mean = self.interval.mean()
        if mean.tier_in_w is not None:
            self.el_hist.append((mean.tier_in_w / KW).astype(np.float32))
        self.interval.reset()

    def dr_ahead(self) -> dict[str, NDArray]:
        """The DR target from now to the end of the last event, one point per record (at most the history's
        length): ``dr_ahead_time`` [s since the epoch], ``dr_ahead_target_mw`` (NaN outside events). Worked out
        again when the scenario changes or a record is made."""
        tw = self.twin
        key = (tw.scenario, len(self.hist_time) and self.hist_time[-1])
        if self._ahead is not None and self._ahead[:2] == key:
            return self._ahead[2]
        t = np.empty(0, "datetime64[s]")
        if tw.scenario.dr_events:
            end = max(ev.end for ev in tw.scenario.dr_events)
            step = np.timedelta64(round(self.record_s), "s")
            n = min(int((end - tw.time) // step) + 1, self.hist_time.maxlen or 0) if end > tw.time else 0
            t = np.datetime64(tw.time, "s") + step * np.arange(n)
        _, _, target = targets.dr_over(tw.scenario, tw.dr_baseline_mw, t)
        out = {"dr_ahead_time": t.astype(np.int64), "dr_ahead_target_mw": target}
        self._ahead = (*key, out)
        return out

    def _plan(self) -> tuple[NDArray, NDArray] | None:
        """(step starts [s since the epoch], planned import [MW]) of the controller's plan, None without one."""
        plan = self.twin.controller.plan
        if plan is None:
            return None
        return np.asarray(plan.times, "datetime64[s]").astype(np.int64), plan.grid_import_w / MW

    def _plan_at(self, t: np.datetime64) -> float:
        p = self._plan()
        if p is None or p[0].size == 0:
            return math.nan
        i = int(np.searchsorted(p[0], _epoch_s(t), side="right")) - 1
        return float(p[1][i]) if 0 <= i < p[0].size else math.nan

    # ------------------------------------------------------------------ commands
    def poll_commands(self) -> int:
        """Apply every command file waiting in ``commands/`` (oldest first); return how many."""
        d = self.folder / COMMANDS
        files = sorted(p for p in d.glob("*.json"))
        for p in files:
            try:
                raw = strict_json.loads(p.read_bytes())  # no NaN or infinite numbers
            except (OSError, ValueError) as e:
                self._message(p.stem, "?", False, f"unreadable command file: {e}")
                raw = None
            finally:
                with contextlib.suppress(OSError):
                    p.unlink()
            if raw is not None:
                self.apply(raw)
        return len(files)

    def apply(self, raw: Mapping[str, Any]) -> bool:
        """Validate and apply one command; record the outcome; never raises on bad input."""
        cid = str(raw.get("id", "?")) if isinstance(raw, Mapping) else "?"
        kind = raw.get("kind", "?") if isinstance(raw, Mapping) else "?"
        try:
            topo = getattr(self.twin.f, "topology", None)
            names = self.groups.names if self.groups is not None else ()
            cmd = parse_command(raw, tuple(self.twin.f.class_names), topo.index if topo is not None else {}, names)
            ok, text = self._apply(cmd)
        except ValueError as e:
            self._message(cid, kind, False, str(e))
            return False
        self._message(cmd["id"], kind, ok, text)
        return True

    def _apply(self, c: dict[str, Any]) -> tuple[bool, str]:
        """Apply a parsed command: (whether it will take effect as asked, what was done)."""
        from factory_twin.twin.scenario.grid_signals import DREvent

        tw, kind, ok = self.twin, c["kind"], True
        sc = tw.scenario
        if kind == "dr_event":
            start = tw.time + np.timedelta64(round(c["notice_min"] * S_PER_MIN), "s")
            ev = DREvent(
                start, c["duration_min"] * S_PER_MIN, c["depth"], c["ramp_min"] * S_PER_MIN, c["notice_min"] * S_PER_MIN
            )
            tw.scenario = sc.with_changes(dr_events=(*sc.dr_events, ev))
            text = f"DR event {c['depth']:.0%} from {start} for {c['duration_min']:g} min (ramp {c['ramp_min']:g} min)"
            if not tw.controller.replans:  # a controller that does not re-plan ignores it
                ok, text = False, f"{text}: the {self.controller_name or 'running'} controller ignores DR events"
        elif kind == "clear_dr_events":
            tw.scenario = sc.with_changes(dr_events=())
            text = "DR events cleared"
        elif kind == "import_limit":
            was = sc.import_limit_in_force.describe()
            tw.scenario = sc.with_changes(what_if_import_limit_mw=c["import_limit_mw"])
            text = f"import limit {c['import_limit_mw']:g} MW (what-if, in force; was {was})"
            if not tw.controller.replans:  # recorded and alarmed on, but the caps do not follow it
                ok, text = False, f"{text}: the {self.controller_name or 'running'} controller does not follow it"
        elif kind == "ambient_offset":
            tw.scenario = sc.with_changes(offset_k=c["offset_k"])
            text = f"ambient offset {c['offset_k']:+g} K"
        elif kind == "workload":
            from factory_twin.twin.scenario.scenario import WorkloadProfile

            cls = c["workload_class"]
            old = sc.workload.get(cls, WorkloadProfile())
            new = old.model_copy(update={"profile": "constant", "level": c["level"]})
            tw.scenario = sc.with_changes(workload={**sc.workload, cls: new})
            text = f"{cls} utilization {c['level']:.0%}"
        elif kind in ELEMENT_KINDS:
            f, busy = tw.f, tw.f.gpus * np.stack([sc.utilization(c, np.array([tw.time]))[0] for c in tw.f.class_names])[
                tw.f.rack_class]  # fmt: skip
            if kind == "open_element":
                tw.paths.open(c["element"], tw.time, "opened by the operator (what-if)", f.gpus, busy)
                text = f"{c['element']} opened (what-if)"
            else:
                tw.paths.close(c["element"], tw.time, "closed by the operator", f.gpus, busy)
                text = f"{c['element']} closed"
        elif kind in STEERING_KINDS:
            if self.groups is None:
                raise ValueError(f"{kind}: facility {tw.f.spec.name!r} has no resource groups")
            self.groups, text = steering_change(self.groups, c)  # refused: ValueError, the groups unchanged
            return ok, text
        elif kind == "speed":
            self.speed = c["speed"]
            return ok, f"speed {self.speed:g}x"
        elif kind in ("pause", "resume"):
            self.paused = kind == "pause"
            return ok, "paused" if self.paused else "resumed"
        else:
            text = "re-plan requested"
        self.request_control()
        return ok, text

    def request_control(self) -> None:
        """Have the engine call the controller at the next plant step (what-ifs reach it at once;
        controllers read the changed scenario from ``state.scenario``)."""
        self.twin.request_control()

    def _message(self, cid: str, kind: str, ok: bool, text: str) -> None:
        time = str(np.datetime64(self.twin.time, "s"))
        self.messages.append(Message(id=cid, kind=kind, ok=ok, text=text, time=time))

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> Snapshot:
        """The present state, the rolling histories and the plan as a :class:`Snapshot`."""
        tw, f = self.twin, self.twin.f
        sc, cool = tw.scenario, f.spec.cooling
        limit_mw, limit_source = sc.import_limit_now(tw.time)
        own = targets.event_targets_at(sc.dr_events, tw.dr_baseline_mw, tw.time)
        events = [
            DREventInfo(
                start=str(ev.start),
                end=str(ev.end),
                depth=float(ev.depth),
                ramp_min=ev.ramp_s / S_PER_MIN,
                notice_min=ev.notice_s / S_PER_MIN,
                at=str(et.time),
                baseline_mw=et.baseline_mw,
                target_mw=et.target_mw,
                binding=et.binding,
            )
            for ev, et in zip(sc.dr_events, own, strict=True)
        ]
        meta = SnapshotMeta(
            seq=self.seq,
            wall_time=wall.time(),
            time=str(np.datetime64(tw.time, "s")),
            facility=f.spec.name,
            scenario=sc.name,
            controller=self.controller_name,
            speed=self.speed,
            achieved_speed=self.achieved_speed,
            paused=self.paused,
            plant_step_s=tw.plant_dt,
            record_s=self.record_s,
            class_names=list(f.class_names),
            hall_names=list(f.hall_names),
            currency=sc.signals.currency,
            offset_k=float(sc.offset_k),
            workload={
                c: sc.workload[c].level if c in sc.workload and sc.workload[c].profile == "constant" else None
                for c in f.class_names
            },
            now=self._values(self._last) if self._last is not None else None,
            import_limit=ImportLimitInfo(mw=limit_mw, source=limit_source),
            plant_mode=int(tw.rejection.mode),
            dr_events=events,
            messages=list(self.messages),
            loops=Loops(
                fws_setpoint_c=float(cool.facility_water.supply_setpoint_c),
                tcs_setpoint_c=float(cool.tcs.supply_setpoint_c),
                tcs_v_dot_m3_s=float(np.sum(f.tcs_v_dot_m3_s)),
                fws_v_dot_m3_s=float(tw.fws_v_dot),
                pump_w=float(tw.plant.pump_w),
            ),
        )
        a: dict[str, NDArray] = {
            "hist_time": np.array(self.hist_time, np.int64),
            **{f"hist_{k}": np.array(self.hist[k], float) for k in HISTORY},
            "rack_hall": f.rack_hall,
            "rack_row": f.rack_row,
            "rack_slot": f.rack_slot,
            "rack_cdu": f.rack_cdu,
            "rack_class": f.rack_class,
            "rack_gpus": f.gpus,
            "rack_tdp_w": f.tdp_w,
            "rack_t_max_c": f.t_max_c,
            "rack_die_temp_c": np.asarray(tw.t_die, float),
            "rack_gpu_power_w": np.asarray(tw.gpu_power_w, float),
            "rack_gpu_demand_w_per_gpu": np.asarray(tw.gpu_demand_w, float),
            "rack_gpu_energy_j": np.asarray(tw.gpu_energy_j, float),
            "rack_gpu_cap_w": np.asarray(tw.cap, float),
            "rack_throttled": np.asarray(tw.throttled, bool),
            "cdu_hall": f.cdu_hall,
            "cdu_tcs_supply_c": np.asarray(tw.tcs_supply_c, float),
            "cdu_tcs_return_c": np.asarray(tw.tcs_return_c, float),
            "cdu_at_capacity": np.asarray(tw.cdu_at_capacity, bool),
            "cdu_q_w": np.asarray(tw.cdu_q_w, float),
            "cdu_design_q_w": np.asarray(f.cdu_design_q_w, float),
            "rack_hist_time": np.array(self.rack_hist_time, np.int64),
        }
        n = len(self.rack_hist_time)
        for k in RACK_HISTORY:
            a[f"rack_hist_{k}"] = np.stack(self.rack_hist[k]) if n else np.zeros((0, f.n_racks), np.float32)
        a.update(self.dr_ahead())
        plan = self._plan()
        if plan is not None:
            a["plan_time"], a["plan_grid_import_mw"] = plan
        if getattr(tw, "paths", None) is not None:
            a |= self._power_arrays()
            meta["power_events"] = [
                PowerEvent(time=str(e.time), kind=e.kind, element=e.element, detail=e.detail, racks=e.racks)
                for e in tw.paths.events[-POWER_EVENTS:]
            ]
        if self.groups is not None:
            meta["steering"] = steering_meta(self.groups)
        return Snapshot(meta, a)

    def _el_racks(self) -> NDArray:
        """Racks below each element on some path (computed once)."""
        if getattr(self, "_racks_below", None) is None:
            below = self.twin.f.topology.racks_below()
            self._racks_below = np.asarray(below.sum(axis=1)).ravel().astype(np.int64)
        return self._racks_below

    def _power_arrays(self) -> dict[str, NDArray]:
        """The one-line diagram for the Power page: elements, edges, ratings, present state, recent loads."""
        from factory_twin.twin.facility.topology_spec import KINDS as ELEMENT_TYPES

        tw, topo = self.twin, self.twin.f.topology
        paths = tw.paths
        last = self._last
        load = last.tier_in_w if last is not None and last.tier_in_w is not None else np.zeros(topo.n)
        n = len(self.el_hist)
        return {
            "el_name": np.array(topo.names, dtype=str),
            "el_kind": np.array([ELEMENT_TYPES[k] for k in topo.kind], dtype=str),
            "el_path": np.array([p or "" for p in topo.path], dtype=str),
            "el_depth": topo.depth,
            "el_rating_kw": topo.rating_w / KW,
            "el_limit_kw": topo.continuous_limit_w / KW,
            "el_load_kw": load / KW,
            "el_loading": topo.loading(load),
            "el_headroom_kw": topo.headroom_w(load) / KW,
            "el_closed": paths.closed.copy(),
            "el_energized": paths.routing.energized.copy(),
            "el_racks": self._el_racks(),
            "edge_child": topo.edge_child,
            "edge_parent": topo.edge_parent,
            "rack_powered": paths.rack_on.copy(),
            "el_hist_time": np.array(self.rack_hist_time, np.int64)[-n:] if n else np.zeros(0, np.int64),
            "el_hist_load_kw": np.stack(self.el_hist) if n else np.zeros((0, topo.n), np.float32),
        }

    def publish(self) -> None:
        """Write the present snapshot atomically."""
        self.seq += 1
        write_snapshot(self.folder / SNAPSHOT, self.snapshot())

    # ------------------------------------------------------------------ loop
    def run(self, should_stop: Callable[[], bool], max_lag_s: float = 2.0) -> None:
        """Run until ``should_stop()``: keep simulated time at ``speed`` x wall time (lag bounded to
        ``max_lag_s`` wall seconds: a twin slower than ``speed`` runs flat out and reports
        ``achieved_speed``), apply commands between steps, publish every ``publish_s``."""
        self.publish()
        last = last_pub = wall.monotonic()
        owed_s = 0.0
        window: deque[tuple[float, float]] = deque(maxlen=20)
        sim_done = 0.0
        while not should_stop():
            changed = self.poll_commands() > 0
            now = wall.monotonic()
            if not self.paused:
                owed_s = min(owed_s + (now - last) * self.speed, max_lag_s * self.speed)
            last = now
            while owed_s >= self.twin.plant_dt and not self.paused and wall.monotonic() - now < self.publish_s:
                self.step()
                owed_s -= self.twin.plant_dt
                sim_done += self.twin.plant_dt
            t = wall.monotonic()
            if changed or t - last_pub >= self.publish_s:
                window.append((t, sim_done))
                t0, s0 = window[0]
                self.achieved_speed = (sim_done - s0) / (t - t0) if t > t0 and not self.paused else 0.0
                self.publish()
                last_pub = t
            if owed_s < self.twin.plant_dt:
                wall.sleep(min(0.05, (self.twin.plant_dt - owed_s) / self.speed))


def _run_process(
    build: Callable[..., Any],
    build_kwargs: dict,
    folder: str,
    speed: float,
    controller_name: str,
    stop: Any,
    steering: Sequence[Mapping[str, Any]] = (),
) -> None:
    # Ctrl-C in a terminal reaches the whole process group; the parent stops this process (the stop event, then
    # terminate), so SIGINT here would only break a plant step half-way and print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        twin = build(**build_kwargs)
        runner = LiveRunner(twin, folder, speed, controller_name, steering=steering)
        parent = mp.parent_process()
        runner.run(lambda: stop.is_set() or (parent is not None and not parent.is_alive()))
    except Exception as e:  # the dashboard shows why the twin stopped and offers a restart
        text = f"{type(e).__name__}: {e}".encode()
        write_atomic(Path(folder) / RUNNER_ERROR, lambda fh: fh.write(text))
        raise


def start_runner(
    build: Callable[..., Any],
    build_kwargs: dict,
    folder: str | Path,
    speed: float = 60.0,
    controller_name: str = "",
    steering: Sequence[Mapping[str, Any]] = (),
) -> tuple[mp.process.BaseProcess, Any]:
    """Start a :class:`LiveRunner` in its own (spawned) process; return ``(process, stop_event)``.
    ``steering``: the runner's ``steering`` commands (check them first with :func:`start_groups`).

    ``build(**build_kwargs)`` runs in the child and returns the twin; it must be a module-level
    function (passed by reference). Set the event to stop the runner; it also stops when the
    parent exits.
    """
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    proc = ctx.Process(
        target=_run_process,
        args=(build, build_kwargs, str(folder), speed, controller_name, stop, tuple(map(dict, steering))),
        name="factory-twin-runner",
        daemon=True,
    )
    proc.start()
    return proc, stop


__all__ = [
    "COMMAND_BOUNDS",
    "ELEMENT_KINDS",
    "GROUP_BOUNDS",
    "GROUP_FIELDS",
    "HISTORY",
    "KINDS",
    "RUNNER_ERROR",
    "STEERING_KINDS",
    "LiveRunner",
    "Snapshot",
    "load_snapshot",
    "parse_command",
    "send_command",
    "start_groups",
    "start_runner",
    "steering_change",
    "steering_meta",
    "write_snapshot",
]
