"""``factory-twin flex-agent`` and ``factory-twin grid-signal``: the two ends of DSX Flex (docs/flex.md)."""

from __future__ import annotations

from pathlib import Path

from factory_twin.cli.options import (
    DefaultsFormatter,
    add_broker_options,
    add_duration,
    add_facility_scenario,
    add_speed,
    broker_config,
    check_state_dir,
    log_to_stderr,
    positive,
)


def add_parsers(sub) -> None:
    """Add ``flex-agent`` and ``grid-signal`` (``grid-signal`` takes no facility: it is the grid's side)."""
    what_for = "run the twin as the site's DSX Flex agent (grid load targets over MQTT)"
    a = sub.add_parser("flex-agent", help=what_for, formatter_class=DefaultsFormatter)
    add_facility_scenario(a)  # the facility's grid.feeds name the feeds
    add_broker_options(a)
    a.add_argument(
        "--trust-key",
        action="append",
        required=True,
        metavar="ISV=FILE",
        help="a grid signer's PEM public key and the ISV it signs for (repeat; a key speaks only for its ISV)",
    )
    a.add_argument("--key", type=Path, required=True, help="the agent's PEM private key (signs what it publishes)")
    a.add_argument("--identifier", default="factory-twin", help="the agent's id in its topics and source")
    a.add_argument("--state-dir", type=Path, help="folder for the persisted targets (reloaded on start)")
    a.add_argument("--start", help="twin start, local ISO time (default: now at the site)")
    add_duration(a, "twin time to run", default="24h", old="--hours")
    add_speed(a, default="1", flat_out=True)
    a.add_argument("--heartbeat", type=positive("s"), default=60.0, help="status heartbeat period, twin seconds")
    a.add_argument("--max-age", type=positive("s"), default=300.0, help="refuse events older than this [s]")
    a.set_defaults(run=run_agent)

    what_for = "publish a signed DSX Flex load target (the grid side)"
    g = sub.add_parser("grid-signal", help=what_for, formatter_class=DefaultsFormatter)
    add_broker_options(g)
    g.add_argument("--key", type=Path, required=True, help="PEM private key (EC P-256 -> ES256, RSA -> RS256)")
    g.add_argument("--isv", required=True, help="the ISV identifier (topic and source)")
    what = g.add_mutually_exclusive_group(required=True)
    what.add_argument("--constraint-kw", type=positive("kW"), help="load constraint [kW]")
    what.add_argument("--remove", action="store_true", help="null constraint: remove the target")
    g.add_argument("--feed", action="append", default=[], help="feed tag (repeat; default: every feed)")
    g.add_argument("--start", help="interval start, ISO 8601 UTC (default: now)")
    g.add_argument("--end", help="interval end, ISO 8601 UTC (default: until replaced)")
    add_duration(g, "interval length instead of --end, e.g. 3h", old="--minutes")
    g.add_argument("--best-effort", action="store_true", help="shed only what the jobs' flex floors allow")
    g.add_argument("--time", help="event time, ISO 8601 UTC (default: now, or the agent's clock with --agent)")
    g.add_argument(
        "--agent",
        metavar="ID",
        help="the agent's --identifier: stamp the event on its clock (its next heartbeat) and wait for its verdict "
        "(exit 0 on target_set, 1 when it does not take the target)",
    )
    g.add_argument("--agent-key", type=Path, help="with --agent: the agent's PEM public key (verifies its statuses)")
    g.add_argument("--wait", type=positive("s"), default=180.0, help="with --agent: how long to wait [wall s]")
    g.set_defaults(run=run_signal)


def _utc(text: str | None, option: str):
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{option}: expected an ISO 8601 time like 2025-05-04T23:10:00Z, got {text!r}") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def run_signal(args) -> int:
    import json
    import sys
    from datetime import UTC, datetime, timedelta

    from factory_twin.links.dsx_flex import protocol as dx
    from factory_twin.links.dsx_flex.verdict import AgentStatus
    from factory_twin.links.mqtt import MqttClient
    from factory_twin.models.units import KW

    broker = broker_config(args, args.broker)
    dx.check_identifier(args.isv, "--isv")
    key = dx.load_key(args.key, private=True)
    if (args.agent is None) != (args.agent_key is None):
        raise ValueError("--agent-key: give --agent ID and --agent-key FILE together (its statuses are verified)")
    agent = None
    if args.agent is not None:
        dx.check_identifier(args.agent, "--agent")
        agent = AgentStatus(args.agent, dx.load_key(args.agent_key))
    now = _utc(args.time, "--time") or (None if agent else datetime.now(UTC))
    start, end = _utc(args.start, "--start"), _utc(args.end, "--end")
    if args.duration is not None and end is not None:
        raise ValueError("--duration: give either --duration or --end, not both")
    client = MqttClient(broker, on_message=agent.on_message if agent else None).start()
    try:
        if agent is not None:
            client.subscribe(dx.status_topic(agent.id), qos=1)
            clock = agent.clock(args.wait)  # the agent's present time, from its next heartbeat
            print(f"agent {agent.id}'s clock: {dx.iso(clock)}", flush=True)
            now = now or clock
        if args.duration is not None:
            end = (start or now) + timedelta(seconds=args.duration)
        w = None if args.remove else args.constraint_kw * KW
        ev = dx.loadtarget_event(args.isv, [dx.loadtarget_data(w, start, end, args.feed, args.best_effort)], key, now)
        if agent is not None:
            agent.forget()  # the verdict is read from the statuses after the target
        client.publish(dx.loadtarget_topic(args.isv), json.dumps(ev), qos=1).wait_for_publish(10)
        print(f"published {ev['id']} (correlation {ev['correlationid']}) on {dx.loadtarget_topic(args.isv)}")
        if agent is None:
            return 0
        verdict = agent.verdict(ev["correlationid"], now, args.wait)
    finally:
        client.stop()
    print(verdict.text, flush=True, file=sys.stdout if verdict.accepted else sys.stderr)
    return 0 if verdict.accepted else 1


def run_agent(args) -> int:
    import signal
    import threading
    from datetime import UTC, datetime, timedelta

    from factory_twin import twin
    from factory_twin.links.dsx_flex import protocol as dx
    from factory_twin.links.dsx_flex.agent import AgentConfig, FlexAgent
    from factory_twin.links.mqtt import MqttClient
    from factory_twin.optimization.controllers import make_controller
    from factory_twin.twin.scenario.scenario import build_scenario
    from factory_twin.twin.scenario.timeparse import site_time
    from factory_twin.twin.simulation.engine import Twin

    dx.check_identifier(args.identifier, "--identifier")
    trust = dx.TrustStore.from_files(args.trust_key)
    key = dx.load_key(args.key, private=True)
    broker = broker_config(args, args.broker)
    if args.state_dir is not None:
        check_state_dir(args.state_dir)
    f = twin.load_facility(args.facility)
    sc = twin.load_scenario(args.scenario, f)
    if args.start is None:
        local = datetime.now(UTC) + timedelta(hours=f.spec.site.utc_offset_h)
        start = local.replace(tzinfo=None, microsecond=0).isoformat()
        base = Path(args.scenario).parent if args.scenario and Path(args.scenario).is_file() else None
        sc = build_scenario(sc.spec.model_copy(update={"start": start}), f, base, sc.name)
    else:
        start = args.start
    mpc = make_controller("mpc", f, sc)
    tw = Twin(f, sc, start=start, controller=mpc)
    log_to_stderr()
    client = MqttClient(broker, client_id=f"dsx-flex-agent-{args.identifier}").start(wait_s=None)
    cfg = AgentConfig(identifier=args.identifier, heartbeat_s=args.heartbeat, max_age_s=args.max_age)
    agent = FlexAgent(tw, trust, key, client, args.state_dir, cfg, keep_published=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    offset_h = f.spec.site.utc_offset_h
    feeds = [x.tag for x in agent.state.feeds]
    print(f"flex agent {args.identifier}: {f.spec.name}, feeds {feeds}, from {site_time(start, offset_h)}", flush=True)
    client.notice_unreachable("flex-agent")  # a service: it keeps retrying, and says so
    try:
        agent.run(args.duration, speed=args.speed, stop=stop)
    except KeyboardInterrupt:
        pass
    finally:
        client.stop()
    print(f"stopped at {site_time(tw.time, offset_h)}: {agent.refused_total} refused event(s)", flush=True)
    if not client.connects:
        raise ConnectionError(f"flex-agent never connected: {client.unreachable()}; no target could arrive")
    return 0


__all__ = ["add_parsers", "run_agent", "run_signal"]
