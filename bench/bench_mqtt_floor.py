"""The transport floor under DSX Exchange: CPU per message of bare paho publish -> Mosquitto -> paho subscribe,
with no twin, no formatting and no ingest, on BMS-shaped topics and payloads.

Whatever ``emulate-bms`` and ``connect`` do on top, a publication of N messages per second costs at least
N x (publisher + broker + subscriber) CPU seconds per second; on a 2-core machine that bounds the rate.

    python bench/bench_mqtt_floor.py [--messages 200000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
from bench_bms import cpu_s, start_broker  # this folder is on sys.path when the script runs
from paho.mqtt.enums import CallbackAPIVersion

SUBSCRIBER = """
import sys, time, paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
n, want = [0], int(sys.argv[2])
c = paho.Client(CallbackAPIVersion.VERSION2)
c.on_message = lambda *_: n.__setitem__(0, n[0] + 1)
c.connect("127.0.0.1", int(sys.argv[1]))
c.subscribe("BMS/#")
c.loop_start()
time.sleep(0.5)
print("ready", flush=True)
cpu0 = time.process_time()
while n[0] < want:
    time.sleep(0.05)
print(time.process_time() - cpu0, flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000)
    n = ap.parse_args().messages
    tmp = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    broker, port = start_broker(tmp)
    sub = None
    try:
        sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(port), str(n)], stdout=subprocess.PIPE, text=True)
        sub.stdout.readline()
        topics = [
            f"BMS/v1/PUB/Value/Rack/RackLiquidSupplyTemperature/campus/hall-{i % 10}/r{i:05d}" for i in range(7000)
        ]
        pub = paho.Client(CallbackAPIVersion.VERSION2)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        b0, t0, w0 = cpu_s(broker.pid), time.process_time(), time.time()
        for i in range(n):
            pub.publish(topics[i % 7000], f'{{"value":{20 + i % 100 / 10:.2f},"timestamp":1764500000000,"quality":1}}')
        sub_cpu = float(sub.stdout.readline())
        wall, pub_cpu, broker_cpu = time.time() - w0, time.process_time() - t0, cpu_s(broker.pid) - b0
        pub.loop_stop()
    finally:
        for proc in (sub, broker):  # never leave a child behind
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    us = 1e6 / n
    total = (pub_cpu + broker_cpu + sub_cpu) * us
    print(f"{n:,} messages in {wall:.1f} s (load {load}); CPU per message: paho publish {pub_cpu * us:.1f} us, "
          f"mosquitto {broker_cpu * us:.1f} us, paho subscribe {sub_cpu * us:.1f} us = {total:.1f} us")  # fmt: skip
    print(f"floor: {2e6 / total:,.0f} msg/s on 2 whole cores; campus-1gw at 1 Hz (51,861 msg/s) needs "
          f"{51_861 * total / 1e6:.2f} cores for transport alone")  # fmt: skip


if __name__ == "__main__":
    main()
