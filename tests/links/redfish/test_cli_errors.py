"""Bad options of ``emulate-bmc`` and ``steer`` fail at once with a message naming the option."""

from __future__ import annotations

import socket

import pytest

from factory_twin.cli import main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["emulate-bmc", "--accounts", "{acc}"], "--tls-cert/--tls-key: HTTPS needs a certificate"),
        (["emulate-bmc", "--accounts", "{acc}", "--insecure-http", "--tls-self-signed", "x"], "--insecure-http"),
        (
            ["emulate-bmc", "--accounts", "{acc}", "--insecure-http", "--listen", "localhost"],
            "--listen: expected HOST:PORT",
        ),
        (["emulate-bmc", "--accounts", "nowhere.toml", "--insecure-http"], "--accounts: no such file"),
        (["emulate-bmc", "--accounts", "{acc}", "--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["emulate-bmc", "--accounts", "{acc}", "--tls-cert", "c.pem", "--tls-key", "k.pem"], "--tls-cert: no such"),
        (["steer", "--redfish", "http://127.0.0.1:1"], "--redfish: credentials go over HTTPS only"),
        (["steer", "--redfish", "https://127.0.0.1:1", "--concurrency", "0"], "--concurrency: must be >= 1"),
        (["steer", "--redfish", "https://127.0.0.1:1", "--until", "noon"], "--until: expected an ISO time"),
        (["steer", "--redfish", "https://127.0.0.1:1", "--credentials", "nowhere.toml"], "--credentials: no such file"),
    ],
)
def test_bad_options_name_themselves(argv, says, accounts_file, capsys, monkeypatch):
    monkeypatch.delenv("FACTORY_TWIN_REDFISH_USER", raising=False)
    assert main([a.replace("{acc}", str(accounts_file)) for a in argv]) == 1
    assert says in capsys.readouterr().err


def test_a_port_in_use_is_named(accounts_file, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        argv = ["emulate-bmc", "tests/data/one-rack.toml", "--accounts", str(accounts_file), "--insecure-http"]
        assert main([*argv, "--listen", f"127.0.0.1:{port}"]) == 1
    assert f"--listen: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
