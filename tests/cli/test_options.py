"""One spelling per shared option across every command: ``--duration``, one ``--speed`` type and
``--tls-ca/--tls-cert/--tls-key`` on every command that connects. The old spellings (``--hours``,
``--minutes``, ``--ca-file``, ``--cert-file``, ``--key-file``) still work, mean exactly what the new ones
mean and warn on stderr naming both; bad values are refused naming the option; the TLS options reach a
real Mosquitto that requires a client certificate."""

from __future__ import annotations

import argparse
import json
import queue
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import xarray as xr
from factory_twin.links.dsx_flex import protocol as dx
from factory_twin.links.mqtt import BrokerConfig, MqttClient
from support import make_tls_files

from factory_twin.cli import EXIT_MISSED_TARGET, build_parser, main

ONE_RACK = str(Path(__file__).resolve().parents[1] / "data" / "one-rack.toml")
URL = "mqtts://127.0.0.1:8883"
FLEX = ["flex-agent", "--broker", URL, "--trust-key", "srp=grid.pub.pem", "--key", "agent.pem"]
SIGNAL = ["grid-signal", "--broker", URL, "--key", "grid.pem", "--isv", "srp", "--remove"]
# no old spelling: openadr-ven (a VTN), emulate-bmc (an HTTPS server; --tls-ca: mutual TLS) and steer (a client)
TLS_SERVED = {"openadr-ven", "emulate-bmc", "steer"}
CONNECTING = {  # every command that connects to a broker: the command line without its TLS options
    "flex-agent": FLEX,
    "grid-signal": SIGNAL,
    "emulate-bms": ["emulate-bms", "--broker", URL],
    "connect": ["connect", "--broker", URL, "--state-dir", "site"],
    "dashboard": ["dashboard", "--connect", URL, "--state-dir", "site"],
}
TLS_OLD = ["--ca-file", "ca.pem", "--cert-file", "c.pem", "--key-file", "c.key"]
TLS_NEW = ["--tls-ca", "ca.pem", "--tls-cert", "c.pem", "--tls-key", "c.key"]
TLS_WARNINGS = ["--ca-file is deprecated; use --tls-ca ca.pem", "--cert-file is deprecated; use --tls-cert c.pem",
                "--key-file is deprecated; use --tls-key c.key"]  # fmt: skip
OLD_SPELLINGS = [
    (["simulate"], ["--hours", "2"], ["--duration", "2h"], ["--hours is deprecated; use --duration 2h"]),
    (["simulate"], ["--hours", "0.25"], ["--duration", "15min"], ["--hours is deprecated; use --duration 0.25h"]),
    (FLEX, ["--hours", "1"], ["--duration", "1h"], ["--hours is deprecated; use --duration 1h"]),
    (SIGNAL, ["--minutes", "180"], ["--duration", "3h"], ["--minutes is deprecated; use --duration 180min"]),
    (["grid-study", "--requirements", "ramp-20mw-min", "--out", "grid"], ["--minutes", "2"], ["--duration", "2min"],
     ["--minutes is deprecated; use --duration 2min"]),
    *((argv, TLS_OLD, TLS_NEW, TLS_WARNINGS) for argv in CONNECTING.values()),
]  # fmt: skip


def _parse(argv: list[str], capsys) -> tuple[dict, str]:
    return vars(build_parser().parse_args([str(a) for a in argv])), capsys.readouterr().err


def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("command", "old", "new", "warnings"), OLD_SPELLINGS)
def test_an_old_spelling_means_the_new_one_and_warns(command, old, new, warnings, capsys):
    got, err = _parse([*command, *old], capsys)
    want, quiet = _parse([*command, *new], capsys)
    assert got == want and quiet == ""
    assert err.splitlines() == [f"warning: {w}" for w in warnings]


def test_an_old_and_a_new_spelling_together_are_refused(capsys):
    assert "argument --duration: not allowed with argument --hours" in _refused(
        ["simulate", "--hours", "2", "--duration", "2h"], capsys
    )
    assert "argument --ca-file: not allowed with argument --tls-ca" in _refused(
        [*SIGNAL, "--tls-ca", "a.pem", "--ca-file", "b.pem"], capsys
    )


def test_help_shows_one_spelling_and_the_tls_set_where_a_command_connects():
    commands = next(a for a in build_parser()._actions if a.choices).choices
    for name, p in commands.items():
        text = p.format_help()
        for old in ("--hours", "--minutes", "--ca-file", "--cert-file", "--key-file"):
            assert old not in text, (name, old)
        tls = [option in text for option in ("--tls-ca", "--tls-cert", "--tls-key")]
        assert tls == [name in CONNECTING or name in TLS_SERVED] * 3, name  # TLS_SERVED: no old spelling
    for name in ("simulate", "grid-study", "flex-agent", "grid-signal", "emulate-bms", "connect", "optimize"):
        assert "--duration DURATION" in commands[name].format_help(), name
    for name, default in (("simulate", "24h"), ("flex-agent", "24h"), ("grid-study", "10min")):
        assert f"(default: {default})" in " ".join(commands[name].format_help().split()), name


@pytest.mark.parametrize(
    ("command", "flat_out"), [(["dashboard"], False), (FLEX, True), (["emulate-bms", "--broker", URL], True)]
)
def test_speed_is_one_type(command, flat_out, capsys):
    assert _parse([*command, "--speed", "120"], capsys)[0]["speed"] == 120.0
    for bad in ("0", "-1", "nan", "inf", "fast", *(() if flat_out else ("max",))):
        err = _refused([*command, "--speed", bad], capsys)
        what = "simulated seconds per wall second > 0" + (" or max" if flat_out else "")
        assert f"argument --speed: expected {what}, got '{bad}'" in err
    if flat_out:
        assert _parse([*command, "--speed", "MAX"], capsys)[0]["speed"] is None  # flat out


def test_durations_take_units_and_errors_name_the_option(tmp_path, capsys):
    for text, s in (("90s", 90.0), ("30min", 1800.0), ("2h", 7200.0), ("7d", 604800.0), ("1y", 365 * 86400.0)):
        assert _parse(["simulate", "--duration", text], capsys)[0]["duration"] == s
    assert "argument --duration: expected a duration like 24h, 5min, 1s, 2d or 1y, got '2x'" in _refused(
        ["simulate", "--duration", "2x"], capsys
    )
    assert "argument --duration: must be > 0, got '0h'" in _refused(["connect", "--duration", "0h"], capsys)
    assert "argument --minutes: must be > 0 minutes, got 0" in _refused([*SIGNAL, "--minutes", "0"], capsys)
    assert main(["simulate", "--duration", "24", "--out", str(tmp_path)]) == 1  # a folder: refused before work
    err = capsys.readouterr().err
    assert "warning: --duration: '24' has no unit and is read as 24 s" in err and "--out:" in err


def test_a_run_longer_than_a_segment_is_cut_and_options_of_the_other_kind_are_refused(tmp_path, capsys):
    assert main(["simulate", ONE_RACK, "--duration", "2d"]) == 1  # cut into 1 d segments: streamed into --out
    assert "--out: a run longer than --segment 1d streams its results into a NetCDF file" in capsys.readouterr().err
    assert main(["simulate", ONE_RACK, "--duration", "1h", "--report", str(tmp_path / "r.html")]) == 1
    assert "--report: only for a run cut into segments" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_an_old_spelling_runs_what_the_new_one_runs(tmp_path, capsys):
    args = ["simulate", ONE_RACK, "--controller", "uncapped", "--out"]
    rc = main([*args, str(tmp_path / "old.nc"), "--hours", "0.25"])
    assert "warning: --hours is deprecated; use --duration 0.25h" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "new.nc"), "--duration", "15min"]) == rc == EXIT_MISSED_TARGET  # 1 MW limit
    old, new = xr.load_dataset(tmp_path / "old.nc"), xr.load_dataset(tmp_path / "new.nc")
    assert old.sizes["time"] == 15  # one record a minute
    xr.testing.assert_equal(old, new)


def test_tls_options_on_the_dashboard_need_connect(capsys):
    assert main(["dashboard", "--tls-ca", "ca.pem"]) == 1
    assert "--tls-ca: only with --connect" in capsys.readouterr().err
    assert main(["grid-signal", "--broker", "mqtt://127.0.0.1:1", "--key", "k.pem", "--isv", "srp", "--remove",
                 "--tls-ca", "ca.pem"]) == 1  # fmt: skip
    assert "--tls-ca: TLS files need an mqtts:// broker URL" in capsys.readouterr().err


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")
def test_grid_signal_over_mutual_tls_with_either_spelling(mosquitto, tmp_path, capsys):
    """A broker that requires a client certificate signed by the site CA: the signal gets through with the
    new options and with the old ones (which warn)."""
    mosquitto.stop()
    make_tls_files(tmp_path)
    mosquitto.conf.write_text(
        f"user root\nlistener {mosquitto.port} {mosquitto.host}\nallow_anonymous true\nrequire_certificate true\n"
        f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'srv.pem'}\nkeyfile {tmp_path / 'srv.key'}\n"
    )
    mosquitto.start()
    url = f"mqtts://{mosquitto.host}:{mosquitto.port}"
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "client.pem", "client.key"))
    got: queue.Queue = queue.Queue()
    listen = MqttClient(BrokerConfig.from_url(url, ca_file=ca, cert_file=cert, key_file=key),
                        on_message=lambda m: got.put(json.loads(m.payload)))  # fmt: skip
    listen.start(wait_s=10).subscribe(dx.loadtarget_topic("srp"), qos=1)
    signer = tmp_path / "grid.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", signer], check=True)
    base = ["grid-signal", "--broker", url, "--key", str(signer), "--isv", "srp", "--constraint-kw", "70"]
    try:
        for tls, warnings in (
            (["--tls-ca", ca, "--tls-cert", cert, "--tls-key", key], 0),
            (["--ca-file", ca, "--cert-file", cert, "--key-file", key], 3),
        ):
            assert main([*base, *map(str, tls)]) == 0
            out = capsys.readouterr()
            assert out.err.count("is deprecated; use --tls-") == warnings
            event = got.get(timeout=10)
            assert event["id"] in out.out and event["type"] == "grid.loadtarget.set.v1"
    finally:
        listen.stop()


def _parsers(p: argparse.ArgumentParser, path: str = "factory-twin"):
    """Every parser under ``p`` (commands and their sub-commands) with its command path."""
    yield path, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _catalog(folder: str) -> list[str]:
    return sorted(p.stem for p in Path(str(resources.files("factory_twin.data").joinpath(folder))).glob("*.toml"))


def test_help_lists_every_built_in_name_of_the_catalog():
    """Whatever takes a facility, a scenario, a study, a requirement set or a voltage event lists all the
    built-in ones shipped in data/ (emerald-phoenix and srp-2025-05-04 too), each name unbroken."""
    facilities, scenarios = _catalog("facilities"), _catalog("scenarios")
    assert {"campus-100mw", "campus-1gw", "emerald-phoenix"} <= set(facilities) and "srp-2025-05-04" in scenarios
    wanted = {
        "facility": facilities,
        "--facility": facilities,
        "--scenario": scenarios,
        "study": _catalog("studies"),
        "--requirements": _catalog("grid_codes"),
        "--event": _catalog("grid_events"),
    }
    seen = set()
    for path, p in _parsers(build_parser()):
        text = p.format_help()
        for action in p._actions:
            names = wanted.get(action.dest if not action.option_strings else action.option_strings[0])
            if names is None or action.help == argparse.SUPPRESS:
                continue
            seen.add(action.dest)
            for name in names:
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), (path, action.dest, name)
    assert seen == {"facility", "scenario", "study", "requirements", "event"}
    main_help = " ".join(build_parser().format_help().split())
    assert all(name in main_help for name in facilities + scenarios)
