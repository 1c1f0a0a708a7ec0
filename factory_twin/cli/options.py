"""What the commands share: option types and groups, deprecated spellings, output checks, exit statuses.

One spelling per shared option: ``--duration`` for every length of time (``--hours`` and ``--minutes`` are
deprecated aliases that warn), one ``--speed`` type (a positive number, or ``max`` where a command can run
flat out), ``--tls-ca/--tls-cert/--tls-key`` on every command that connects (``--ca-file``, ``--cert-file``,
``--key-file`` warn). Values are checked when parsed, and argparse names the option (``argument --speed:
...``); output paths before any computation: never overwritten without ``--force``, never failing after the
work is done because a folder is read-only or the path is a directory. Importing this module imports no
numerical library (``factory-twin --help`` stays fast).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from factory_twin.models.units import S_PER_H, S_PER_MIN

DEFAULT_FACILITY = "campus-100mw"
EXIT_ERROR = 1  # bad input or a failed check; the message names the option
EXIT_NOT_OPTIMAL = 3  # optimize: a plan was not optimal
EXIT_FAILED_PIECES = 4  # segments or study cases failed (the finished ones are kept for --resume)
EXIT_MISSED_TARGET = 5  # simulate: a DR or import-limit target was missed; grid-study: no compliant mix
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), the shell's convention
OLD_DURATIONS = {"--hours": ("hours", "h", S_PER_H), "--minutes": ("minutes", "min", S_PER_MIN)}  # unit, symbol, s


class DefaultsFormatter(argparse.HelpFormatter):
    """Help text with the default of every option that has one; names with hyphens (``emerald-phoenix``)
    are never broken across lines."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default in (None, [], argparse.SUPPRESS) or action.default is False  # 0 is a default
        if not unset and "default" not in text:
            text += " (default: %(default)s)"
        return text


def positive(unit: str) -> Callable[[str], float]:
    """Type: a finite number > 0 in ``unit``."""

    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, got {text!r}") from None
        if not 0 < x < float("inf"):
            raise argparse.ArgumentTypeError(f"must be > 0 {unit}, got {text}")
        return x

    return parse


def positive_int(text: str) -> int:
    """Type: a whole number >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def duration(text: str) -> float:
    """Type of ``--duration``: a length of time with a unit (``90s``, ``30min``, ``2h``, ``7d``, ``1y``) ->
    seconds, > 0 (a bare number is read as seconds, with a warning)."""
    from factory_twin.twin.scenario.timeparse import seconds

    try:
        return seconds(text, "--duration")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--duration: ")) from None


def speed(flat_out: bool) -> Callable[[str], float | None]:
    """Type of ``--speed``: simulated seconds per wall second, > 0; with ``flat_out`` also ``max`` (-> None)."""

    def parse(text: str) -> float | None:
        if flat_out and text.strip().lower() == "max":
            return None
        try:
            x = float(text)
        except ValueError:
            x = float("nan")
        if not 0 < x < float("inf"):
            what = "simulated seconds per wall second > 0" + (" or max" if flat_out else "")
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return x

    return parse


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option, hidden from the help: its value (through its ``type``) goes to the new
    option's ``dest``, and stderr says ``warning: --hours is deprecated; use --duration 2h``."""

    def __init__(self, option_strings, dest, new: str, spell: Callable[[object], str] = str, **kw: object) -> None:
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kw)
        self.new, self.spell = new, spell

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"warning: {option_string} is deprecated; use {self.new} {self.spell(values)}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_duration(p, help: str, default: str | None = None, old: str | None = None) -> None:
    """``--duration`` (seconds in ``args.duration``); ``old`` (``--hours``, ``--minutes``): its deprecated
    spelling, a plain number in that unit."""
    group = p.add_mutually_exclusive_group() if old else p
    group.add_argument("--duration", type=duration, default=default, help=help)
    if old:
        unit, symbol, factor = OLD_DURATIONS[old]
        number = positive(unit)
        group.add_argument(
            old,
            dest="duration",
            action=DeprecatedAlias,
            new="--duration",
            type=lambda text: number(text) * factor,
            spell=lambda s: f"{s / factor:g}{symbol}",
        )


def add_speed(p, default: str, flat_out: bool = False) -> None:
    """``--speed``: the one pace option; ``flat_out``: the command can also run as fast as it computes."""
    extra = "; max: as fast as it computes" if flat_out else ""
    p.add_argument("--speed", type=speed(flat_out), default=default, help=f"simulated seconds per wall second{extra}")


def builtin_names(folder: str) -> str:
    """The built-in names of one catalog folder of ``data`` (``facilities``, ``scenarios``, ``studies``,
    ``grid_codes``, ``grid_events``), comma-separated for a help text: read from the catalog, never listed by hand."""
    from factory_twin import data

    return ", ".join(data.builtin(folder))


def add_facility_argument(p: argparse.ArgumentParser) -> None:
    """The facility: the first argument, default the 100 MW reference campus."""
    p.add_argument(
        "facility",
        nargs="?",
        default=DEFAULT_FACILITY,
        help=f"built-in name ({builtin_names('facilities')}) or TOML path",
    )


def add_facility_scenario(p: argparse.ArgumentParser, scenario: bool = True) -> None:
    """The facility (:func:`add_facility_argument`) and ``--scenario``."""
    add_facility_argument(p)
    if scenario:
        p.add_argument(
            "--scenario",
            help=f"scenario TOML path or built-in name ({builtin_names('scenarios')}); default: the built-in defaults",
        )


def add_convert_hall(p: argparse.ArgumentParser) -> None:
    """``--convert-hall HALL:RACK_TYPE[:CHAIN]``: the hall conversion what-if (twin.simulation.conversion)."""
    p.add_argument(
        "--convert-hall",
        metavar="HALL:RACK_TYPE[:CHAIN]",
        help="what-if: rebuild HALL with RACK_TYPE racks on CHAIN (dc800-2n, the default, or ac-2n) in the same "
        "building and grid connection, e.g. hall-B:vr-nvl72 (the facility needs a one-line diagram)",
    )


def facility_from(args, report: bool = True):
    """The facility of ``args.facility`` with ``--convert-hall`` applied (when the command has it); with ``report``
    one line says what the what-if changed and warnings name what the converted site misses at its design point."""
    from factory_twin import twin

    f = twin.load_facility(args.facility)
    text = getattr(args, "convert_hall", None)
    if not text:
        return f
    from factory_twin.twin.simulation.conversion import (
        converted,
        design_figures,
        parse_conversion,
        warnings_for,
        workload_notes,
    )

    conv = parse_conversion(text)
    g = converted(f, conv)
    if report:
        b, a = design_figures(f, conv.hall), design_figures(g, conv.hall)
        print(f"what-if {conv}: {a.hall_racks:,} racks, hall at TDP {b.hall_it_mw:,.1f} -> {a.hall_it_mw:,.1f} MW, "
              f"design import {b.grid_mw:,.1f} -> {a.grid_mw:,.1f} MW of {a.limit_mw:,.0f}")  # fmt: skip
        for w in [*workload_notes(f, g, conv.hall), *warnings_for(a)]:
            print(f"warning: {w}", file=sys.stderr)
    return g


def add_broker_options(p, url: bool = True) -> None:
    """``--broker`` (unless the command names the URL otherwise), credentials and TLS."""
    if url:
        p.add_argument("--broker", required=True, help="mqtt://HOST:PORT or mqtts://HOST:PORT (TLS)")
    p.add_argument("--username", help="broker user name (password: --password-file or $FACTORY_TWIN_MQTT_PASSWORD)")
    p.add_argument("--password-file", type=Path, help="file whose first line is the broker password")
    for new, old, what in (
        ("--tls-ca", "--ca-file", "CA bundle that signed the broker's certificate (mqtts; default: the system CAs)"),
        ("--tls-cert", "--cert-file", "client certificate (mqtts, with --tls-key)"),
        ("--tls-key", "--key-file", "client private key (mqtts, with --tls-cert)"),
    ):
        group = p.add_mutually_exclusive_group()
        group.add_argument(new, type=Path, help=what)
        group.add_argument(old, dest=new[2:].replace("-", "_"), type=Path, action=DeprecatedAlias, new=new)


def add_metrics_options(p, gpu_series: bool = True) -> None:
    """``--metrics-port`` (serve the twin's Prometheus metrics), ``--metrics-host``; ``--gpu-series`` where the
    command has the twin's GPUs."""
    g = p.add_argument_group("Prometheus /metrics (docs/links.md)")
    g.add_argument("--metrics-port", type=positive_int, help="serve the twin's metrics at http://HOST:PORT/metrics")
    g.add_argument("--metrics-host", default="127.0.0.1", help="address /metrics binds (127.0.0.1: this machine only)")
    if gpu_series:
        g.add_argument("--gpu-series", choices=("gpu", "rack"), default="gpu",
                       help="DCGM GPU series per GPU, or per rack (for 1 GW campuses)")  # fmt: skip


GROUP_KEYS = {"priority": "priority", "guarantee": "guarantee_w", "max": "max_w"}  # --group key -> command field
POLICY_METAVAR = "{MaxP,MaxQ,MaxLPS}"  # twin.facility.steering_spec.POLICIES (not imported: --help stays fast)


def add_steering_options(p) -> None:
    """``--policy`` and repeatable ``--group``: the resource groups the twin's steering starts with."""
    g = p.add_argument_group("steering: the power policy and resource groups at start (docs/maxlps.md)")
    g.add_argument("--policy", metavar=POLICY_METAVAR, help="the power policy bundle (default: the facility's)")
    g.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME:priority=P,guarantee=W,max=W",
        help="change the facility's resource group NAME: any of the keys, guarantee and max in W per GPU (repeatable)",
    )


def steering_commands(policy: str | None, groups: list[str]) -> list[dict]:
    """The ``power_policy`` and ``resource_group`` commands (:func:`twin.live.runner.parse_command`) of ``--policy``
    and ``--group``, checked: ``ValueError`` naming the option, the group and the key (W per GPU). Whether the
    facility has the group is checked when the twin is set up (:func:`twin.live.runner.start_groups`)."""
    from factory_twin.twin.live.runner import parse_command

    out = []
    if policy is not None:
        try:
            out.append(parse_command({"kind": "power_policy", "policy": policy, "id": "--policy"}))
        except ValueError as e:
            raise ValueError(f"--policy: {e}") from None
    keys = ", ".join(GROUP_KEYS)
    for text in groups:
        name, colon, spec = (x.strip() for x in text.partition(":"))
        if not name or not colon or not spec:
            raise ValueError(f"--group {text!r}: give NAME:key=value[,key=value] with keys {keys} (W per GPU)")
        raw = {"kind": "resource_group", "group": name, "id": f"--group {name}"}
        for item in spec.split(","):
            key, eq, value = (x.strip() for x in item.partition("="))
            if key not in GROUP_KEYS or not eq or not value:
                what = f"unknown key {key!r}" if key not in GROUP_KEYS else f"{key}: give a value"
                raise ValueError(f"--group {name}: {what} (keys {keys}; e.g. {name}:guarantee=700)")
            if GROUP_KEYS[key] in raw:
                raise ValueError(f"--group {name}: {key} given twice")
            raw[GROUP_KEYS[key]] = value
        try:
            out.append(parse_command(raw))
        except ValueError as e:
            msg = str(e)
            for key, field in GROUP_KEYS.items():
                msg = msg.replace(field, key)
            raise ValueError(f"--group {name}: {msg}") from None
    return out


def metrics_server(args: argparse.Namespace):
    """The bound (not yet serving) :class:`~factory_twin.links.prometheus.exporter.MetricsServer` of
    :func:`add_metrics_options`' options, None without ``--metrics-port``: a port in use fails here."""
    if args.metrics_port is None:
        return None
    from factory_twin.links.prometheus.exporter import MetricsServer

    try:
        return MetricsServer(lambda: None, args.metrics_host, args.metrics_port)
    except OSError as e:
        raise OSError(f"--metrics-port: cannot listen on {args.metrics_host}:{args.metrics_port}: {e}") from None


def broker_config(args: argparse.Namespace, url: str, option: str = "--broker"):
    """The :class:`~factory_twin.links.mqtt.BrokerConfig` of :func:`add_broker_options`' options."""
    from factory_twin.links.mqtt import BrokerConfig

    return BrokerConfig.from_url(
        url,
        username=args.username,
        password_file=args.password_file,
        ca_file=args.tls_ca,
        cert_file=args.tls_cert,
        key_file=args.tls_key,
        option=option,
    )


def add_dask_options(group, what: str, workers: str = "the CPU count") -> None:
    """The options of work split into independent pieces (segments, plans, cases) on Dask; ``workers``: the
    default number of local workers, in words."""
    group.add_argument("--scheduler", help="tcp://HOST:PORT of an existing Dask scheduler (default: a local cluster)")
    group.add_argument("--workers", type=positive_int, help=f"local Dask worker processes (default: {workers})")
    group.add_argument("--serial", action="store_true", help=f"no Dask: run the {what} one by one in this process")
    group.add_argument("--resume", action="store_true", help=f"continue a killed run in --out, keeping finished {what}")


def dask_place(args: argparse.Namespace) -> str:
    """Where :func:`add_dask_options`' work runs, in words (the progress line)."""
    return "serially" if args.serial else (args.scheduler or f"on {args.workers or 'all'} local Dask worker(s)")


def check_output_file(path: Path | None, force: bool, option: str = "--out") -> None:
    """Raise ``ValueError`` naming ``option`` when ``path`` cannot be written as a new file now."""
    if path is None:
        return
    if path.is_dir():
        raise ValueError(f"{option}: {path} is a directory; give a file name such as {path / 'run.nc'}")
    if path.exists() and not force:
        raise ValueError(f"{option}: {path} exists; pass --force to overwrite it")
    check_parent(path, option)


def check_output_dir(path: Path, files: tuple[str, ...], force: bool, resume: bool, option: str = "--out") -> None:
    """A folder for ``files``: it may exist (its other content is kept), else its parent must (:func:`check_parent`);
    existing ``files`` need ``--force`` unless ``resume`` continues an earlier run there."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option}: {path} exists and is not a directory")
    existing = [name for name in files if (path / name).exists()]
    if existing and not (force or resume):
        raise ValueError(
            f"{option}: {path} already holds {', '.join(existing)}; pass --resume to continue that run "
            "or --force to overwrite it"
        )
    check_parent(path / files[0] if path.is_dir() else path, option)


def check_state_dir(path: Path, option: str = "--state-dir") -> None:
    """Create (or keep) the folder a long-running command keeps its state in and resumes from (only that
    folder: its parent must exist, :func:`check_parent`); refuse, naming ``option``, a path that is not a
    directory or cannot be written."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option}: {path} exists and is not a directory")
    if not path.exists():
        if not path.absolute().parent.exists():
            check_parent(path, option)  # refuses: a typo never builds a tree of folders
        try:
            path.mkdir()
        except OSError as e:
            raise ValueError(f"{option}: cannot create {path} ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: cannot write to {path}")


def check_parent(path: Path, option: str) -> None:
    """Refuse, naming ``option``, a path whose folder is missing or cannot be written: outputs create only
    their last level (the file, or the folder named), so a typo in a path never builds a tree of folders."""
    parent = path.absolute().parent
    if not parent.exists():
        missing = parent
        while not missing.parent.exists():
            missing = missing.parent
        raise ValueError(
            f"{option}: no folder {missing} (for {path}); create it first, only the last level of a path is made"
        )
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: cannot write to {parent} (not a writable directory)")


def log_to_stderr(level: int | None = None) -> None:
    """Log lines on stderr, each stamped in UTC with its zone (``2026-12-05T10:29:30.125Z INFO ...``): the
    service commands' logs (flex-agent, openadr-ven, the MQTT client's broker notices)."""
    import logging
    import time

    handler = logging.StreamHandler()
    form = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    form.converter = time.gmtime
    handler.setFormatter(form)
    logging.basicConfig(level=logging.INFO if level is None else level, handlers=[handler])  # once per process


def print_table(rows) -> None:
    """The end-of-run summary: one ``name  value`` row per line, names aligned."""
    width = max(len(str(k)) for k, _ in rows)
    for k, v in rows:
        print(f"  {k!s:<{width}}  {v}")


__all__ = [
    "DEFAULT_FACILITY",
    "EXIT_ERROR",
    "EXIT_FAILED_PIECES",
    "EXIT_INTERRUPTED",
    "EXIT_MISSED_TARGET",
    "EXIT_NOT_OPTIMAL",
    "DefaultsFormatter",
    "DeprecatedAlias",
    "add_broker_options",
    "add_convert_hall",
    "add_dask_options",
    "add_duration",
    "add_facility_argument",
    "add_facility_scenario",
    "add_speed",
    "broker_config",
    "builtin_names",
    "check_output_dir",
    "check_output_file",
    "check_parent",
    "check_state_dir",
    "dask_place",
    "duration",
    "facility_from",
    "log_to_stderr",
    "positive",
    "positive_int",
    "print_table",
    "speed",
]
