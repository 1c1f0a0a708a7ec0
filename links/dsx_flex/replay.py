"""The Emerald AI Phoenix field test (SRP peak event, 4 May 2025) replayed closed loop through the DSX Flex agent.

Published event (Colangelo et al., arXiv 2507.00909; local time MST): the cluster's GPU power 25 % below its
pre-event average, ramped down over 15 min from 16:10, held 16:25-19:25, ramped up over 15 min; performance
measured over 14:40-21:20. Here the grid side signs one ``grid.loadtarget.set.v1`` at 16:00 carrying the whole
schedule as intervals on the ``cluster`` feed (metered at the GPUs): 15 one-minute steps down from the
pre-event average (measured 14:40-16:00), the hold, 15 one-minute steps up. The agent verifies it and the
twin follows under one of two controllers:

* ``"caps"``: the agent's MPC (job-aware caps: the LP maximizes the weighted performance under the target
  with every job's flex floor);
* ``"uniform"``: one cap for every GPU, the highest whose drawn power meets the target
  (:class:`twin.simulation.controllers.UniformCapToTarget`);
* ``"pause"``: the agent's MPC with caps and job pauses (the jobs' ``pause`` parameters, checkpoint and
  restart executed by the twin, :mod:`twin.simulation.jobs`);
* ``"pause+resize"``: caps, pauses and resizing.

``"caps"`` and ``"uniform"`` run the facility with its jobs' ``pause`` and ``resize`` removed, ``"pause"``
with ``resize`` removed, so each policy has exactly the controls it names.

Figures: per-job performance (mean throughput / uncapped over the window and over the hold), Emerald's
weighted performance (weights floor / sum of floors, floor = 1 - flex tier), and the tracking error of the
GPU power at 1-minute resolution during the hold (RMSE relative to the target).
"""

from __future__ import annotations

import json
import time as wall
from dataclasses import dataclass, field
from datetime import UTC

import numpy as np
from factory_twin.links.dsx_flex import protocol as dx
from factory_twin.links.dsx_flex.agent import AgentConfig, FlexAgent
from factory_twin.models.units import KW
from factory_twin.twin.simulation.controllers import UniformCapToTarget
from factory_twin.twin.simulation.engine import Twin
from joserfc.jwk import ECKey

DAY = "2025-05-04"
WINDOW = (np.datetime64(f"{DAY}T14:40:00"), np.datetime64(f"{DAY}T21:20:00"))
SEND = np.datetime64(f"{DAY}T16:00:00")
RAMP_DOWN = np.datetime64(f"{DAY}T16:10:00")
HOLD = (np.datetime64(f"{DAY}T16:25:00"), np.datetime64(f"{DAY}T19:25:00"))
RAMP_MIN = 15
DEPTH = 0.25
ISV = "srp"
FEED = "cluster"
EMERALD_FIELD = {"weighted_performance": 0.91, "hold_below_pre_event": 0.31}  # arXiv 2507.00909
POLICIES = ("uniform", "caps", "pause", "pause+resize")
CONTROLS = {"uniform": (), "caps": (), "pause": ("pause",), "pause+resize": ("pause", "resize")}


@dataclass
class PhoenixResult:
    policy: str
    pre_event_kw: float
    hold_target_kw: float
    jobs: dict[str, dict[str, float]]  # name -> tier floor, weight, window, hold performance
    weighted_window: float
    weighted_hold: float
    rmse_hold: float  # 1-min RMSE of GPU power vs target during the hold, relative to the target
    hold_below_pre_event: float
    wall_s: float
    refusals: list[str] = field(default_factory=list)
    pauses: float = 0.0  # pauses started (checkpoints reached), summed over the jobs' racks
    stop_energy_kwh: float = 0.0  # GPU energy of checkpoints, restarts, rejoins and idle stopped GPUs
    minutes: dict[str, np.ndarray] = field(default_factory=dict)  # per minute: start, GPU power, limit [W]

    def floors_met(self) -> bool:
        return all(j["window"] >= j["floor"] - 1e-9 for j in self.jobs.values())


def schedule(pre_event_w: float, depth: float = DEPTH) -> list[dict]:
    """The event as ``targets`` entries (UTC intervals for MST = UTC-7): ramp steps, hold, ramp steps."""

    def utc(t: np.datetime64):
        return (t + np.timedelta64(7, "h")).astype("datetime64[s]").item().replace(tzinfo=UTC)

    minute = np.timedelta64(60, "s")
    out = []
    for k in range(RAMP_MIN):  # k-th minute of the ramp down: (k+1)/15 of the cut
        level = pre_event_w * (1 - depth * (k + 1) / RAMP_MIN)
        out.append(dx.loadtarget_data(level, utc(RAMP_DOWN + k * minute), utc(RAMP_DOWN + (k + 1) * minute), [FEED]))
    out.append(dx.loadtarget_data(pre_event_w * (1 - depth), utc(HOLD[0]), utc(HOLD[1]), [FEED]))
    for k in range(RAMP_MIN - 1):  # back up in 15 steps; the last minute ends at the default
        level = pre_event_w * (1 - depth * (RAMP_MIN - 1 - k) / RAMP_MIN)
        out.append(dx.loadtarget_data(level, utc(HOLD[1] + k * minute), utc(HOLD[1] + (k + 1) * minute), [FEED]))
    return out


def run_phoenix(
    facility, scenario, policy: str = "caps", client=None, sender=None, plant_step_s: float = 20.0, depth: float = DEPTH
):
    """Replay the event (module docstring; ``depth`` the cut, 0.25 as published) through a :class:`FlexAgent`;
    with ``client``/``sender`` (started :class:`links.mqtt.MqttClient` s on one broker) the signed event travels
    over MQTT, else it is handed to the agent directly. Returns a :class:`PhoenixResult`."""
    from factory_twin.optimization.controllers import make_controller
    from factory_twin.optimization.options import MPC_OPTIONS

    if policy not in POLICIES:
        raise ValueError(f"policy: expected one of {POLICIES}, got {policy!r}")
    f = with_controls(facility, CONTROLS[policy])
    ctl = (
        UniformCapToTarget(f)
        if policy == "uniform"
        else make_controller("mpc", f, scenario, options=MPC_OPTIONS.updated(horizon="1h", backend="highspy"))
    )
    tw = Twin(f, scenario, start=f"{DAY}T14:00:00", plant_step_s=plant_step_s, controller=ctl)
    grid_key, agent_key = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    trust = dx.TrustStore.bound(ISV, grid_key)
    agent = FlexAgent(tw, trust, agent_key, client, None, AgentConfig(identifier="emerald-phoenix", heartbeat_s=600))
    gpus_w = f.gpus[:, None] * np.eye(len(f.class_names))[f.rack_class]  # [racks, jobs]
    rows: list[tuple] = []

    def step_and_record() -> None:
        # the step's mean GPU power against the limit in force over that step (the limits change on whole
        # minutes, the steps divide a minute): the limit at the step's start, once what arrived is applied
        agent.handle_inbox()
        limit = agent.state.limit_w(FEED, agent.now())
        agent.step()
        thr = np.empty(f.n_racks)
        for c, curve in enumerate(f.curves):
            idx = f.rack_class == c
            thr[idx] = curve.throughput(tw.eff[idx] / f.tdp_w[idx])
        if tw.jobs is not None:  # only while computing (not paused, restarting or resized away)
            thr = thr * tw.jobs.computing
        job_thr = (thr @ gpus_w) / gpus_w.sum(axis=0)
        rows.append((tw.time - np.timedelta64(int(plant_step_s), "s"), tw.last.gpu_w, limit, *job_thr))

    t0 = wall.perf_counter()
    while tw.time < SEND:
        step_and_record()
    pre = float(np.mean([r[1] for r in rows if r[0] >= WINDOW[0]]))
    ev = dx.loadtarget_event(ISV, schedule(pre, depth), grid_key, agent.now())
    if client is not None and sender is not None:
        sender.publish(dx.loadtarget_topic(ISV), json.dumps(ev), qos=1)
        deadline = wall.monotonic() + 10
        while agent.inbox.empty() and wall.monotonic() < deadline:
            wall.sleep(0.01)
    else:
        agent.handle(dx.loadtarget_topic(ISV), json.dumps(ev).encode())
    while tw.time < WINDOW[1]:
        step_and_record()
    wall_s = wall.perf_counter() - t0
    times = np.array([r[0] for r in rows])
    data = np.array([r[1:] for r in rows])
    res = _figures(f, policy, times, data, pre, wall_s, agent.refusals)
    if tw.jobs is not None:
        per_job = np.bincount(f.rack_class, tw.jobs.pauses * f.gpus) / np.bincount(f.rack_class, f.gpus)
        res.pauses = float(per_job.sum())
        res.stop_energy_kwh = sum(tw.jobs.energy_j.values()) / 3.6e6
    return res


def with_controls(f, controls: tuple[str, ...]):
    """Facility ``f`` with its jobs' ``pause``/``resize`` kept only for the named ``controls`` (``f`` itself
    when nothing is removed)."""
    drop = {k: None for k in ("pause", "resize") if k not in controls}
    wl = f.spec.workloads
    if all(getattr(w, k) is None for w in wl for k in drop):
        return f
    from factory_twin.twin.facility.assembly import assemble, rack_catalog

    spec = f.spec.model_copy(update={"workloads": [w.model_copy(update=drop) for w in wl]})
    return assemble(spec, rack_catalog(), f.source)


def _figures(f, policy, times, data, pre, wall_s, refusals) -> PhoenixResult:
    per_min = int(round(60 / float((times[1] - times[0]).astype(float))))
    n = (times.size // per_min) * per_min
    minute = data[:n].reshape(-1, per_min, data.shape[1]).mean(axis=1)
    t_min = times[:n:per_min]
    win = (t_min >= WINDOW[0]) & (t_min < WINDOW[1])
    hold = (t_min >= HOLD[0]) & (t_min < HOLD[1])
    gpu, target, thr = minute[:, 0], minute[:, 1], minute[:, 2:]
    floors = np.array([1 - w.flex_tier for w in f.spec.workloads])
    weights = floors / floors.sum()
    jobs = {
        name: {
            "floor": float(floors[j]),
            "weight": float(weights[j]),
            "window": float(thr[win, j].mean()),
            "hold": float(thr[hold, j].mean()),
        }
        for j, name in enumerate(f.class_names)
    }
    rmse = float(np.sqrt(np.mean(((gpu[hold] - target[hold]) / target[hold]) ** 2)))
    res = PhoenixResult(
        policy,
        pre / KW,
        float(target[hold].mean()) / KW,
        jobs,
        float(weights @ thr[win].mean(axis=0)),
        float(weights @ thr[hold].mean(axis=0)),
        rmse,
        float(1 - gpu[hold].mean() / pre),
        wall_s,
        list(refusals),
    )
    res.minutes = {"start": t_min, "gpu_w": gpu, "limit_w": target}
    return res


def table(results: list[PhoenixResult]) -> str:
    """The comparison as a Markdown table (jobs x policies, then the weighted figures and tracking)."""
    head = "| job (tier floor, weight) | " + " | ".join(f"{r.policy}: window / hold" for r in results) + " |"
    lines = [head, "|" + " --- |" * (len(results) + 1)]
    for name, j in results[0].jobs.items():
        cells = " | ".join(f"{r.jobs[name]['window']:.3f} / {r.jobs[name]['hold']:.3f}" for r in results)
        lines.append(f"| {name} ({j['floor']:.2f}, {j['weight']:.3f}) | {cells} |")
    lines.append(
        "| weighted performance | "
        + " | ".join(f"{r.weighted_window:.3f} / {r.weighted_hold:.3f}" for r in results)
        + " |"
    )
    rmse = " | ".join(f"{100 * r.rmse_hold:.3f} %" for r in results)
    lines.append(f"| 1-min tracking RMSE in the hold | {rmse} |")
    lines.append(
        "| hold below pre-event average | "
        + " | ".join(f"{100 * r.hold_below_pre_event:.1f} %" for r in results)
        + " |"
    )
    met = " | ".join("yes" if r.floors_met() else "**no**" for r in results)
    lines.append(f"| every job at or above its floor | {met} |")
    if any(r.policy in ("pause", "pause+resize") for r in results):
        cells = " | ".join(f"{r.pauses:.0f} / {r.stop_energy_kwh:.1f} kWh" for r in results)
        lines.append(f"| pauses (checkpoints) / GPU energy while stopped | {cells} |")
    return "\n".join(lines)
