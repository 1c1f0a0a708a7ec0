"""``factory-twin emulate-bms`` and ``factory-twin connect``: the DSX Exchange commands."""

from __future__ import annotations

from pathlib import Path

from factory_twin.cli.options import (
    DefaultsFormatter,
    add_broker_options,
    add_duration,
    add_facility_scenario,
    add_metrics_options,
    add_speed,
    broker_config,
    check_parent,
    check_state_dir,
    metrics_server,
)

DEFAULT_INTEGRATION = "FactoryTwin"


def add_parsers(sub) -> None:
    e = sub.add_parser(
        "emulate-bms",
        help="run the twin as the plant and publish it on DSX Exchange (MQTT)",
        formatter_class=DefaultsFormatter,
    )
    add_facility_scenario(e)
    add_broker_options(e)
    e.add_argument("--integration", default=DEFAULT_INTEGRATION, help="integration granted the request points")
    add_speed(e, default="1", flat_out=True)
    add_duration(e, "stop after this simulated time, e.g. 2h (default: run on)")
    e.add_argument("--plant-step", default="10s", help="plant step and sampling period (simulated)")
    e.add_argument("--fault", action="append", default=[], help="KIND:TARGET[:VALUE]@START (repeatable)")
    e.add_argument("--sp-min", type=float, help="lowest CDU supply setpoint accepted [degC] (design - 3)")
    e.add_argument("--sp-max", type=float, help="highest CDU supply setpoint accepted [degC] (design + 5)")
    e.add_argument("--sp-rate", type=float, default=0.5, help="setpoint rate limit [K/min]")
    e.add_argument("--seed", type=int, default=0, help="sensor-noise seed")
    e.add_argument("--start", help="simulated start time, ISO or 'now' (default: the scenario's start)")
    e.add_argument("--every-step", action="store_true", help="publish every point at every sample (load test)")
    e.add_argument("--summary", type=Path, help="write a JSON run summary here at the end")
    e.set_defaults(run=run_emulate)

    c = sub.add_parser(
        "connect", help="run the shadow twin beside a plant on DSX Exchange (MQTT)", formatter_class=DefaultsFormatter
    )
    add_facility_scenario(c, scenario=False)  # the spec the site maps onto
    add_broker_options(c)
    c.add_argument("--state-dir", type=Path, required=True, help="history, alarms, requests and state live here")
    c.add_argument("--integration", default=DEFAULT_INTEGRATION, help="our integration id (request topics)")
    c.add_argument("--point-map", type=Path, help="TOML override: [entities] site id -> twin id, [points]")
    c.add_argument("--no-requests", action="store_true", help="never publish setpoint requests (observe only)")
    c.add_argument("--request-min", type=float, help="lowest supply request [degC] (design)")
    c.add_argument("--request-max", type=float, help="highest supply request [degC] (design + 4)")
    c.add_argument("--request-rate", type=float, default=0.25, help="request rate limit [K/min]")
    c.add_argument("--die-margin", type=float, default=3.0, help="die temperature margin kept at TDP [K]")
    add_duration(c, "stop after this wall time, e.g. 8h (default: until SIGINT/SIGTERM)")
    add_metrics_options(c, gpu_series=False)
    c.set_defaults(run=run_connect)


def _stop_event():
    """An event set by SIGINT or SIGTERM (the loops poll it and stop cleanly)."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run_emulate(args) -> int:
    import json
    import time

    import numpy as np

    from factory_twin import twin
    from factory_twin.links.dsx_exchange.contract import check_integration_name
    from factory_twin.links.dsx_exchange.emulator import BmsEmulator, Guardrails
    from factory_twin.links.dsx_exchange.faults import parse_fault
    from factory_twin.links.mqtt import MqttClient
    from factory_twin.twin.scenario.timeparse import seconds

    cfg = broker_config(args, args.broker)
    check_integration_name(args.integration)
    duration = args.duration or float("inf")
    faults = tuple(parse_fault(s) for s in args.fault)
    if args.summary and args.summary.exists():
        raise ValueError(f"--summary: {args.summary} exists (remove it first)")
    if args.summary:
        check_parent(args.summary, "--summary")
    f = twin.load_facility(args.facility)
    sc = twin.load_scenario(args.scenario, f)
    sp = f.spec.cooling.tcs.supply_setpoint_c
    guard = Guardrails(
        args.sp_min if args.sp_min is not None else sp - 3.0,
        args.sp_max if args.sp_max is not None else sp + 5.0,
        args.sp_rate,
    )
    client = MqttClient(cfg, client_id=f"bms-emulator-{f.spec.name}")
    start, t0_epoch = None, None
    if args.start == "now":  # the plant clock is the wall clock
        t0_epoch = int(time.time())
        start = str(np.datetime64(t0_epoch, "s"))
    elif args.start:
        try:
            start = str(np.datetime64(args.start, "s"))
        except ValueError:
            raise ValueError(f"--start: expected an ISO time or 'now', got {args.start!r}") from None
    step = seconds(args.plant_step, "--plant-step")
    if step != round(step):
        raise ValueError(f"--plant-step: must be a whole number of seconds (the BMS clock), got {args.plant_step!r}")
    emu = BmsEmulator(f, sc, client, args.integration, faults, guard, step, args.seed, start, args.every_step)
    client.start()
    stop = _stop_event()
    print(f"emulate-bms: {f.spec.name} on {cfg.url}: {emu.cat.point_count()['bms_values']} points", flush=True)
    try:
        report = emu.run(duration, args.speed, stop.is_set, t0_epoch)
    finally:
        client.stop()
    print(
        f"emulate-bms: {report['simulated_s']:.0f} s simulated in {report['wall_s']:.1f} s, "
        f"{report['messages']} messages, {report['requests_received']} requests "
        f"({report['requests_rejected']} rejected)",
        flush=True,
    )
    if args.summary:
        tmp = args.summary.with_suffix(".tmp")
        tmp.write_text(json.dumps(report))
        tmp.replace(args.summary)
    return 0


def run_connect(args) -> int:
    import time

    from factory_twin import twin
    from factory_twin.links.dsx_exchange.connect import Connector, RequestGuard
    from factory_twin.links.dsx_exchange.contract import check_integration_name
    from factory_twin.links.dsx_exchange.pointmap import Override
    from factory_twin.links.dsx_exchange.status import points_line, summary_lines
    from factory_twin.links.mqtt import MqttClient

    cfg = broker_config(args, args.broker)
    check_integration_name(args.integration)
    override = Override.load(args.point_map)
    check_state_dir(args.state_dir)
    f = twin.load_facility(args.facility)
    sp = f.spec.cooling.tcs.supply_setpoint_c
    guard = RequestGuard(
        args.request_min if args.request_min is not None else sp,
        args.request_max if args.request_max is not None else sp + 4.0,
        args.request_rate,
        args.die_margin,
    )
    metrics = metrics_server(args)  # a port in use fails here, before anything connects
    client = MqttClient(cfg, client_id=f"factory-twin-connect-{args.integration}")
    con = Connector(f, args.state_dir, client, args.integration, override, guard, not args.no_requests)
    if metrics is not None:
        from factory_twin.links.dsx_exchange import metrics as connect_metrics

        metrics.render = lambda: connect_metrics.render(con)
        metrics.start()
    stop = _stop_event()
    t_end = time.monotonic() + args.duration if args.duration else None
    print(f"connect: {f.spec.name} <- {cfg.url}, state in {args.state_dir}" + (" (resumed)" if con.resumed else ""))
    client.start(wait_s=None)
    client.notice_unreachable("connect")  # a service: it keeps retrying, and says so
    try:
        st = con.run(lambda: stop.is_set() or (t_end is not None and time.monotonic() > t_end))
    finally:
        client.stop()
        if metrics is not None:
            metrics.close()
    pm = st["point_map"]
    print(
        f"connect: {st['messages']} messages, {st['values']} values, {st['history_rows']} history rows; "
        f"{points_line(st)}, {pm['unmapped_count']} unmapped, {len(pm['unknown_units'])} unknown units, "
        f"{len(pm['topology'])} topology differences, {pm['missing_count']} expected points missing"
    )
    if not client.connects:  # no outage to count: it never had a broker
        raise ConnectionError(f"connect never connected: {client.unreachable()}; no plant data was received")
    print(
        f"connect: {len(st['outages'])} broker outage(s), blind {st['blind_s']:.1f} s; "
        f"{len(st['active_alarms'])} active alarm(s) (see {args.state_dir / 'alarms.jsonl'})",
        flush=True,
    )
    print("".join(f"connect: {line}\n" for line in summary_lines(st)), end="", flush=True)
    return 0


__all__ = ["DEFAULT_INTEGRATION", "add_parsers", "run_connect", "run_emulate"]
