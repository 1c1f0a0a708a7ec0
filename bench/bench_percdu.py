"""Per-CDU dispatch at 1 GW (issue 14 section 2): speed, memory, and what the finer grouping buys.

1. Speed: campus-1gw, hot-day-dr, 24 h at 5 min, grouping class x CDU (with each CDU's heat and flow
   limits), matrix backend: the dispatch stages timed one by one (wall and CPU) and peak resident
   memory, in a fresh process, beside the targets (build + solve <= 5 s, <= 4 GB); a cProfile of the
   stages when a target is missed.
2. Study: campus-1gw with the heat exchangers of every ``--every``-th CDU of each hall fouled to
   ``--ua`` (default 0.65) of their clean UA (``cooling.cdu.fouling`` in the facility file), hot-day-dr (the hottest
   August day with a DR event; the same import limit for both plans). Plans per class x hall and per
   class x CDU, each run through the twin (1 s thermal step) by :class:`optimization.PlanFollower`;
   the twin judges: throughput kept, throttled GPU-hours, rack-hours at the die limit, CDU-hours above
   the TCS supply setpoint.

Run from the repository root:
``PYTHONPATH=. python bench/bench_percdu.py [--duration 24h] [--every 6] [--ua 0.65] [--skip-study] [--skip-speed]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing as mp
import pstats
import queue
import resource
import tempfile
import time
from pathlib import Path

from factory_twin.models.units import S_PER_H

from factory_twin.cli.options import add_duration

TARGET_S = 5.0
TARGET_MB = 4096.0
AT_LIMIT_K = 0.05  # a die this close to t_max is held by the throttle; a supply this far above its setpoint is out


def _timed(out: mp.Queue, profile: bool) -> None:
    """The stages of ``dispatch`` timed one by one (wall and CPU): prepare (groups, forecast, problem),
    build (matrix assembly and loading into HiGHS), solve (HiGHS run)."""
    from factory_twin.optimization.backend_highspy import HighsLP, matrix_lp
    from factory_twin.optimization.dispatch import plan_times
    from factory_twin.optimization.groups import make_groups
    from factory_twin.optimization.linearization import forecast
    from factory_twin.optimization.options import DispatchOptions
    from factory_twin.optimization.problem import make_problem

    from factory_twin import twin

    f = twin.load_facility("campus-1gw")
    sc = twin.load_scenario("hot-day-dr", f)
    opts = DispatchOptions(horizon="24h", step="5min", grouping="cdu", backend="highspy")
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    clock = [(time.perf_counter(), time.process_time())]

    def lap() -> None:
        clock.append((time.perf_counter(), time.process_time()))

    groups = make_groups(f, "cdu")
    times = plan_times(sc, None, opts)
    p = make_problem(f, sc, groups, forecast(f, sc, groups, times, opts.step), opts)
    lap()
    model = HighsLP(matrix_lp(p), opts)
    lap()
    status, minimum, _, _ = model.run()
    lap()
    if prof:
        prof.disable()
    (w0, c0), (w1, c1), (w2, c2), (w3, c3) = clock
    text = ""
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(18)
        text = s.getvalue()
    out.put(
        {
            "groups": groups.n,
            "shape": model.lp.shape,
            "nnz": model.lp.A.nnz,
            "status": status,
            "objective": -minimum,
            "prepare": (w1 - w0, c1 - c0),
            "build": (w2 - w1, c2 - c1),
            "solve": (w3 - w2, c3 - c2),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "profile": text,
        }
    )


def _in_fresh_process(profile: bool) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_timed, args=(q, profile))
    p.start()
    while True:
        try:
            r = q.get(timeout=2.0)
            break
        except queue.Empty:
            if not p.is_alive():
                raise RuntimeError(f"the timed dispatch failed (exit code {p.exitcode})") from None
    p.join()
    return r


def speed() -> None:
    import os

    r = _in_fresh_process(profile=False)
    wall = r["build"][0] + r["solve"][0]
    cpu = r["build"][1] + r["solve"][1]
    rows, cols = r["shape"]
    print(f"campus-1gw 24 h at 5 min, class x CDU: {r['groups']} groups, LP {rows:,} rows x {cols:,} columns, "
          f"{r['nnz']:,} non-zeros; status {r['status']}; load {os.getloadavg()[0]:.1f}")  # fmt: skip
    for k in ("prepare", "build", "solve"):
        print(f"  {k:8s} {r[k][0]:6.2f} s wall  {r[k][1]:6.2f} s CPU")
    print(f"  build + solve  target <= {TARGET_S:.1f} s   reached {wall:.2f} s wall, {cpu:.2f} s CPU  "
          f"{'MET' if wall <= TARGET_S else 'MISSED'}")  # fmt: skip
    print(f"  peak memory    target <= {TARGET_MB:.0f} MB  reached {r['peak_mb']:.0f} MB  "
          f"{'MET' if r['peak_mb'] <= TARGET_MB else 'MISSED'}")  # fmt: skip
    if wall > TARGET_S or r["peak_mb"] > TARGET_MB:
        print("profile of the stages (cumulative):")
        print(_in_fresh_process(profile=True)["profile"])


def fouled_facility(folder: Path, every: int, ua: float):
    """campus-1gw with every ``every``-th CDU of each hall fouled to ``ua`` (a facility file, as a user
    would write it)."""
    from factory_twin.twin.facility.assembly import load_facility

    from factory_twin import data

    text = data.path("facilities", "campus-1gw.toml").read_text(encoding="utf-8")
    base = load_facility("campus-1gw")
    for hall in base.spec.halls:
        cdus = ", ".join(str(i) for i in range(0, hall.cdus, every))
        text += f'\n[[cooling.cdu.fouling]]\nhall = "{hall.name}"\ncdus = [{cdus}]\nua_fraction = {ua}\n'
    path = folder / "campus-1gw-fouled.toml"
    path.write_text(text, encoding="utf-8")
    return load_facility(path)


def judged(f, sim, record_s: float) -> dict[str, float]:
    """The twin's verdict on a run: throughput kept, throttled GPU-hours (interval means), and from the
    record samples: rack-hours and racks at the die limit (within ``AT_LIMIT_K`` of t_max, where the
    throttle holds the die), CDU-hours with the TCS supply more than ``AT_LIMIT_K`` above its setpoint,
    the largest supply excess and die temperature."""
    import numpy as np

    h = record_s / 3600.0
    thr, tok = sim.throughput.values, sim.tokens_per_s.values
    at_limit = sim.die_temp_c.values >= (f.t_max_c - AT_LIMIT_K)[None, :]
    excess = sim.tcs_supply_c.values - f.spec.cooling.tcs.supply_setpoint_c
    return {
        "throughput_kept": float(tok.sum() / np.sum(tok / thr)),
        "throttled_gpu_h": float(sim.throttled_gpus.values.sum() * h),
        "rack_h_at_die_limit": float(at_limit.sum() * h),
        "racks_at_die_limit": int(at_limit.any(axis=0).sum()),
        "cdu_h_above_setpoint": float((excess > AT_LIMIT_K).sum() * h),
        "max_supply_excess_k": float(excess.max()),
        "max_die_c": float(sim.die_temp_c.values.max()),
    }


def study(duration_s: float, every: int, ua: float) -> None:
    from factory_twin.optimization import DispatchOptions, PlanFollower, dispatch_plan, plan_kpis
    from factory_twin.optimization.plan import plan_dataset
    from factory_twin.twin.simulation.engine import simulate

    from factory_twin import twin

    record_s = 300.0
    with tempfile.TemporaryDirectory() as tmp:
        f = fouled_facility(Path(tmp), every, ua)
    sc = twin.load_scenario("hot-day-dr", f)
    n_foul = sum(len(x.cdus) for x in f.spec.cooling.cdu.fouling)
    hours = duration_s / S_PER_H
    print(f"\nstudy: campus-1gw, {n_foul} of {f.n_cdus} CDU exchangers at {ua:g} x UA, hot-day-dr, {hours:g} h")
    rows = {}
    for grouping in ("hall", "cdu"):
        t0 = time.perf_counter()
        typed = dispatch_plan(f, sc, DispatchOptions(horizon="24h", step="5min", grouping=grouping, backend="highspy"))
        plan = plan_dataset(typed)
        t_plan = time.perf_counter() - t0
        t0 = time.perf_counter()
        sim = simulate(f, sc, duration=duration_s, record_every=record_s, controller=PlanFollower(f, typed))
        t_sim = time.perf_counter() - t0
        k = plan_kpis(plan)
        n = round(duration_s / float(plan.attrs["step_s"]))
        tok, unc = plan.tokens_per_s.values[:n], plan.tokens_uncapped_per_s.values[:n]
        rows[grouping] = {
            "plan_status": k["plan_status"],
            "plan_throughput_kept": float(tok.sum() / unc.sum()),
            "plan_peak_import_mw": float(plan.grid_import_mw.values[:n].max()),
            **judged(f, sim, record_s),
            "conflicts": plan.attrs["conflicts"] or "-",
            "plan_s": t_plan,
            "twin_s": t_sim,
        }
    print(f"  {'':28s} {'per hall':>12s} {'per CDU':>12s}")
    for key in rows["hall"]:
        a, b = rows["hall"][key], rows["cdu"][key]
        fmt = (lambda v: f"{v:>12s}") if isinstance(a, str) else (lambda v: f"{v:12.6g}")
        print(f"  {key:28s} {fmt(a)} {fmt(b)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_duration(ap, "twin run length from the scenario start", default="24h", old="--hours")
    ap.add_argument("--every", type=int, default=6, help="foul every N-th CDU of each hall")
    ap.add_argument("--ua", type=float, default=0.65, help="remaining UA of a fouled exchanger")
    ap.add_argument("--skip-study", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    a = ap.parse_args()
    if not a.skip_speed:
        speed()
    if not a.skip_study:
        study(a.duration, a.every, a.ua)


if __name__ == "__main__":
    main()
