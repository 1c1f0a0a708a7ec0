"""For tests: the utility's side of OpenADR 2.0b, a real openleadr VTN on 127.0.0.1 in a process of its own, and the
PKI it trusts (made at run time with ``cryptography``; no private key is shipped).

The VTN runs in a child process (openleadr verifies signatures with one module-level ``signxml`` verifier whose
state two threads would share) and is driven over its stdin/stdout, one JSON object per line. It requires mutual
TLS and checks each VEN's certificate fingerprint against the one registered for its name (a second name with
another certificate is refused); it requests TELEMETRY_USAGE at 1 s and keeps every value. Two openleadr gaps are
worked around on the utility's side: it has no call to modify an event (the stored event is changed and its
modification number raised, as openleadr's own tests do), and ``add_raw_event`` drops the active period's ramp-up
(set again on the stored event before it is sent).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pki:
    folder: Path

    def cert(self, name: str) -> Path:
        return self.folder / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"


def make_pki(folder: Path, names=("vtn", "ven", "rogue")) -> Pki:
    """A CA and one certificate per name (SAN localhost and 127.0.0.1), all RSA 2048, valid for a day."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write(name, k, c):
        (folder / f"{name}.key").write_bytes(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        (folder / f"{name}.crt").write_bytes(c.public_bytes(serialization.Encoding.PEM))

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test utility CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    write("ca", ca_key, ca)
    import ipaddress

    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    for name in names:
        k = key()
        c = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(san, critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        write(name, k, c)
    return Pki(folder)


class Utility:
    """The VTN in a child process (see the module docstring); ``state()`` returns what it saw: ``registered`` and
    ``refused`` VEN names, ``opts`` [ven_id, event_id, opt] and ``reports`` {ven_id: [[ISO time, value], ...]}."""

    def __init__(self, pki: Pki, port: int, vens: dict[str, str], poll_s: float = 1.0):
        self.port = port
        args = [sys.executable, __file__, str(pki.folder), str(port), json.dumps(vens), str(poll_s)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self._read() == {"ready": True}

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/OpenADR2/Simple/2.0b"

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the VTN process exited ({self.proc.poll()})")
        return json.loads(line)

    def _ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd, default=str) + "\n")
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def add_event(self, ven_name: str, signal_name: str, signal_type: str, intervals: list[tuple], ramp_s: float = 0,
                  measurement: dict | None = None, context: str = "oadr://test/dr") -> str:  # fmt: skip
        """``intervals``: (aware dtstart, seconds, payload); returns the event id."""
        ivs = [[t.isoformat(), s, v] for t, s, v in intervals]
        return self._ask(op="add", ven=ven_name, name=signal_name, type=signal_type, intervals=ivs, ramp_s=ramp_s,
                         measurement=measurement, context=context)["event_id"]  # fmt: skip

    def modify(self, ven_name: str, event_id: str, payloads: list[float]) -> None:
        self._ask(op="modify", ven=ven_name, event_id=event_id, payloads=payloads)

    def cancel(self, ven_name: str, event_id: str) -> None:
        self._ask(op="cancel", ven=ven_name, event_id=event_id)

    def state(self) -> dict:
        return self._ask(op="state")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ---------------------------------------------------------------------------------------- the child process
class _Vtn:
    def __init__(self, pki: Pki, port: int, vens: dict[str, str], poll_s: float):
        self.pki, self.port, self.vens, self.poll_s = pki, port, vens, poll_s
        self.seen = {"registered": [], "refused": [], "opts": [], "reports": {}}

    async def start(self):
        import logging

        from openleadr import OpenADRServer

        logging.getLogger("openleadr").setLevel(logging.ERROR)
        p = self.pki
        self.server = OpenADRServer(
            vtn_id="TEST_UTILITY", http_host="127.0.0.1", http_port=self.port, ven_lookup=self._lookup,
            requested_poll_freq=dt.timedelta(seconds=self.poll_s), show_fingerprint=False,
            show_server_cert_domain=False,
            cert=str(p.cert("vtn")), key=str(p.key("vtn")), http_cert=str(p.cert("vtn")), http_key=str(p.key("vtn")),
            http_ca_file=str(p.ca),
        )  # fmt: skip
        self.server.add_handler("on_create_party_registration", self._register)
        self.server.add_handler("on_register_report", self._on_register_report)
        await self.server.run()

    def _lookup(self, ven_id):
        name = ven_id.removeprefix("id-")
        if name not in self.vens:
            return {}
        return {"ven_id": ven_id, "ven_name": name, "fingerprint": self.vens[name], "registration_id": f"reg-{name}"}

    async def _register(self, info):
        name = info["ven_name"]
        if self.vens.get(name) is None or info.get("fingerprint") != self.vens[name]:
            self.seen["refused"].append(name)
            return False
        self.seen["registered"].append(name)
        return f"id-{name}", f"reg-{name}"

    async def _on_register_report(self, ven_id, resource_id, measurement, unit, scale, min_sampling_interval,
                                  max_sampling_interval):  # fmt: skip
        if measurement != "RealPower" or unit != "W":
            return None

        async def keep(values):
            self.seen["reports"].setdefault(ven_id, []).extend([t.isoformat(), v] for t, v in values)

        return keep, dt.timedelta(seconds=1)

    def _opt(self, ven_id, event_id, opt_type):
        self.seen["opts"].append([ven_id, event_id, opt_type])

    def _stored(self, ven_name, event_id):
        from openleadr import utils

        return utils.find_by(self.server.events[f"id-{ven_name}"], "event_descriptor.event_id", event_id)

    def handle(self, c: dict) -> dict:
        from openleadr import objects, utils

        if c["op"] == "state":
            return self.seen
        if c["op"] == "add":
            ivs = [objects.Interval(dtstart=dt.datetime.fromisoformat(t), duration=dt.timedelta(seconds=s),
                                    signal_payload=v) for t, s, v in c["intervals"]]  # fmt: skip
            m = objects.Measurement(**c["measurement"]) if c.get("measurement") else None
            sig = objects.EventSignal(intervals=ivs, signal_name=c["name"], signal_type=c["type"],
                                      signal_id=utils.generate_id(), measurement=m)  # fmt: skip
            ev = objects.Event(
                event_descriptor=objects.EventDescriptor(event_id=utils.generate_id(), modification_number=0,
                                                         market_context=c["context"], event_status="far"),
                active_period=objects.ActivePeriod(dtstart=ivs[0].dtstart, duration=dt.timedelta(0)),
                event_signals=[sig], targets=[{"ven_id": f"id-{c['ven']}"}],
            )  # fmt: skip
            eid = self.server.add_raw_event(f"id-{c['ven']}", ev, callback=self._opt)
            if c["ramp_s"]:
                self._stored(c["ven"], eid).active_period["ramp_up_period"] = dt.timedelta(seconds=c["ramp_s"])
            return {"event_id": eid}
        if c["op"] == "modify":
            ev = self._stored(c["ven"], c["event_id"])
            for iv, v in zip(ev.event_signals[0].intervals, c["payloads"], strict=True):
                iv.signal_payload = v
            ev.event_descriptor.modification_number += 1
            self.server.events_updated[f"id-{c['ven']}"] = True
            return {}
        if c["op"] == "cancel":
            self.server.cancel_event(f"id-{c['ven']}", c["event_id"])
            return {}
        return {"error": f"unknown op {c['op']!r}"}


async def _serve(folder: str, port: str, vens: str, poll_s: str) -> None:
    out, sys.stdout = sys.stdout, sys.stderr  # openleadr prints banners: stdout carries only the answers
    vtn = _Vtn(Pki(Path(folder)), int(port), json.loads(vens), float(poll_s))
    await vtn.start()
    print(json.dumps({"ready": True}), file=out, flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        try:
            answer = vtn.handle(json.loads(line))
        except Exception as e:
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), file=out, flush=True)
    await vtn.server.stop()


if __name__ == "__main__":
    asyncio.run(_serve(*sys.argv[1:5]))
