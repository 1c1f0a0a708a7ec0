"""A clean plant for a whole day: campus-100mw, 24 simulated hours with inference load steps every 30 min,
no fault, published by ``emulate-bms`` through a real Mosquitto into ``connect``. Prints the alarms raised
(the acceptance: none), whether every value reached ``connect`` (gap-free) and the time it took. Too long
for the test suite (about ten million messages: every point republished every 100 s, metadata too), so it
lives here. The emulator is paced (``--speed 120``: 24 h in 12 min) like a plant, which never publishes
faster than real time; flat out (``--speed max``) it outruns connect on a busy machine, the broker queues,
and a keep-alive reconnect loses that queue (reported as outages and lost values).

    python bench/bench_bms_clean_day.py [--duration 24h] [--speed 120]
    python bench/bench_bms_clean_day.py --in-process --duration 7d    # a clean week, the false-alarm rate

``--in-process`` runs the same emulator and connector in one process without the broker (``dsx_inprocess``),
as fast as the CPU allows: the false-alarm rate over a week is a property of the diagnosis, the transport is
measured by the paced MQTT run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_bms import start_broker, wait_caught_up  # this folder is on sys.path when the script runs

from factory_twin.cli.options import add_duration

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "data" / "dsx-steps.toml"


def in_process(duration_s: float, seed: int) -> None:
    """The clean plant through the in-process wire; prints alarms and the false-alarm rate."""
    import dsx_inprocess

    from factory_twin import twin

    f = twin.load_facility("campus-100mw")
    sc = twin.load_scenario(str(SCENARIO), f)
    t0 = time.time()

    def progress(elapsed_s: float, con) -> None:  # a line per simulated hour: a long run reads as it goes
        n = sum(1 for x in (con.dir / "alarms.jsonl").read_text().splitlines() if '"raised"' in x)
        print(f"  {elapsed_s / 3600:6.1f} h simulated, {time.time() - t0:6.0f} s wall, {n} alarms raised", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-bms-week-") as d:
        r = dsx_inprocess.run(f, sc, Path(d), seed=seed, duration_s=duration_s, progress=progress)
    hours = duration_s / 3600
    st = r["status"]
    raised = [a for a in r["alarms"] if a["state"] == "raised"]
    points = st["point_map"]["mapped"]
    print(f"campus-100mw clean, in process, seed {seed}: {hours:g} simulated hours in {r['wall_s']:.0f} s wall")
    print(f"  {st['values']:,} values, {st['ticks']:,} shadow-twin ticks, {points:,} points mapped, "
          f"values not taken: {st['rejected']['total']}")  # fmt: skip
    rate = len(raised) / (hours / 24)
    print(f"  alarms raised: {len(raised)} ({rate:.2f} per simulated day over {points:,} points)")
    for a in raised[:20]:
        print("   ", a["time_ms"], a["entity"], a["kind"], a["point"], a["evidence"])
    print(f"  lowest UA estimate / design over all CDUs: {st['ua_ratio_min']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_duration(ap, "simulated time", default="24h", old="--hours")
    ap.add_argument("--speed", default="120", help="emulator speed; below what connect sustains, no backlog builds")
    ap.add_argument("--in-process", action="store_true", help="no broker: emulator and connector in one process")
    ap.add_argument("--seed", type=int, default=0, help="sensor-noise seed (--in-process)")
    args = ap.parse_args()
    if args.in_process:
        in_process(args.duration, args.seed)
        return
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    tmp = Path(tempfile.mkdtemp(prefix="bench-bms-day-"))
    t0 = time.time()
    broker, port = start_broker(tmp)
    url = f"mqtt://127.0.0.1:{port}"
    py = [sys.executable, "-m", "factory_twin"]
    state = tmp / "state"
    try:
        con = subprocess.Popen(
            [*py, "connect", "campus-100mw", "--broker", url, "--state-dir", str(state), "--no-requests"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        while not (state / "status.json").exists():
            time.sleep(0.2)
        subprocess.run(
            [*py, "emulate-bms", "campus-100mw", "--broker", url, "--scenario", str(SCENARIO), "--speed", args.speed,
             "--plant-step", "20s", "--duration", f"{args.duration:g}s", "--summary", str(tmp / "emu.json")],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        emu = json.loads((tmp / "emu.json").read_text())
        wait_caught_up(state, emu["value_messages"])
        con.send_signal(signal.SIGINT)
        con.communicate(timeout=600)
        st = json.loads((state / "status.json").read_text())
        alarms = [json.loads(x) for x in (state / "alarms.jsonl").read_text().splitlines()]
    finally:
        for proc in (locals().get("con"), broker):  # never leave a child behind
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    raised = [a for a in alarms if a["state"] == "raised"]
    print(f"campus-100mw clean, {emu['simulated_s'] / 3600:.1f} simulated hours in {time.time() - t0:.0f} s wall")
    print(f"  {emu['messages']:,} messages published ({emu['value_messages']:,} values), {st['values']:,} values into "
          f"connect, {st['ticks']} ticks")  # fmt: skip
    blind = sum(o["seconds"] for o in st["outages"])
    reasons = sorted({o["reason"] for o in st["outages"]})
    lost = emu["value_messages"] - st["values"]
    print(f"  connect's broker outages: {len(st['outages'])} ({blind:.1f} s blind; {reasons}); values lost: {lost:,}"
          f" -> {'gap-free' if lost == 0 and not st['outages'] else 'NOT gap-free'}")  # fmt: skip
    print(f"  alarms raised: {len(raised)} (target 0)")
    for a in raised[:20]:
        print("   ", a["time_ms"], a["entity"], a["kind"], a["point"], a["evidence"])
    ratio = st["ua_ratio_min"]
    print(f"  lowest UA estimate / design over all CDUs: {ratio:.3f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
