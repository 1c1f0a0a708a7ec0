"""Fixtures for the Redfish link: a TLS certificate, accounts, and the BMC emulator served over HTTPS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from factory_twin.links.redfish.auth import load_accounts
from factory_twin.links.redfish.emulator import BmcEmulator
from factory_twin.links.redfish.server import Server
from factory_twin.links.redfish.tls import self_signed

from factory_twin import twin

ONE_RACK = Path(__file__).parents[2] / "data" / "one-rack.toml"  # one GB200 NVL72 rack: 18 nodes, 72 GPUs
SHARED = Path(os.environ.get("FACTORY_TWIN_SHARED", Path(__file__).parents[4] / "shared" / "data"))
CSDL = next(
    (p for p in (SHARED / "redfish" / "csdl", Path("/work/shared/data/redfish/csdl")) if p.is_dir()),
    SHARED / "redfish" / "csdl",
)
PASSWORDS = {"steer": "steer-password-1", "viewer": "viewer-password-1", "admin": "admin-password-1"}
ACCOUNTS = """
[[accounts]]
username = "steer"
password = "steer-password-1"
role = "Operator"

[[accounts]]
username = "viewer"
password = "viewer-password-1"
role = "ReadOnly"

[[accounts]]
username = "admin"
password = "admin-password-1"
role = "Administrator"
"""


@pytest.fixture(scope="session")
def csdl() -> Path:
    """DMTF's Redfish schema files (DSP8010 2025.4) in shared/data."""
    if not CSDL.is_dir():
        pytest.skip(f"DMTF CSDL not found at {CSDL}")
    return CSDL


@pytest.fixture(scope="session")
def tls(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def accounts_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("accounts") / "accounts.toml"
    p.write_text(ACCOUNTS)
    p.chmod(0o600)
    return p


@pytest.fixture(scope="session")
def one_rack():
    return twin.load_facility(ONE_RACK)


@dataclass
class Bmc:
    """An emulator served on 127.0.0.1 and a ``call`` helper (``requests``, verifying the test certificate)."""

    emu: BmcEmulator
    server: Server
    cert: Path

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 10)
        # verify= on every call: a REQUESTS_CA_BUNDLE in the environment would override a session's setting
        return requests.request(method, self.url + path, verify=str(self.cert) if self.cert else True, **kw)

    def login(self, user: str = "steer") -> tuple[str, str]:
        """A new session: (token, its URI)."""
        r = self.call(
            "POST", "/redfish/v1/SessionService/Sessions", json={"UserName": user, "Password": PASSWORDS[user]}
        )
        assert r.status_code == 201, r.text
        return r.headers["X-Auth-Token"], r.headers["Location"]


def start_bmc(facility, accounts_file: Path, tls: tuple[Path, Path] | None, **kw) -> Bmc:
    scenario = kw.pop("scenario", None) or twin.load_scenario(None, facility)
    emu = BmcEmulator(facility, scenario, load_accounts(accounts_file), **kw)
    cert, key = tls if tls else (None, None)
    server = Server(emu.app, "127.0.0.1", 0, cert, key)
    emu.start()
    return Bmc(emu, server, cert)


@pytest.fixture
def bmc_factory(accounts_file, tls) -> Iterator:
    """``make(facility, https=True, **emulator_options)`` -> a started :class:`Bmc`, stopped after the test."""
    made: list[Bmc] = []

    def make(facility, https: bool = True, **kw) -> Bmc:
        made.append(start_bmc(facility, accounts_file, tls if https else None, **kw))
        return made[-1]

    yield make
    for b in made:
        b.emu.stop()
        b.server.stop()


@pytest.fixture
def passwords() -> dict[str, str]:
    return dict(PASSWORDS)


@pytest.fixture
def bmc(one_rack, accounts_file, tls) -> Iterator[Bmc]:
    """The one-rack facility's BMCs over HTTPS at 60x."""
    b = start_bmc(one_rack, accounts_file, tls, speed=60.0)
    yield b
    b.emu.stop()
    b.server.stop()
