"""``factory-twin openadr-ven``: the twin as an OpenADR 2.0b VEN of a utility's VTN (docs/links.md)."""

from __future__ import annotations

from pathlib import Path

from factory_twin.cli.options import (
    DefaultsFormatter,
    add_duration,
    add_facility_scenario,
    add_metrics_options,
    add_speed,
    check_state_dir,
    log_to_stderr,
    metrics_server,
    positive,
)


def add_parsers(sub) -> None:
    what_for = "run the twin as an OpenADR 2.0b VEN: a utility's DR events in, opt decisions and usage reports out"
    a = sub.add_parser("openadr-ven", help=what_for, formatter_class=DefaultsFormatter)
    add_facility_scenario(a)  # the facility's [openadr] table states how signals map
    a.add_argument(
        "--vtn", required=True, metavar="URL", help="the VTN, e.g. https://vtn.example:8443/OpenADR2/Simple/2.0b"
    )
    a.add_argument("--ven-name", required=True, help="this VEN's name, as registered with the utility")
    tls = a.add_argument_group("mutual TLS and signed messages (OpenADR 2.0b)")
    tls.add_argument("--tls-cert", type=Path, help="the VEN's certificate (PEM): TLS client and message signatures")
    tls.add_argument("--tls-key", type=Path, help="the VEN's private key (PEM)")
    tls.add_argument("--tls-ca", type=Path, help="CA bundle that signed the VTN's certificate")
    vtn = tls.add_mutually_exclusive_group()
    vtn.add_argument("--vtn-cert", type=Path, help="the VTN's certificate (PEM): only messages it signed are accepted")
    vtn.add_argument("--vtn-fingerprint", help="the VTN certificate's OpenADR fingerprint (AB:CD:... 10 bytes)")
    tls.add_argument("--insecure-http", action="store_true", help="allow a plain http VTN (a local test VTN only)")
    a.add_argument("--state-dir", type=Path, help="folder for the decision log and the dashboard's status file")
    add_speed(a, default="1")
    add_duration(a, "run this long (default: until stopped)")
    step = "the twin's plant step (the meter's resolution)"
    a.add_argument("--plant-step", type=positive("s"), default=20.0, help=step)
    add_metrics_options(a)
    a.set_defaults(run=run_ven)


def run_ven(args) -> int:
    import signal
    import threading

    from factory_twin.links.openadr.link import LinkConfig, VtnLink, fingerprint
    from factory_twin.links.openadr.ven import TwinVen
    from factory_twin.twin.scenario.timeparse import site_time

    vtn_fp = args.vtn_fingerprint
    if args.vtn_cert is not None:
        if not args.vtn_cert.is_file():
            raise FileNotFoundError(f"--vtn-cert: file not found: {args.vtn_cert}")
        vtn_fp = fingerprint(args.vtn_cert)
    cfg = LinkConfig(args.vtn, args.ven_name, args.tls_cert, args.tls_key, args.tls_ca, vtn_fp, args.insecure_http)
    if args.state_dir is not None:
        check_state_dir(args.state_dir)
    metrics = metrics_server(args)  # a port in use fails here, before the twin starts
    ven = TwinVen.build(args.facility, args.scenario, args.speed, args.state_dir, plant_step_s=args.plant_step)
    log_to_stderr()
    if metrics is not None:
        from factory_twin.links.prometheus.exporter import TwinMetrics

        ven.metrics = TwinMetrics(ven.twin, gpu_series=args.gpu_series, controller="mpc", server=metrics)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    f = ven.twin.f
    print(f"OpenADR VEN {args.ven_name}: {f.spec.name} at {args.speed:g}x, VTN {args.vtn}", flush=True)
    link = VtnLink(ven, cfg).start()
    try:
        ven.run(stop, args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        link.stop()
        if metrics is not None:
            metrics.close()  # closes a server that never started too
    opts = list(ven.opts.values())
    stopped = site_time(ven.twin.time, f.spec.site.utc_offset_h)
    print(f"stopped at {stopped}: {opts.count('optIn')} event(s) opted in, {opts.count('optOut')} out; "
          f"VTN link {ven.link['state']} {ven.link['detail']}")  # fmt: skip
    return 0


__all__ = ["add_parsers", "run_ven"]
