"""DSX Exchange throughput: a facility's whole BMS publication at 1 value per point per second through a
real Mosquitto into ``factory-twin connect``.

The emulator runs in real time (``--speed 1 --start now --plant-step 1s --every-step``: every point every
second, value timestamps on the wall clock, each step's values spread over the step); ``connect`` maps,
stores and diagnoses. Reported: the point count, messages per second published and taken in, the lag from a
value's timestamp to its being in the shadow twin (p50/p99, sampled; over the whole run, and over the last
30 s of intake, after connect's start-up has mapped every point), and where the CPU goes: each process's
CPU seconds (emulator, connect, Mosquitto, read from the kernel) per message, split into the parts each
process times itself (paho's network thread is the rest of its process).

    python bench/bench_bms.py                      # campus-1gw, 90 s, every point at 1 Hz
    python bench/bench_bms.py --period 2s          # every point every 2 s (0.5 Hz)
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


def start_broker(folder: Path) -> tuple[subprocess.Popen, int]:
    """Mosquitto on a free 127.0.0.1 port with no per-client queue limit (a slow consumer backs up in the
    broker instead of losing values), given half a second to listen; returns the process and the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n")
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)])
    time.sleep(0.5)
    return broker, port


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_caught_up(state: Path, values: int, stall_s: float = 60.0) -> float:
    """Wait until connect has taken ``values`` values (or made no progress for ``stall_s``, e.g. a message
    lost); returns the wall time its count last moved."""
    last, moved = -1, time.time()
    while time.time() - moved < stall_s:
        st = json.loads((state / "status.json").read_text())
        if st["values"] != last:
            last, moved = st["values"], time.time()
        if last >= values:
            break
        time.sleep(0.3)
    return moved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facility", default="campus-1gw")
    ap.add_argument("--seconds", type=float, default=90.0, help="wall seconds of publication")
    ap.add_argument("--period", default="1s", help="every point published once per this period (plant step)")
    args = ap.parse_args()
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    load0 = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    tmp = Path(tempfile.mkdtemp(prefix="bench-bms-"))
    broker, port = start_broker(tmp)
    url = f"mqtt://127.0.0.1:{port}"
    py = [sys.executable, "-m", "factory_twin"]
    try:
        state = tmp / "state"
        con_cmd = [*py, "connect", args.facility, "--broker", url, "--state-dir", str(state), "--no-requests"]
        con = subprocess.Popen(con_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while not (state / "status.json").exists():
            time.sleep(0.2)
        con_cpu0 = cpu_s(con.pid)  # started and subscribed: startup CPU is not counted
        t0, broker_cpu0 = time.time(), cpu_s(broker.pid)
        subprocess.run(
            [*py, "emulate-bms", args.facility, "--broker", url, "--speed", "1", "--start", "now",
             "--plant-step", args.period, "--every-step", "--duration", f"{args.seconds:g}s",
             "--summary", str(tmp / "emu.json")],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        t_pub = time.time() - t0
        rep = json.loads((tmp / "emu.json").read_text())
        quiet = wait_caught_up(state, rep["value_messages"])
        t_drain = quiet - (t0 + t_pub - rep["wall_s"])  # from the first publication to the last value taken in
        con_cpu, broker_cpu = cpu_s(con.pid) - con_cpu0, cpu_s(broker.pid) - broker_cpu0
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
    emu_cpu = tm["process_cpu"]
    n_msg = rep["messages"]
    print(f"connect: {st['values']} values in {t_drain:.1f} s = {st['values'] / t_drain:,.0f} values/s sustained "
          f"(publication took {rep['wall_s']:.1f} s); history rows {st['history_rows']}")  # fmt: skip
    lost = rep["value_messages"] - st["values"]
    reasons = sorted({o["reason"] for o in st["outages"]})
    print(f"  values lost: {lost:,} of {rep['value_messages']:,}; connect's broker outages: {len(st['outages'])} "
          f"{reasons} (a connection that falls further behind than its keep-alive is dropped and the broker's "
          "queue with it)")  # fmt: skip
    print(f"  lag value timestamp -> in the shadow twin: p50 {st['lag_p50_s']:.2f} s, p99 {st['lag_p99_s']:.2f} s over "
          f"the run; the last 30 s of intake (start-up over) p50 {st['lag_recent_p50_s']:.2f} s, p99 "
          f"{st['lag_recent_p99_s']:.2f} s")  # fmt: skip
    us = 1e6 / n_msg
    print(f"CPU per message [us] (CPU s x 1e6 / {n_msg:,} messages, startup excluded; parts: CPU of the stepping/"
          "applying thread)")  # fmt: skip
    print(f"  emulator  {emu_cpu * us:6.1f}  (twin {tm['twin'] * us:.1f}, sensors {tm['sensors'] * us:.1f}, "
          f"format + paho publish {tm['publish'] * us:.1f}, the rest paho's network thread)")  # fmt: skip
    print(f"  mosquitto {broker_cpu * us:6.1f}")
    print(f"  connect   {con_cpu * us:6.1f}  (main thread {st['main_cpu_s'] * us:.1f}: apply "
          f"{(st['busy_s'] - st['tick_s']) * us:.1f}, shadow-twin ticks {st['tick_s'] * us:.1f}, history flush "
          f"{st['flush_s'] * us:.1f}; the rest paho's network thread)")  # fmt: skip
    total = (emu_cpu + broker_cpu + con_cpu) * us
    print(f"  total     {total:6.1f} us/message -> {2e6 / total:,.0f} msg/s on 2 whole cores at most")
    rate = pts / rep["plant_step_s"]
    reached = min(n_msg / wall_pub, st["values"] / t_drain)
    print(f"target {rate:,.0f} msg/s (every point every {rep['plant_step_s']:g} s) with p99 lag <= 1 s: reached "
          f"{reached:,.0f} msg/s, p99 {st['lag_p99_s']:.2f} s (last 30 s {st['lag_recent_p99_s']:.2f} s; load before "
          f"the run {load0})")  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
