"""Concurrent dashboard sessions against the real server: callback latency percentiles.

Usage: python bench/bench_concurrency.py [--facility campus-100mw] [--sessions 20] [--seconds 60]
       [--controller mpc] [--url http://127.0.0.1:8050]

Starts ``factory-twin dashboard`` on a free loopback port (or uses ``--url``), then runs ``--sessions``
simulated browser tabs, each on one page (overview, cooling, racks, dispatch in turn), their 1 s ticks
spread evenly over the second as independent tabs' are. Like the browser,
a tab fetches the page through the routing callback, then on every interval tick (1 s) posts each Dash
callback that listens to the tick, with the page's real input and state values, over its own keep-alive
HTTP connection (http.client, one thread per tab). Prints p50/p95/max callback time per callback and
overall, requests per second and errors. Target: p95 <= 300 ms for 20 sessions on campus-100mw.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

PAGES = ("/", "/cooling", "/racks", "/dispatch")
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tab:
    """One browser tab: a keep-alive connection, the page's component values, the tick callbacks."""

    def __init__(self, url: str, path: str, deps: list[dict], layout_values: dict[str, dict]):
        u = urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.path, self.deps = path, deps
        page = self.post(self._route_payload())[1]["response"]["page"]["children"]
        self.values = dict(layout_values)
        _collect(page, self.values)
        self.calls = [d for d in deps if _listens_to_tick(d) and _all_present(d, self.values)]

    def _route_payload(self) -> dict:
        dep = next(d for d in self.deps if d["output"] == "page.children")
        return {
            "output": dep["output"],
            "outputs": {"id": "page", "property": "children"},
            "inputs": [{"id": "url", "property": "pathname", "value": self.path}],
            "changedPropIds": ["url.pathname"],
            "state": [],
        }

    def post(self, payload: dict) -> tuple[float, dict]:
        body = json.dumps(payload).encode()
        t0 = time.perf_counter()
        self.conn.request("POST", "/_dash-update-component", body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        dt = time.perf_counter() - t0
        if resp.status == 204:
            return dt, {}
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
        return dt, json.loads(data)

    def tick_payload(self, dep: dict, n: int) -> dict:
        def item(spec: dict) -> dict:
            cid, prop = spec["id"], spec["property"]
            value = n if (cid, prop) == ("tick", "n_intervals") else self.values.get(cid, {}).get(prop)
            return {"id": cid, "property": prop, "value": value}

        outs = [_out(o) for o in _outputs(dep["output"])]
        return {
            "output": dep["output"],
            "outputs": outs if len(outs) > 1 else outs[0],
            "inputs": [item(i) for i in dep["inputs"]],
            "changedPropIds": ["tick.n_intervals"],
            "state": [item(s) for s in dep.get("state", [])],
        }


def _outputs(output: str) -> list[str]:
    return output.removeprefix("..").removesuffix("..").split("...")


def _out(text: str) -> dict:
    cid, prop = text.rsplit(".", 1)
    return {"id": cid, "property": prop}


def _listens_to_tick(dep: dict) -> bool:
    return any(i["id"] == "tick" and i["property"] == "n_intervals" for i in dep["inputs"])


def _all_present(dep: dict, values: dict) -> bool:
    ids = {_out(o)["id"] for o in _outputs(dep["output"])} | {i["id"] for i in dep["inputs"]}
    return all(i in values for i in ids)


def _collect(node, values: dict) -> None:
    """Component id -> props, from a Dash layout JSON tree."""
    if isinstance(node, list):
        for n in node:
            _collect(n, values)
    elif isinstance(node, dict) and "props" in node:
        props = node["props"]
        if isinstance(props.get("id"), str):
            values[props["id"]] = props
        _collect(props.get("children"), values)


def run(url: str, sessions: int, seconds: float) -> dict:
    with urllib.request.urlopen(url + "/_dash-dependencies") as r:
        deps = json.loads(r.read())
    with urllib.request.urlopen(url + "/_dash-layout") as r:
        shell: dict[str, dict] = {}
        _collect(json.loads(r.read()), shell)
    times: dict[str, list[float]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(sessions + 1)

    def tab(k: int) -> None:
        t = Tab(url, PAGES[k % len(PAGES)], deps, shell)
        start.wait()
        time.sleep(k / sessions)  # independent tabs tick at their own phase within the 1 s interval
        t0, n = time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            n += 1
            tick_at = t0 + n * 1.0  # the dcc.Interval of every page: 1000 ms
            for dep in t.calls:
                try:
                    dt, _ = t.post(t.tick_payload(dep, n))
                except (RuntimeError, OSError) as e:
                    with lock:
                        errors.append(f"{t.path} {dep['output']}: {e}")
                    continue
                with lock:
                    times.setdefault(f"{t.path} {dep['output'][:40]}", []).append(dt)
            time.sleep(max(0.0, tick_at - time.monotonic()))

    threads = [threading.Thread(target=tab, args=(k,), daemon=True) for k in range(sessions)]
    for th in threads:
        th.start()
    start.wait()
    wall0 = time.monotonic()
    for th in threads:
        th.join()
    wall = time.monotonic() - wall0
    return {"times": times, "errors": errors, "wall": wall}


def report(res: dict, sessions: int) -> float:
    allt = np.concatenate([np.asarray(v) for v in res["times"].values()]) * 1e3
    print(f"{'callback':58s} {'n':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}")
    for k, v in sorted(res["times"].items()):
        a = np.asarray(v) * 1e3
        print(f"{k:58s} {a.size:6d} {np.percentile(a, 50):8.1f} {np.percentile(a, 95):8.1f} {a.max():8.1f}")
    p95 = float(np.percentile(allt, 95))
    print(
        f"{'all callbacks':58s} {allt.size:6d} {np.percentile(allt, 50):8.1f} {p95:8.1f} {allt.max():8.1f}\n"
        f"{sessions} sessions, {allt.size / res['wall']:.1f} requests/s, {len(res['errors'])} errors; "
        f"p95 {p95:.0f} ms (target <= 300 ms): {'met' if p95 <= 300 else 'NOT met'}"
    )
    for e in res["errors"][:5]:
        print("  error:", e)
    return p95


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--facility", default="campus-100mw")
    ap.add_argument("--controller", default="mpc")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--url", help="an already running dashboard (default: start one on a free port)")
    args = ap.parse_args()
    proc = None
    url = args.url
    if url is None:
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "factory_twin", "dashboard", args.facility, "--controller", args.controller,
             "--port", str(port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the dashboard did not start") from None
                time.sleep(0.5)
        time.sleep(5)  # the first snapshots
    try:
        p95 = report(run(url, args.sessions, args.seconds), args.sessions)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    return 0 if p95 <= 300 else 1


if __name__ == "__main__":
    sys.exit(main())
