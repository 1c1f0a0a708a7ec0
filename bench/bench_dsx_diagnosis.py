"""The diagnosis table of docs/dsx-exchange.md: for each fault kind and point kind, how often and how fast
``connect`` alarms it at each magnitude, the smallest magnitude it alarms every time, and what else it
alarms around the fault (which faults are confused with which).

campus-100mw with inference load steps every 30 min (``tests/data/dsx-steps.toml``), emulated and connected
in one process (``dsx_inprocess``: the same emulator and connector as through Mosquitto, without the
transport). Each run injects one fault per CDU row in several rows at once (a ladder of magnitudes, each
``--reps`` times, rows drawn at random per seed; stuck readings on the inference rows, whose load steps
move the process); ``--seeds`` runs per case with different sensor noise and rows. A fault counts as
detected when the expected alarm (any sensor verdict on the faulted point, or the process alarm on the CDU)
is raised within the case's window; its delay is from the fault's start. Every other alarm raised in a
faulted row (its CDU, its racks, its row meter) is listed as a confusion; alarms outside the faulted rows
are counted as false alarms.

    python bench/bench_dsx_diagnosis.py [--seeds 6] [--reps 2] [--only bias] [--json out.json]
    python bench/bench_dsx_diagnosis.py --from-json out.json      # the table again, no runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import dsx_inprocess  # this folder is on sys.path when the script runs
import numpy as np
from factory_twin.links.dsx_exchange.faults import parse_fault
from factory_twin.links.dsx_exchange.points import Catalog

from factory_twin import twin

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "data" / "dsx-steps.toml"
START_MS = 1_786_060_800_000
SENSOR = {"sensor_bias", "sensor_drift", "sensor_stuck"}


@dataclass(frozen=True)
class Case:
    """One fault kind on one point kind: magnitudes (in the point's unit; per hour for drift), start and
    observation window [s]."""

    kind: str
    point: str  # "rack/return_c", "meter/power_kw", "cdu/pri_flow_lpm", "cdu" (process faults)
    magnitudes: tuple[float | None, ...]
    start_s: float = 300.0
    window_s: float = 1200.0

    @property
    def name(self) -> str:
        return f"{self.kind} {self.point}"

    def severity(self, m: float | None) -> float:
        """How far from healthy a magnitude is (a pump's is the flow lost)."""
        if m is None:
            return 0.0
        return 1.0 - m if self.kind == "pump" else abs(m)


T_RACK = (0.1, 0.2, 0.3, 0.5, 1.0, 2.0)
T_CDU = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
CASES = [
    Case("bias", "rack/supply_c", T_RACK),
    Case("bias", "rack/return_c", T_RACK),
    Case("bias", "rack/flow_lpm", (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)),
    Case("bias", "rack/power_kw", (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)),
    Case("bias", "meter/power_kw", (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)),
    Case("bias", "cdu/sec_supply_c", T_CDU),
    Case("bias", "cdu/sec_return_c", T_CDU),
    Case("bias", "cdu/sec_flow_lpm", (10.0, 20.0, 40.0, 80.0, 160.0, 320.0)),
    Case("bias", "cdu/pri_supply_c", T_CDU),
    Case("bias", "cdu/pri_return_c", T_CDU),
    Case("bias", "cdu/pri_flow_lpm", (20.0, 40.0, 80.0, 160.0, 320.0)),
    Case("bias", "cdu/valve_pct", (-1.0, -2.0, -4.0, -8.0, -16.0)),
    Case("drift", "rack/return_c", (0.25, 0.5, 1.0, 2.0, 4.0), window_s=3600.0),
    Case("drift", "cdu/sec_supply_c", (0.25, 0.5, 1.0, 2.0, 4.0), window_s=3600.0),
    Case("drift", "cdu/pri_flow_lpm", (50.0, 100.0, 200.0, 400.0), window_s=3600.0),
    # a stuck reading shows once the process moves: the load step at 30 min, on inference rows
    Case("stuck", "rack/return_c", (None,), start_s=900.0, window_s=2400.0),
    Case("stuck", "rack/power_kw", (None,), start_s=900.0, window_s=2400.0),
    Case("stuck", "cdu/sec_return_c", (None,), start_s=900.0, window_s=2400.0),
    Case("stuck", "cdu/valve_pct", (None,), start_s=900.0, window_s=2400.0),
    Case("fouling", "cdu", (0.1, 0.15, 0.2, 0.3, 0.4), window_s=3600.0),
    Case("pump", "cdu", (0.9, 0.8, 0.7, 0.5)),
    Case("dropout", "rack/flow_lpm", (None,)),
    Case("badquality", "cdu/pri_flow_lpm", (None,)),
]
EXPECTED_PROCESS = {"fouling": "hx_fouling", "pump": "pump_failure"}


def _target(case: Case, cat: Catalog, row: int, rng: np.random.Generator) -> tuple[str, str, str | None]:
    """The fault target for CDU row ``row``: (fault target, alarmed entity, alarmed point)."""
    cdu = cat.cdu_ids[row]
    if case.point == "cdu":
        return cdu, cdu, None
    entity, signal = case.point.split("/")
    if entity == "rack":
        rack = str(rng.choice(cat.cdu_racks[row]))
        return f"{rack}/{signal}", rack, case.point
    if entity == "meter":
        return f"M-{cdu}/{signal}", f"M-{cdu}", case.point
    return f"{cdu}/{signal}", cdu, case.point


def _spec(case: Case, target: str, magnitude: float | None) -> str:
    v = "" if magnitude is None else f":{magnitude:g}"
    return f"{case.kind}:{target}{v}@{case.start_s:g}s"


def run_case(case: Case, seed: int, reps: int, f, sc, cat: Catalog) -> list[dict]:
    """One run of ``case``: every magnitude ``reps`` times in distinct rows; a result per injected fault."""
    rng = np.random.default_rng(1000 + seed)
    pool = np.arange(f.n_cdus)
    if case.kind == "stuck":  # only where the process moves: the inference rows (training runs flat here)
        inference = [k for k, w in enumerate(f.spec.workloads) if w.name == "inference"]
        pool = np.unique(f.rack_cdu[np.isin(f.rack_class, inference)])
    rows = rng.permutation(pool)[: len(case.magnitudes) * reps]
    faults, injected = [], []
    for k, row in enumerate(rows.tolist()):
        mag = case.magnitudes[k % len(case.magnitudes)]
        target, entity, point = _target(case, cat, row, rng)
        faults.append(parse_fault(_spec(case, target, mag)))
        injected.append((row, mag, entity, point))
    duration = case.start_s + case.window_s
    with tempfile.TemporaryDirectory() as d:
        r = dsx_inprocess.run(f, sc, Path(d), tuple(faults), seed=seed, duration_s=duration)
    raised = [a for a in r["alarms"] if a["state"] == "raised"]
    row_of = {c: i for i, c in enumerate(cat.cdu_ids)}
    row_of |= {rk: i for i, racks in enumerate(cat.cdu_racks) for rk in racks}
    row_of |= {f"M-{c}": i for i, c in enumerate(cat.cdu_ids)}
    out = []
    faulted = {row for row, *_ in injected}
    for row, mag, entity, point in injected:
        t0 = START_MS + case.start_s * 1000
        hit, other = None, []
        for a in raised:
            if row_of.get(a["entity"]) != row:
                continue
            if case.kind in EXPECTED_PROCESS:
                ok = a["kind"] == EXPECTED_PROCESS[case.kind] and a["entity"] == entity
            elif case.kind == "dropout":
                ok = a["kind"] == "stale" and (a["entity"], a["point"]) == (entity, point)
            elif case.kind == "badquality":
                ok = a["kind"] == "bad_quality" and (a["entity"], a["point"]) == (entity, point)
            else:
                ok = a["kind"] in SENSOR and (a["entity"], a["point"]) == (entity, point)
            if ok and hit is None and a["time_ms"] >= t0:
                hit = a
            elif not ok:
                where = (
                    "same entity"
                    if a["entity"] == entity
                    else ("its CDU" if a["entity"] == cat.cdu_ids[row] else "a neighbour")
                )
                other.append(f"{a['kind']} {a['point'] or ''} ({where})".replace(" ()", ""))
        out.append(
            {
                "case": case.name,
                "seed": seed,
                "magnitude": mag,
                "entity": entity,
                "detected": hit is not None,
                "delay_s": None if hit is None else (hit["time_ms"] - t0) / 1000,
                "verdict": None if hit is None else hit["kind"],
                "confused": sorted(set(other)),
            }
        )
    false = [f"{a['entity']} {a['kind']} {a['point']}" for a in raised if row_of.get(a["entity"]) not in faulted]
    out.append({"case": case.name, "seed": seed, "false_alarms": false, "wall_s": r["wall_s"], "simulated_s": duration})
    return out


def summarize(case: Case, results: list[dict]) -> dict:
    per = [x for x in results if "magnitude" in x]
    by_mag: dict = defaultdict(list)
    for x in per:
        by_mag[x["magnitude"]].append(x)
    rate = {m: sum(x["detected"] for x in xs) / len(xs) for m, xs in by_mag.items()}
    smallest, found = None, False
    sev = case.severity
    for m in sorted(case.magnitudes, key=sev):  # the smallest from which on every fault was alarmed
        if all(rate.get(k) == 1.0 for k in case.magnitudes if sev(k) >= sev(m)):
            smallest, found = m, True
            break
    at = by_mag.get(smallest, [])
    delays = [x["delay_s"] for x in at if x["detected"]]
    big = by_mag[max(case.magnitudes, key=sev)]
    big_delays = [x["delay_s"] for x in big if x["detected"]]
    confused = Counter(c for x in per if x["detected"] or True for c in x["confused"])
    verdicts = Counter(x["verdict"] for x in per if x["detected"])
    false = sum(len(x["false_alarms"]) for x in results if "false_alarms" in x)
    return {
        "case": case.name,
        "samples": len(per),
        "rate": rate,
        "smallest": smallest,
        "found": found,
        "delay_at_smallest_s": (statistics.median(delays), max(delays)) if delays else None,
        "delay_at_largest_s": (statistics.median(big_delays), max(big_delays)) if big_delays else None,
        "verdicts": dict(verdicts),
        "confused": dict(confused.most_common(4)),
        "confused_share": sum(1 for x in per if x["confused"]) / len(per),
        "false_alarms": false,
    }


def _fmt(v) -> str:
    return "-" if v is None else f"{v:g}"


def table(rows: list[dict], cases: list[Case]) -> str:
    unit = {"rack/supply_c": "K", "rack/return_c": "K", "cdu/sec_supply_c": "K", "cdu/sec_return_c": "K",
            "cdu/pri_supply_c": "K", "cdu/pri_return_c": "K", "rack/flow_lpm": "L/min", "cdu/sec_flow_lpm": "L/min",
            "cdu/pri_flow_lpm": "L/min", "rack/power_kw": "kW", "meter/power_kw": "kW", "cdu/valve_pct": "%",
            "cdu": ""}  # fmt: skip
    lines = [
        "| fault | point | magnitudes tried (detected share) | smallest detected every time | delay there, median"
        " / max | delay at the largest | verdicts | also alarmed in the row (share of faults) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c, s in zip(cases, rows, strict=True):
        u = unit[c.point] + ("/h" if c.kind == "drift" else "")
        if c.kind == "fouling":
            u = "of UA"
        if c.kind == "pump":
            u = "of flow left"
        tried = ", ".join(f"{_fmt(m)} ({s['rate'][m]:.0%})" for m in c.magnitudes) if c.magnitudes != (None,) else (
            f"- ({s['rate'][None]:.0%})")  # fmt: skip
        d0 = s["delay_at_smallest_s"]
        d1 = s["delay_at_largest_s"]
        conf = ", ".join(f"{k} {v}" for k, v in s["confused"].items()) or "none"
        smallest = f"{_fmt(s['smallest'])} {u}" if s["smallest"] is not None else "every time"
        smallest = smallest if s["found"] else "never"
        delays = ["-" if d is None else f"{d[0]:.0f} / {d[1]:.0f} s" for d in (d0, d1)]
        verdicts = ", ".join(f"{k} {v}" for k, v in s["verdicts"].items())
        lines.append(
            f"| {c.kind} | {c.point} | {tried} {u} | {smallest} | {delays[0]} | {delays[1]} | {verdicts} | "
            f"{conf} ({s['confused_share']:.0%}) |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=4, help="runs per case (sensor noise and rows)")
    ap.add_argument("--reps", type=int, default=2, help="faults per magnitude in one run (distinct rows)")
    ap.add_argument("--only", help="cases whose name contains one of these (comma-separated)")
    ap.add_argument("--json", type=Path, help="write every result here")
    ap.add_argument("--from-json", type=Path, help="no runs: the table from the results a --json run wrote")
    a = ap.parse_args()
    if a.from_json:
        res = json.loads(a.from_json.read_text())["results"]
        cases = [c for c in CASES if any(x["case"] == c.name for x in res)]
        print(table([summarize(c, [x for x in res if x["case"] == c.name]) for c in cases], cases))
        return
    f = twin.load_facility("campus-100mw")
    sc = twin.load_scenario(str(SCENARIO), f)
    cat = Catalog(f, "FactoryTwin")
    cases = [c for c in CASES if a.only is None or any(o in c.name for o in a.only.split(","))]
    t0 = time.time()
    everything, rows = [], []
    for c in cases:
        res = []
        for seed in range(a.seeds):
            res += run_case(c, seed, a.reps if c.magnitudes != (None,) else 4 * a.reps, f, sc, cat)
        s = summarize(c, res)
        rows.append(s)
        everything += res
        sim = sum(x["simulated_s"] for x in res if "simulated_s" in x) / 3600
        print(f"{c.name}: {s['samples']} faults, smallest always {_fmt(s['smallest'])}, delay "
              f"{s['delay_at_smallest_s']}, false alarms {s['false_alarms']} ({sim:.1f} simulated h, "
              f"{time.time() - t0:.0f} s)", flush=True)  # fmt: skip
    print()
    print(table(rows, cases))
    false = sum(s["false_alarms"] for s in rows)
    sim_h = sum(x["simulated_s"] for x in everything if "simulated_s" in x) / 3600
    print(f"\nalarms outside the faulted rows: {false} over {sim_h:.1f} simulated hours of campus-100mw "
          f"({len(cases)} cases x {a.seeds} seeds, {time.time() - t0:.0f} s wall)")  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps({"summary": rows, "results": everything}, default=str))


if __name__ == "__main__":
    main()
