"""DSX Exchange throughput: a facility's whole BMS publication at 1 value per point per second through a
real Mosquitto into ``factory-twin connect``.

The emulator runs in real time (``--speed 1 --start now --plant-step 1s --every-step``: every point every
second, value timestamps on the wall clock); ``connect`` maps, stores and diagnoses. Reported: the point
count, messages per second published and taken in, the lag from a value's timestamp to its being in the
shadow twin (p50/p99, sampled), and where each side spends its time.

    python bench/bench_bms.py                      # campus-1gw, 60 s
    python bench/bench_bms.py --facility campus-100mw --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facility", default="campus-1gw")
    ap.add_argument("--seconds", type=float, default=60.0, help="wall seconds of publication")
    args = ap.parse_args()
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    tmp = Path(tempfile.mkdtemp(prefix="bench-bms-"))
    port = free_port()
    conf = tmp / "mosquitto.conf"
    # no per-client queue limit: a slow consumer backs up in the broker instead of losing values
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n")
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)])
    url = f"mqtt://127.0.0.1:{port}"
    py = [sys.executable, "-m", "factory_twin"]
    try:
        time.sleep(0.5)
        state = tmp / "state"
        con_cmd = [*py, "connect", args.facility, "--broker", url, "--state-dir", str(state), "--no-requests"]
        con = subprocess.Popen(con_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while not (state / "status.json").exists():
            time.sleep(0.2)
        t0 = time.time()
        subprocess.run(
            [*py, "emulate-bms", args.facility, "--broker", url, "--speed", "1", "--start", "now",
             "--plant-step", "1s", "--every-step", "--duration", f"{args.seconds:g}s",
             "--summary", str(tmp / "emu.json")],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        t_pub = time.time() - t0
        rep = json.loads((tmp / "emu.json").read_text())
        # let connect drain what the broker still holds, then stop it
        last, quiet = -1, time.time()
        while time.time() - quiet < 3.0:
            st = json.loads((state / "status.json").read_text())
            if st["messages"] != last:
                last, quiet = st["messages"], time.time()
            time.sleep(0.3)
        t_drain = time.time() - t0
        con.send_signal(signal.SIGINT)
        con.communicate(timeout=300)
        st = json.loads((state / "status.json").read_text())
    finally:
        for proc in (locals().get("con"), broker):  # never leave a child behind
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    pts = rep["points"]["bms_values"]
    sim, wall_pub = rep["simulated_s"], rep["wall_s"]
    print(f"facility {args.facility}: {pts} BMS points (+{rep['points']['integration']} integration points)")
    print(f"emulator: {sim:.0f} s simulated in {wall_pub:.1f} s wall ({sim / wall_pub:.2f}x real time), "
          f"{rep['messages']} messages = {rep['messages'] / wall_pub:,.0f} msg/s published")  # fmt: skip
    tm = rep["timing_s"]
    print(f"  emulator time: twin {tm['twin']:.1f} s, sensors {tm['sensors']:.1f} s, publish {tm['publish']:.1f} s")
    print(f"connect: {st['values']} values in {t_drain:.1f} s = {st['values'] / t_drain:,.0f} values/s sustained "
          f"(publication took {t_pub:.1f} s); history rows {st['history_rows']}")  # fmt: skip
    print(f"  lag value timestamp -> in the shadow twin: p50 {st['lag_p50_s']:.2f} s, p99 {st['lag_p99_s']:.2f} s")
    print(f"  connect time: busy {st['busy_s']:.1f} s (shadow-twin ticks {st['tick_s']:.1f} s), "
          f"history flush {st['flush_s']:.1f} s")  # fmt: skip
    reached = min(rep["messages"] / wall_pub, st["values"] / t_drain)
    print(f"target {pts:,} msg/s (every point at 1 Hz) with p99 <= 1 s: reached {reached:,.0f} msg/s, "
          f"p99 {st['lag_p99_s']:.2f} s")  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
