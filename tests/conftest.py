"""Fixtures for the whole suite: child processes that import this checkout's code, a real Mosquitto broker."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port

import factory_twin

#: The folder that holds the imported ``factory_twin`` (a checkout's root or site-packages).
IMPORT_ROOT = Path(factory_twin.__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def child_env() -> dict[str, str]:
    """Environment for ``subprocess`` children so that they import the same factory_twin as the tests."""
    path = os.pathsep.join(p for p in (str(IMPORT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return os.environ | {"PYTHONPATH": path}


class Broker:
    """A Mosquitto broker of the test's own on 127.0.0.1 (anonymous, no persistence); ``stop``/``start``
    simulate an outage on the same port."""

    def __init__(self, folder: Path) -> None:
        self.host, self.port = "127.0.0.1", free_port()
        self.url = f"mqtt://{self.host}:{self.port}"
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n")
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-1000:]}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen within 10 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A fresh Mosquitto broker for one test (Debian package ``mosquitto``, installed by ``.ci/run``)."""
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.skip("mosquitto not installed (apt-get install mosquitto; .ci/run does)")
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


SHARED_DATA = Path(os.environ.get("FACTORY_TWIN_SHARED", Path(__file__).parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def flex_contract():
    """``validator(name)``: a JSON Schema 2020-12 validator for ``components.schemas.<name>`` of the DSX Flex
    contract (``shared/data/dsx-exchange/dsx-flex.yaml``, read as 2020-12 per its README); skips without it."""
    path = SHARED_DATA / "dsx-exchange" / "dsx-flex.yaml"
    if not path.exists():
        pytest.skip(f"DSX Flex contract not available at {path} (set FACTORY_TWIN_SHARED)")
    import jsonschema
    import yaml

    doc = yaml.safe_load(path.read_text())

    def validator(name: str) -> jsonschema.Draft202012Validator:
        schema = {**doc, "$ref": f"#/components/schemas/{name}"}
        return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())

    return validator


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright; skips when either is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
