"""Redfish push: a full push of every node's limit through the emulated BMCs, a steering step's worth, per-request cost.

Usage: python bench/bench_redfish.py [--facility campus-100mw] [--concurrency 8 16] [--step-nodes 500 1000 1500 2000]

Starts ``factory-twin emulate-bmc`` (uvicorn, HTTPS with a self-signed certificate) in its own process, then from
this process with steer's pusher (DMTF's ``redfish`` asyncio client, one session): discovery (a GET of every
node's EnvironmentMetrics), a full push (a PATCH of every node; target <= 10 s for campus-100mw's 15,120 nodes),
a push that changes nothing, and pushes of ``--step-nodes`` changed nodes (what a 1 s steering step can apply:
target within 1 s). Per request: the wall time at the concurrency, and the CPU of the client (this process) and
of the server (its /proc stat). Last, campus-1gw (129,600 nodes) on paper from those figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from factory_twin.links.redfish.credentials import Credentials
from factory_twin.links.redfish.layout import NodeLayout
from factory_twin.links.redfish.steer import Connection, LimitPusher, SteerState

from factory_twin import twin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import free_port, wait_for

GW_NODES = 129_600
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU of process ``pid`` so far [s]."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def run(url: str, cert: Path, layout: NodeLayout, server_pid: int, conc: int, step_nodes: list[int]) -> dict:
    out: dict = {}
    conn = await Connection.open(url, Credentials("bench", "bench-password", ca_file=cert), conc, 30)
    try:
        p = LimitPusher(conn.client, layout, SteerState(url), concurrency=conc)
        n = layout.n_nodes
        f = layout.facility
        base = layout.per_rack(np.maximum(0.8 * f.tdp_w, f.min_cap_w))

        async def timed(what: str, coro, requests: int):
            c0, s0, t0 = time.process_time(), cpu_s(server_pid), time.perf_counter()
            result = await coro
            wall = time.perf_counter() - t0
            out[what] = (
                wall,
                requests,
                (time.process_time() - c0) / max(requests, 1),
                (cpu_s(server_pid) - s0) / max(requests, 1),
            )
            return result

        await timed("discover (GET every node)", p.discover(), n)
        rep = await timed("full push (PATCH every node)", p.push(base), n)
        assert rep.applied == n, rep.summary()
        rep = await timed("push, nothing changed", p.push(base), 0)
        assert rep.writes == 0
        rng = np.random.default_rng(0)
        for k in step_nodes:
            nodes = rng.choice(n, size=min(k, n), replace=False)
            want = base.copy()
            for i in nodes:  # a deeper cap on k nodes
                a = layout.node_first_gpu[i]
                want[a : a + layout.node_gpus[i]] = np.maximum(0.6 * want[a], layout.per_rack(f.min_cap_w)[a])
            rep = await timed(f"step push, {k} nodes changed", p.push(want, deadline_s=1.0), k)
            out[f"step push, {k} nodes changed"] += (len(rep.lagging),)
            await p.push(base)  # back, for the next size
    finally:
        await conn.close()
    return out


def run_loop(coro, plain: bool):
    if plain:
        return asyncio.run(coro)
    import uvloop

    return uvloop.run(coro)


def _answers(url: str, cert: Path) -> bool:
    import ssl
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/redfish/v1/", context=ssl.create_default_context(cafile=cert)) as r:
            return r.status == 200
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--facility", default="campus-100mw")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--step-nodes", type=int, nargs="+", default=[500, 1000, 1500, 2000])
    ap.add_argument("--asyncio", action="store_true", help="the client on asyncio's own loop, not uvloop")
    a = ap.parse_args()
    f = twin.load_facility(a.facility)
    layout = NodeLayout.of(f)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "accounts.toml").write_text(
            '[[accounts]]\nusername = "bench"\npassword = "bench-password"\nrole = "Operator"\n'
        )
        port = free_port()
        argv = [sys.executable, "-m", "factory_twin", "emulate-bmc", a.facility, "--listen", f"127.0.0.1:{port}"]
        argv += ["--accounts", str(d / "accounts.toml"), "--tls-self-signed", str(d / "tls"), "--watchdog", "3600"]
        emu = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            cert = d / "tls" / "cert.pem"
            wait_for(lambda: cert.is_file(), 120, "the emulator's certificate")
            url = f"https://127.0.0.1:{port}"
            wait_for(lambda: _answers(url, cert), 120, "the emulator")
            print(f"{a.facility}: {layout.n_nodes} nodes, {layout.n_gpus} GPUs; emulate-bmc (HTTPS) pid {emu.pid}")
            print(f"load average before: {os.getloadavg()[0]:.2f}")
            best = None
            for conc in a.concurrency:
                res = run_loop(run(url, cert, layout, emu.pid, conc, a.step_nodes), a.asyncio)
                print(f"\nconcurrency {conc}:")
                print(f"  {'':34s} {'wall s':>8s} {'ms/req':>8s} {'client CPU ms/req':>18s} {'server CPU ms/req':>18s}")
                for what, row in res.items():
                    wall, n, ccpu, scpu = row[:4]
                    per = f"{wall / n * 1e3:8.3f}" if n else f"{'-':>8s}"
                    extra = f"  ({row[4]} not applied within 1 s)" if len(row) > 4 else ""
                    print(f"  {what:34s} {wall:8.2f} {per} {ccpu * 1e3:18.3f} {scpu * 1e3:18.3f}{extra}")
                full = res["full push (PATCH every node)"]
                if best is None or full[0] < best[0]:
                    best = (*full[:4], conc)
            print(f"load average after: {os.getloadavg()[0]:.2f}")
        finally:
            emu.terminate()
            emu.wait(30)
    wall, n, ccpu, scpu, conc = best
    per = wall / n
    print(f"\ncampus-1gw on paper ({GW_NODES} nodes), from the best full push (concurrency {conc}):")
    print(f"  one steer process, one service like this one: {GW_NODES * per:.0f} s ({per * 1e3:.3f} ms per node)")
    print(
        f"  real BMCs serve in parallel; steer's own CPU bounds it: {GW_NODES * ccpu:.0f} CPU s, "
        f"{GW_NODES * ccpu / 4:.0f} s on 4 cores (4 steer processes by hall)"
    )
    print(f"  a 1 s step applies ~{1.0 / per:.0f} changed nodes per service at this rate")


if __name__ == "__main__":
    main()
