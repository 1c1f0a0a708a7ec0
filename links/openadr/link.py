"""The VEN's link to the VTN: openleadr's OpenADR 2.0b client in its own thread and event loop.

It queries and creates the party registration, registers the TELEMETRY_USAGE report (the campus import as
``RealPower`` in W, sampling 1 s to 1 h: the VTN picks the granularity), polls at the VTN's requested frequency and
answers every event through :meth:`links.openadr.ven.TwinVen.on_event`. With certificates (``https``) it runs mutual
TLS 1.2+ and signs every message (XML-DSig, openleadr on ``signxml``), and accepts only VTN messages signed by the
certificate whose fingerprint it was given (OpenADR's fingerprint: the last 10 bytes of the certificate's SHA-256).
Plain ``http`` is refused unless ``insecure`` (tests against a local VTN only).

Failures are reported, never fatal to the twin: a VTN that cannot be reached, refuses the registration (for
instance OpenADR 463, a certificate whose fingerprint the VTN does not expect) or misbehaves (HTTP errors, messages
that fail the schema or the signature) sets the link's state with the reason (:meth:`TwinVen.set_link`, logged
and on the dashboard); registration is retried with backoff from ``retry_s`` to ``max_retry_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time as wall
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("factory_twin.openadr")
UNREACHABLE = ("could not connect", "clientconnectorerror", "clientoserror", "connection reset", "timeout",
               "cannot connect", "connection refused", "serverdisconnected")  # fmt: skip
REFUSED = ("463", "fingerprint", "no registrationid", "no registration id", "create party registration", "no venid")


@dataclass(frozen=True)
class LinkConfig:
    """Where the VTN is and how to prove who we are (paths to PEM files)."""

    vtn_url: str
    ven_name: str
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    vtn_fingerprint: str | None = None
    insecure: bool = False
    retry_s: float = 2.0
    max_retry_s: float = 60.0

    def __post_init__(self) -> None:
        u = urlsplit(self.vtn_url)
        if u.scheme not in ("https", "http") or not u.netloc:
            raise ValueError(f"--vtn: expected https://HOST:PORT/PATH (OpenADR 2.0b over TLS), got {self.vtn_url!r}")
        if not self.ven_name or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", self.ven_name):
            raise ValueError(f"--ven-name: letters, digits and _.:- only, got {self.ven_name!r}")
        if u.scheme == "http":
            if not self.insecure:
                raise ValueError("--vtn: plain http sends unsigned, unverified messages; use https with --tls-cert/"
                                 "--tls-key/--tls-ca (or --insecure-http against a local test VTN)")  # fmt: skip
            if self.cert or self.key:
                raise ValueError("--tls-cert/--tls-key: need an https VTN URL")
            return
        missing = [n for n, v in (("--tls-cert", self.cert), ("--tls-key", self.key), ("--tls-ca", self.ca)) if not v]
        if missing:
            why = "required for an https VTN (OpenADR 2.0b mutual TLS, signed messages)"
            raise ValueError(f"{', '.join(missing)}: {why}")
        for name, p in (("--tls-cert", self.cert), ("--tls-key", self.key), ("--tls-ca", self.ca)):
            if not Path(p).is_file():
                raise FileNotFoundError(f"{name}: file not found: {p}")
        if not self.vtn_fingerprint:
            raise ValueError("--vtn-cert or --vtn-fingerprint: required to verify the VTN's message signatures")
        if not re.fullmatch(r"([0-9A-F]{2}:){9}[0-9A-F]{2}", self.vtn_fingerprint):
            raise ValueError(f"--vtn-fingerprint: expected 10 hex bytes like AB:CD:..., got {self.vtn_fingerprint!r}")


def fingerprint(cert_pem: Path) -> str:
    """OpenADR's fingerprint of a PEM certificate (openleadr's definition)."""
    from openleadr.utils import certificate_fingerprint

    return certificate_fingerprint(Path(cert_pem).read_text())


class _QuietCancel(logging.Filter):
    """apscheduler logs a poll cancelled by the link's own shutdown as a failed job: not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


class _Problems(logging.Handler):
    """openleadr's warnings and errors raised in this link's thread, handed to the link."""

    def __init__(self, link: VtnLink):
        super().__init__(logging.WARNING)
        self.link = link

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.link.thread_id:
            self.link.problem(record.getMessage())


class VtnLink:
    """See the module docstring; ``start()`` returns at once, ``stop()`` ends the registration loop and the client."""

    def __init__(self, ven, cfg: LinkConfig):
        self.ven, self.cfg = ven, cfg
        self.thread_id: int | None = None
        self.client = None
        self.last_ok = 0.0  # monotonic time of the last message from the VTN that parsed and verified
        self.last_problem = ""
        self.attempt: list[str] = []  # the problems of the present registration attempt
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._handler = _Problems(self)
        ven.ven_name = cfg.ven_name

    # ------------------------------------------------------------------ thread
    def start(self) -> VtnLink:
        import openleadr  # noqa: F401  (sets its logger to INFO on import: quieted below)

        logging.getLogger("openleadr").setLevel(logging.WARNING)
        logging.getLogger("openleadr").addHandler(self._handler)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # a line per poll and report at INFO
        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # a line per poll, and one per poll skipped
        sched = logging.getLogger("apscheduler.executors.default")
        if not any(isinstance(f, _QuietCancel) for f in sched.filters):
            sched.addFilter(_QuietCancel())
        self._thread = threading.Thread(target=self._run, name=f"openadr-{self.cfg.ven_name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
        logging.getLogger("openleadr").removeHandler(self._handler)
        self.ven.set_link("stopped")

    def _run(self) -> None:
        self.thread_id = threading.get_ident()
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        try:
            self._loop.run_until_complete(self._main())
        except Exception as e:  # the twin runs on; the dashboard says why the link ended
            log.exception("OpenADR link failed")
            self.ven.set_link("error", f"the link stopped: {type(e).__name__}: {e}")
        finally:
            self._loop.close()

    # ------------------------------------------------------------------ registration and health
    async def _main(self) -> None:
        delay = self.cfg.retry_s
        while not self._stop.is_set():
            self.last_problem, self.attempt = "", []
            client = self._client()
            try:
                await client.run()
            except Exception as e:
                self.problem(f"{type(e).__name__}: {e}")
            if client.registration_id:
                self.client, delay = client, self.cfg.retry_s
                self.ven.set_link("registered", f"ven_id {client.ven_id}, polling every {client.poll_frequency}")
                await self._watch(client)
            else:
                state, reason = _registration_failure(self.attempt)
                self.ven.set_link(state, f"{reason} (retrying in {delay:g} s)")
            await _close(client)
            self.client = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, self.cfg.max_retry_s)

    async def _watch(self, client) -> None:
        """While registered: the link's state from the latest good message and the latest problem."""
        period = client.poll_frequency.total_seconds() if client.poll_frequency else 10.0
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)
            if not client.registration_id:
                self.ven.set_link("refused", "the VTN cancelled the registration")
                return
            silent = wall.monotonic() - self.last_ok
            if silent > 3 * period + 5 and self.last_problem:
                state = "unreachable" if _kind(self.last_problem) == "unreachable" else "error"
                self.ven.set_link(state, f"{self.last_problem} (no good message for {silent:.0f} s)")
            elif silent <= 3 * period + 5:
                self.ven.set_link("registered", f"ven_id {client.ven_id}, polling every {client.poll_frequency}")

    def problem(self, text: str) -> None:
        short = _shorten(text)
        self.last_problem = short
        self.attempt.append(short)
        self.ven.link_problem(short)

    def _ok(self, *_) -> None:
        self.last_ok = wall.monotonic()

    # ------------------------------------------------------------------ openleadr client
    def _client(self):
        from openleadr import OpenADRClient, enums, objects

        c, cfg = self.cfg, self.ven.cfg
        tls = {}
        if c.cert:
            tls = dict(cert=str(c.cert), key=str(c.key), ca_file=str(c.ca), vtn_fingerprint=c.vtn_fingerprint)
        client = OpenADRClient(ven_name=c.ven_name, vtn_url=c.vtn_url, show_fingerprint=False, **tls)
        client.add_handler("on_event", self.ven.on_event)
        client.add_handler("on_update_event", self.ven.on_event)
        client.add_hook("after_parse_xml", self._ok)
        client.add_report(
            callback=self.ven.report_values,
            resource_id=self.ven.twin.f.spec.name,
            measurement="RealPower",
            unit="W",
            scale="none",
            report_name=enums.REPORT_NAME.TELEMETRY_USAGE,
            sampling_rate=objects.SamplingRate(timedelta(seconds=1), timedelta(hours=1), False),
            report_duration=timedelta(hours=1),
            power_ac=True,
            power_hertz=cfg.grid_hz,
            power_voltage=round(cfg.meter_voltage_kv * 1000),
        )
        return client


async def _close(client) -> None:
    with contextlib.suppress(Exception):
        if client.scheduler.running:
            client.scheduler.shutdown(wait=False)
        if client.report_queue_task:
            client.report_queue_task.cancel()
        if client.client_session is not None and not client.client_session.closed:
            await client.client_session.close()


def _registration_failure(problems: list[str]) -> tuple[str, str]:
    """The link's state and reason after a registration that got no ID: unreachable when any problem says the VTN
    could not be reached, refused otherwise; the reason lists the distinct problems (openleadr's closing "no
    registration ID" line only when it is the only one)."""
    distinct = list(dict.fromkeys(problems))
    named = [p for p in distinct if "registrationid received" not in p.lower().replace(" ", "")] or distinct
    reason = "; ".join(named) or "no registration ID received from the VTN"
    state = "unreachable" if any(_kind(p) == "unreachable" for p in distinct) else "refused"
    return state, _shorten(reason, 400)


def _kind(text: str) -> str:
    low = text.lower()
    if any(w in low for w in UNREACHABLE):
        return "unreachable"
    if any(w in low for w in REFUSED):
        return "refused"
    return "error"


def _shorten(text: str, limit: int = 300) -> str:
    """One line, without the XML openleadr quotes in full."""
    text = re.sub(r" with data <\?xml.*?</oadr:oadrPayload>", "", " ".join(text.split()), flags=re.S)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["LinkConfig", "VtnLink", "fingerprint"]
