"""MQTT client shared by the DSX Exchange (BMS) and DSX Flex connections (paho-mqtt 2.x).

:class:`BrokerConfig` parses a broker URL (``mqtt://host:port`` plain, ``mqtts://host:port`` TLS; optional
``user:password@``) plus credential and TLS options; :class:`MqttClient` connects in paho's network thread,
reconnects by itself with exponential backoff (``reconnect_min_s`` doubling up to ``reconnect_max_s``),
re-subscribes every subscription after each reconnect (clean sessions keep none on the broker) and keeps a
log of its outages (:attr:`MqttClient.outages`: how long it was blind).
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
PASSWORD_ENV = "FACTORY_TWIN_MQTT_PASSWORD"  # read when no password is given otherwise (keeps it off argv)
PROBE_S = 3.0  # a failed connection is probed with a plain TCP connect this long to say why [s]
NOTICE_S = 10.0  # services say the broker cannot be reached after this long without a connection [s]

MessageHandler = Callable[[paho.MQTTMessage], None]


@dataclass(frozen=True)
class BrokerConfig:
    """Where and how to connect. Build it with :meth:`from_url`; ``tls`` follows the URL scheme."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 30

    @classmethod
    def from_url(
        cls,
        url: str,
        username: str | None = None,
        password: str | None = None,
        password_file: Path | None = None,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        keepalive_s: int = 30,
        option: str = "--broker",
    ) -> BrokerConfig:
        """Parse ``mqtt[s]://[user[:password]@]host[:port]``; explicit arguments win over the URL's.

        The password comes from (first found) ``password``, ``password_file`` (first line), the URL, then
        the environment variable ``FACTORY_TWIN_MQTT_PASSWORD``. TLS files only make sense with ``mqtts``.
        Errors name the command-line options (``option``: the one that gave ``url``).
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ValueError(f"{option}: scheme must be mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"{option}: no host in {url!r} (e.g. mqtt://127.0.0.1:1883)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{option}: unexpected path or query in {url!r}; give mqtt[s]://host:port only")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise ValueError(f"{option}: port must be a number 1-65535 in {url!r}") from None
        tls = scheme == "mqtts"
        for name, f in (("--tls-ca", ca_file), ("--tls-cert", cert_file), ("--tls-key", key_file)):
            if f is not None:
                if not tls:
                    raise ValueError(f"{name}: TLS files need an mqtts:// broker URL, got {url!r}")
                if not Path(f).is_file():
                    raise FileNotFoundError(f"{name}: no such file {f}")
        if (cert_file is None) != (key_file is None):
            raise ValueError("--tls-cert and --tls-key: give both for a client certificate, or neither")
        if password is None and password_file is not None:
            if not Path(password_file).is_file():
                raise FileNotFoundError(f"--password-file: no such file {password_file}")
            lines = Path(password_file).read_text(encoding="utf-8").splitlines()
            if not lines or not lines[0]:
                raise ValueError(f"--password-file: {password_file} is empty")
            password = lines[0]
        if password is None and parts.password is not None:
            password = unquote(parts.password)
        user = username if username is not None else (unquote(parts.username) if parts.username else None)
        if password is None and user is not None:
            password = os.environ.get(PASSWORD_ENV)
        if password is not None and user is None:
            raise ValueError("--username: a password was given without a user name")
        return cls(
            parts.hostname,
            port,
            tls,
            user,
            password,
            Path(ca_file) if ca_file else None,
            Path(cert_file) if cert_file else None,
            Path(key_file) if key_file else None,
            keepalive_s,
        )

    @property
    def url(self) -> str:
        """The broker URL without credentials (safe to log)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass
class Outage:
    """One period without a broker connection (wall-clock seconds since the epoch)."""

    start: float
    end: float | None = None
    reason: str = ""

    @property
    def seconds(self) -> float:
        return (self.end if self.end is not None else time.time()) - self.start


class MqttClient:
    """A paho client that stays connected: background network thread, reconnect with backoff, re-subscribe.

    ``on_message`` receives every message (in the network thread: keep it short, hand work to a queue).
    ``on_connect``/``on_disconnect`` are called after (re)connects and losses. Subscriptions made with
    :meth:`subscribe` are replayed on every reconnect.
    """

    def __init__(
        self,
        config: BrokerConfig,
        client_id: str | None = None,
        on_message: MessageHandler | None = None,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        max_inflight: int = 1000,
    ) -> None:
        self.config = config
        self.client_id = client_id or f"factory-twin-{uuid.uuid4().hex[:8]}"
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self._subs: dict[str, int] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.connects = 0
        self.outages: list[Outage] = []
        self.last_error = ""
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        self._retry_max_s = max(1, round(reconnect_max_s))
        c.reconnect_delay_set(max(1, round(reconnect_min_s)), self._retry_max_s)
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(0)  # unbounded: QoS>=1 publishes made while disconnected are kept
        if config.username is not None:
            c.username_pw_set(config.username, config.password)
        if config.tls:
            ctx = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
            if config.cert_file:
                ctx.load_cert_chain(str(config.cert_file), str(config.key_file) if config.key_file else None)
            c.tls_set_context(ctx)
        c.on_connect = self._handle_connect
        c.on_disconnect = self._handle_disconnect
        c.on_message = self._handle_message
        c.on_connect_fail = self._handle_connect_fail
        self._client = c

    # ------------------------------------------------------------------ lifecycle
    def start(self, wait_s: float | None = 10.0) -> MqttClient:
        """Connect in the background; with ``wait_s`` wait for the first connection (TimeoutError if none)."""
        self.outages.append(Outage(time.time(), reason="not yet connected"))
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()
        if wait_s is not None and not self.wait_connected(wait_s):
            self.stop()
            raise TimeoutError(f"{self.unreachable()} (tried for {wait_s:g} s)")
        return self

    def unreachable(self) -> str:
        """What a user reads when there is no connection: the broker and why (:attr:`last_error`)."""
        return f"cannot reach the MQTT broker at {self.config.url}: {self.last_error or 'no answer'}"

    def notice_unreachable(self, who: str, wait_s: float = NOTICE_S) -> bool:
        """For a service that keeps retrying: wait up to ``wait_s`` for the first connection; without one, say on
        stderr that the broker cannot be reached and that it keeps trying. True when connected."""
        if self.wait_connected(wait_s):
            return True
        print(f"{who}: {self.unreachable()}; retrying (backing off to {self._retry_max_s:g} s) until it answers",
              file=sys.stderr, flush=True)  # fmt: skip
        return False

    def stop(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def blind_seconds(self) -> float:
        """Total time without a connection after the first one (the initial connect is not counted)."""
        return sum(o.seconds for o in self.outages if o.reason != "not yet connected")

    # ------------------------------------------------------------------ traffic
    def subscribe(self, topic: str, qos: int = 0) -> None:
        """Subscribe now (if connected) and after every reconnect."""
        with self._lock:
            self._subs[topic] = qos
        if self.connected:
            self._client.subscribe(topic, qos)

    def unsubscribe(self, topic: str) -> None:
        with self._lock:
            self._subs.pop(topic, None)
        if self.connected:
            self._client.unsubscribe(topic)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> paho.MQTTMessageInfo:
        """Publish; QoS 0 while disconnected is dropped (the result's ``rc`` says so), QoS 1/2 is queued."""
        return self._client.publish(topic, payload, qos, retain)

    def publish_many(self, topics: list[str], payloads: list[str]) -> None:
        """Publish ``payloads[i]`` on ``topics[i]`` at QoS 0, not retained (a telemetry burst; no info kept)."""
        pub = self._client.publish
        for topic, payload in zip(topics, payloads, strict=True):
            pub(topic, payload)

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"refused: {reason_code}"
            return  # paho retries with backoff
        with self._lock:
            subs = list(self._subs.items())
        if subs:
            client.subscribe(subs)
        self.connects += 1
        if self.outages and self.outages[-1].end is None:
            self.outages[-1].end = time.time()
        self._connected.set()
        if self.on_connect:
            self.on_connect()

    def _handle_connect_fail(self, client, userdata) -> None:
        self.last_error = self._why_unreachable()

    def _why_unreachable(self) -> str:
        """Why a connection attempt failed, in words (paho does not say): a plain TCP connection to the broker's
        address tells a refused port, a timeout or an unknown host from a TLS or MQTT failure."""
        try:
            socket.create_connection((self.config.host, self.config.port), timeout=PROBE_S).close()
        except OSError as e:
            return (e.strerror or str(e) or type(e).__name__).lower()
        return "the port answers but the MQTT or TLS handshake failed"

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was:
            reason = str(reason_code)
            self.outages.append(Outage(time.time(), reason=reason))
            if self.on_disconnect:
                self.on_disconnect(reason)

    def _handle_message(self, client, userdata, message: paho.MQTTMessage) -> None:
        if self.on_message:
            self.on_message(message)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT wildcard match (``+`` one level, ``#`` the rest)."""
    return paho.topic_matches_sub(pattern, topic)


__all__ = ["BrokerConfig", "MqttClient", "Outage", "topic_matches"]
