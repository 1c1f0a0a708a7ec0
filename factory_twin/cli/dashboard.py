"""``factory-twin dashboard``: the live twin and its dashboard, or (``--connect``) the plant page beside a
running DSX Exchange connector."""

from __future__ import annotations

from pathlib import Path

from factory_twin.cli.dsx import DEFAULT_INTEGRATION
from factory_twin.cli.options import (
    DEFAULT_FACILITY,
    DefaultsFormatter,
    add_broker_options,
    add_facility_scenario,
    add_metrics_options,
    add_speed,
    add_steering_options,
    broker_config,
    check_state_dir,
    positive_int,
    steering_commands,
)

BROKER_OPTIONS = ("username", "password_file", "tls_ca", "tls_cert", "tls_key")  # only with --connect


def add_parsers(sub) -> None:
    d = sub.add_parser("dashboard", help="run the live twin and serve the dashboard", formatter_class=DefaultsFormatter)
    add_facility_scenario(d)
    d.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    d.add_argument("--port", type=positive_int, default=8050, help="TCP port")
    add_speed(d, default="60")
    d.add_argument("--controller", default="mpc", help="mpc | mpc-n1 | uncapped | fixed:FRACTION")
    d.add_argument("--studies-dir", type=Path, help="folder the Studies page may open files from (default: CWD)")
    d.add_argument(
        "--flex-state",
        type=Path,
        help="a flex agent's --state-dir: serve its Grid flex page (the agent runs the twin: none is started here)",
    )
    d.add_argument("--openadr-state", type=Path, help="an OpenADR VEN's --state-dir: adds the OpenADR page")
    d.add_argument("--debug", action="store_true", help="Dash debug mode (never in production)")
    add_steering_options(d)
    add_metrics_options(d)
    plant = d.add_argument_group("a plant on DSX Exchange (--connect)")
    plant.add_argument(
        "--connect",
        metavar="URL",
        help="show a plant on DSX Exchange instead of the simulation: mqtt[s]://HOST:PORT (needs --state-dir)",
    )
    plant.add_argument("--state-dir", type=Path, help="with --connect: connect's history, alarms and state")
    add_broker_options(plant, url=False)
    d.set_defaults(run=run_dashboard)


# the dashboard's own twin: with --flex-state none runs, so these are refused (option, default)
TWIN_OPTIONS = (("facility", DEFAULT_FACILITY), ("scenario", None), ("controller", "mpc"), ("speed", 60.0),
                ("studies_dir", None), ("openadr_state", None), ("metrics_port", None), ("policy", None),
                ("group", []))  # fmt: skip


def run_dashboard(args) -> int:
    if args.connect:
        for name in ("policy", "group"):
            if getattr(args, name):
                raise ValueError(f"--{name}: not with --connect (the plant's own controls steer it)")
        return run_connected(args)
    if args.flex_state is not None:
        return run_flex(args)
    for name in ("state_dir", *BROKER_OPTIONS):
        if getattr(args, name) is not None:
            raise ValueError(f"--{name.replace('_', '-')}: only with --connect (a plant on DSX Exchange)")
    steering = steering_commands(args.policy, args.group)  # checked before anything starts (the groups: by serve)
    from factory_twin.dashboard.server import serve

    return serve(
        facility=args.facility,
        scenario=args.scenario,
        host=args.host,
        port=args.port,
        speed=args.speed,
        controller=args.controller,
        debug=args.debug,
        studies_dir=args.studies_dir,
        openadr_dir=args.openadr_state,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        gpu_series=args.gpu_series,
        steering=steering,
    )


def run_flex(args) -> int:
    """``dashboard --flex-state DIR``: the agent's Grid flex page alone (a twin here would be another simulation,
    with its own facility and clock, shown above the agent's page)."""
    from factory_twin.dashboard.pages.flex import serve_flex

    for name, default in TWIN_OPTIONS:
        if getattr(args, name) != default:
            option = "the facility" if name == "facility" else f"--{name.replace('_', '-')}"
            raise ValueError(
                f"{option}: not with --flex-state (the page shows the flex agent's own twin; "
                "give the twin's options to flex-agent)"
            )
    for name in ("state_dir", *BROKER_OPTIONS):
        if getattr(args, name) is not None:
            raise ValueError(f"--{name.replace('_', '-')}: only with --connect (a plant on DSX Exchange)")
    return serve_flex(args.flex_state, args.host, args.port, args.debug)


def run_connected(args) -> int:
    """``dashboard --connect URL --state-dir DIR``: the plant page beside a running connector."""
    from factory_twin import twin
    from factory_twin.dashboard.pages.plant import serve_connected
    from factory_twin.links.dsx_exchange.connect import Connector
    from factory_twin.links.mqtt import MqttClient

    if args.state_dir is None:
        raise ValueError("--state-dir: required with --connect (history, alarms and state are kept there)")
    cfg = broker_config(args, args.connect, "--connect")
    check_state_dir(args.state_dir)
    f = twin.load_facility(args.facility)
    client = MqttClient(cfg, client_id=f"factory-twin-dashboard-{DEFAULT_INTEGRATION}")
    con = Connector(f, args.state_dir, client, DEFAULT_INTEGRATION)
    return serve_connected(con, args.host, args.port, args.debug)


__all__ = ["add_parsers", "run_connected", "run_dashboard", "run_flex"]
