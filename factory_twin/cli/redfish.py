"""``factory-twin emulate-bmc`` and ``factory-twin steer``: the Redfish commands (docs/links.md)."""

from __future__ import annotations

from pathlib import Path

from factory_twin.cli.options import (
    DefaultsFormatter,
    add_duration,
    add_facility_scenario,
    add_speed,
    check_parent,
    check_state_dir,
    positive,
)

DEFAULT_LISTEN = "127.0.0.1:8443"


def add_parsers(sub) -> None:
    e = sub.add_parser(
        "emulate-bmc",
        help="run the twin behind a Redfish service: every compute node's BMC, with power limits",
        formatter_class=DefaultsFormatter,
        description="One aggregating Redfish service (DSP0266) for the facility's compute nodes, backed by the "
        "running twin: a Chassis and System per node, its GPUs as Processors, EnvironmentMetrics with PowerWatts "
        "and a writable PowerLimitWatts. Limits written act on the twin from its next plant step. HTTPS with "
        "Basic auth or sessions; plain HTTP only with --insecure-http (tests).",
    )
    add_facility_scenario(e)
    e.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT to serve on (127.0.0.1: this machine only)")
    add_speed(e, default="1")
    e.add_argument("--start", help="simulated start time, ISO (default: the scenario's start)")
    e.add_argument("--plant-step", default="1s", help="plant step of the twin (simulated): readings move this often")
    add_duration(e, "stop after this simulated time, e.g. 2h (default: run until SIGINT/SIGTERM)")
    e.add_argument("--accounts", type=Path, required=True, help="TOML of [[accounts]] username, password, role")
    tls = e.add_argument_group("TLS (one of)")
    tls.add_argument("--tls-cert", type=Path, help="server certificate (PEM), with --tls-key")
    tls.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    tls.add_argument("--tls-self-signed", type=Path, metavar="DIR", help="make a self-signed cert.pem/key.pem in DIR")
    tls.add_argument("--tls-ca", type=Path, help="also require client certificates signed by this CA (mutual TLS)")
    tls.add_argument("--insecure-http", action="store_true", help="plain HTTP, credentials accepted (tests only)")
    e.add_argument(
        "--watchdog",
        type=positive("seconds"),
        default=30.0,
        help="wall seconds without a request from the controlling client before the nodes fall back",
    )
    e.add_argument("--fallback", choices=("min", "default"), default="min", help="the nodes' safe idle policy")
    e.add_argument("--session-timeout", type=positive("seconds"), default=600.0, help="idle session timeout [s]")
    e.add_argument("--status-every", type=positive("seconds"), default=10.0, help="print a status line this often")
    e.set_defaults(run=run_emulate_bmc)

    s = sub.add_parser(
        "steer",
        help="push the controller's power limits to BMCs over Redfish",
        formatter_class=DefaultsFormatter,
        description="Every --step: read the service's clock, run the controller when due, write the limits that "
        "changed to the nodes' EnvironmentMetrics (never above their AllowableMax), verify them from the BMCs' "
        "answers, retry with backoff, report nodes that refuse or lag. Stopping (Ctrl-C) logs out: the nodes fall "
        "back to their idle policy.",
    )
    add_facility_scenario(s)
    s.add_argument("--redfish", required=True, help="https://HOST:PORT of the Redfish service (aggregator or BMC)")
    s.add_argument(
        "--credentials",
        type=Path,
        help="TOML with username, password, auth, ca_file (default: $FACTORY_TWIN_REDFISH_USER/_PASSWORD)",
    )
    s.add_argument(
        "--tls-ca", type=Path, help="CA bundle of the BMCs' certificates (overrides the credentials' ca_file)"
    )
    s.add_argument("--tls-cert", type=Path, help="client certificate, for services that ask for one (with --tls-key)")
    s.add_argument("--tls-key", type=Path, help="its private key")
    s.add_argument("--controller", default="mpc", help="mpc | mpc-n1 | uncapped | fixed:FRACTION")
    s.add_argument("--step", type=positive("seconds"), default=1.0, help="steering step [wall s]")
    s.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    s.add_argument("--retries", type=int, default=3, help="retries of a write that gets no answer, 5xx or 429")
    s.add_argument("--timeout", type=positive("seconds"), default=5.0, help="per request [s]")
    s.add_argument("--sweep", type=int, default=64, help="nodes read back per step to find changes made elsewhere")
    s.add_argument("--until", help="stop at this simulated time of the service's clock (ISO)")
    add_duration(s, "stop after this wall time, e.g. 8h (default: until SIGINT/SIGTERM)")
    s.add_argument("--status", type=Path, help="write the steering state here as JSON after every step")
    s.set_defaults(run=run_steer)


def run_emulate_bmc(args) -> int:
    import signal
    import threading
    import time

    import numpy as np

    from factory_twin import twin
    from factory_twin.links.redfish.auth import load_accounts
    from factory_twin.links.redfish.emulator import BmcEmulator
    from factory_twin.links.redfish.server import Server, parse_listen
    from factory_twin.links.redfish.tls import self_signed
    from factory_twin.twin.scenario.timeparse import seconds, site_time
    from factory_twin.twin.simulation.meters import grid_import_w

    host, port = parse_listen(args.listen)
    given = [o for o, v in (("--tls-cert", args.tls_cert), ("--tls-self-signed", args.tls_self_signed)) if v]
    if args.insecure_http and (given or args.tls_key or args.tls_ca):
        raise ValueError("--insecure-http: plain HTTP cannot go with --tls-cert/--tls-key/--tls-ca/--tls-self-signed")
    if len(given) > 1:
        raise ValueError("--tls-self-signed: give either it or --tls-cert/--tls-key")
    if not (args.insecure_http or args.tls_cert or args.tls_key or args.tls_self_signed):
        raise ValueError("--tls-cert/--tls-key: HTTPS needs a certificate (or --tls-self-signed DIR for a lab)")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_self_signed:
        check_state_dir(args.tls_self_signed, "--tls-self-signed")
    for option, p in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key), ("--tls-ca", args.tls_ca)):
        if p is not None and not p.is_file():
            raise FileNotFoundError(f"{option}: no such file {p}")
    accounts = load_accounts(args.accounts)
    plant_step = seconds(args.plant_step, "--plant-step")
    start = None
    if args.start:
        try:
            start = str(np.datetime64(args.start, "s"))
        except ValueError:
            raise ValueError(f"--start: expected an ISO time, got {args.start!r}") from None
    f = twin.load_facility(args.facility)
    sc = twin.load_scenario(args.scenario, f)
    cert, key = args.tls_cert, args.tls_key
    if args.tls_self_signed:
        cert, key = self_signed(args.tls_self_signed, (host, "localhost") if host != "localhost" else (host,))
        print(f"emulate-bmc: self-signed certificate {cert} (give it to clients as their CA)", flush=True)
    emu = BmcEmulator(
        f,
        sc,
        accounts,
        speed=args.speed,
        start=start,
        plant_step_s=plant_step,
        watchdog_s=args.watchdog,
        fallback=args.fallback,
        session_timeout_s=args.session_timeout,
        allow_http_auth=args.insecure_http,
    )
    server = Server(emu.app, host, port, cert, key, args.tls_ca)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    lay = emu.layout
    print(
        f"emulate-bmc: {f.spec.name}: {lay.n_nodes} nodes, {lay.n_gpus} GPUs at {server.url}/redfish/v1 "
        f"(speed {args.speed:g}x, watchdog {args.watchdog:g} s, fallback {args.fallback})",
        flush=True,
    )
    t0, sim0 = time.monotonic(), emu.twin.time
    next_status = t0 + args.status_every
    emu.start(args.duration or np.inf)
    try:
        while not stop.wait(0.1):
            done = float((emu.twin.time - sim0) / np.timedelta64(1, "s"))
            if args.duration and done >= args.duration:
                break
            if time.monotonic() < next_status:
                continue
            next_status += args.status_every
            last = emu.last
            imp = f"{grid_import_w(last) / 1e6:.3f} MW" if last else "-"
            late = f", {emu.behind_s:.0f} s behind --speed" if emu.behind_s > 2 * plant_step else ""
            print(
                f"emulate-bmc: {site_time(emu.twin.time, f.spec.site.utc_offset_h)} import {imp}, "
                f"{emu.app.requests} requests, {emu.app.patches} writes, lease {emu.holder or 'vacant'}, "
                f"{len(emu.fallbacks)} fallbacks{late}",
                flush=True,
            )
    finally:
        emu.stop()
        server.stop()
    print(
        f"emulate-bmc: {emu.twin.time - sim0} simulated in {time.monotonic() - t0:.1f} s; {emu.app.requests} "
        f"requests, {emu.app.patches} limit writes, {len(emu.fallbacks)} fallbacks to the idle policy",
        flush=True,
    )
    for fb in emu.fallbacks:
        print(f"emulate-bmc: fallback at {fb.sim_time}: {fb.reason} ({fb.gpus} GPUs)", flush=True)
    return 0


def run_steer(args) -> int:
    import asyncio
    import importlib.util
    import json
    import signal
    import time
    from dataclasses import replace

    import numpy as np

    from factory_twin import twin
    from factory_twin.links.redfish.credentials import load_credentials
    from factory_twin.links.redfish.layout import NodeLayout
    from factory_twin.links.redfish.steer import Connection, LimitPusher, SteerState
    from factory_twin.links.redfish.steering import run_steering
    from factory_twin.optimization.controllers import make_controller
    from factory_twin.twin.runs.atomic import write_atomic

    if not args.redfish.startswith("https://"):
        raise ValueError(f"--redfish: credentials go over HTTPS only, expected https://HOST:PORT, got {args.redfish!r}")
    if args.status is not None:
        check_parent(args.status, "--status")
    for option, n, least in (
        ("--concurrency", args.concurrency, 1),
        ("--retries", args.retries, 0),
        ("--sweep", args.sweep, 0),
    ):
        if n < least:
            raise ValueError(f"{option}: must be >= {least}, got {n}")
    until = None
    if args.until:
        try:
            until = np.datetime64(args.until, "s")
        except ValueError:
            raise ValueError(f"--until: expected an ISO time, got {args.until!r}") from None
    creds = load_credentials(args.credentials)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    for option, p in (("--tls-ca", args.tls_ca), ("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if p is not None and not p.is_file():
            raise FileNotFoundError(f"{option}: no such file {p}")
    creds = replace(creds, ca_file=args.tls_ca or creds.ca_file, client_cert=args.tls_cert, client_key=args.tls_key)
    f = twin.load_facility(args.facility)
    sc = twin.load_scenario(args.scenario, f)
    controller = make_controller(args.controller, f, sc, "--controller")
    layout = NodeLayout.of(f)
    url = args.redfish.rstrip("/")

    def write_status(st: SteerState) -> None:
        if args.status:
            payload = json.dumps(st.as_dict(), default=str).encode()
            write_atomic(args.status, lambda fh: fh.write(payload))

    def show(rep) -> None:
        print(f"steer: {rep.sim_time}: {rep.summary()}", flush=True)

    async def main() -> SteerState:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        t_end = time.monotonic() + args.duration if args.duration else None
        conn = await Connection.open(url, creds, args.concurrency, args.timeout)
        try:
            state = SteerState(url)
            pusher = LimitPusher(conn.client, layout, state, args.concurrency, args.retries, relogin=conn.relogin)
            t0 = time.monotonic()
            found = await pusher.discover()
            print(f"steer: {url}: {found} of {layout.n_nodes} nodes answered in {time.monotonic() - t0:.1f} s")
            if found < layout.n_nodes:
                print(f"steer: {layout.n_nodes - found} nodes did not answer: their bounds are read before a write")

            def done(now) -> bool:
                late = t_end is not None and time.monotonic() >= t_end
                return late or (until is not None and now is not None and now >= until)

            return await run_steering(
                pusher, controller, f, sc, args.step, args.sweep, done, stop, on_push=show, on_step=write_status
            )
        finally:
            await conn.close()

    runner = asyncio.run
    if importlib.util.find_spec("uvloop"):  # compiled TLS: 15 % less client CPU per request (bench_redfish.py)
        import uvloop

        runner = uvloop.run
    state = runner(main())
    write_status(state)
    print(
        f"steer: {state.steps} steps, {state.pushes} pushes, {state.requests} requests, {state.refused_total} "
        f"refused, {state.failed_total} unanswered, {state.resyncs} resyncs; logged out (the nodes fall back)",
        flush=True,
    )
    return 0


__all__ = ["add_parsers"]
