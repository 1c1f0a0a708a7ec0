"""The shared MQTT client against a real Mosquitto: URL parsing, traffic, reconnect and re-subscribe."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time

import pytest
from factory_twin.links.mqtt import BrokerConfig, MqttClient
from support import make_tls_files


def test_url_parsing_defaults_credentials_and_tls(tmp_path, monkeypatch):
    c = BrokerConfig.from_url("mqtt://broker.site")
    assert (c.host, c.port, c.tls, c.username, c.password) == ("broker.site", 1883, False, None, None)
    c = BrokerConfig.from_url("mqtts://twin%40site:p%3Ass@10.0.0.5")
    assert (c.host, c.port, c.tls, c.username, c.password) == ("10.0.0.5", 8883, True, "twin@site", "p:ss")
    assert c.url == "mqtts://10.0.0.5:8883" and "p:ss" not in repr(c)
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    c = BrokerConfig.from_url("mqtt://h:1884", username="u", password_file=pw)
    assert (c.port, c.username, c.password) == (1884, "u", "from-file")
    monkeypatch.setenv("FACTORY_TWIN_MQTT_PASSWORD", "from-env")
    assert BrokerConfig.from_url("mqtt://u@h").password == "from-env"


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("http://h", {}, "scheme must be mqtt:// or mqtts://"),
        ("mqtt://", {}, "no host"),
        ("mqtt://h:99999", {}, "port must be a number"),
        ("mqtt://h/topic", {}, "unexpected path"),
        ("mqtt://h", {"ca_file": "ca.pem"}, "--tls-ca: TLS files need an mqtts://"),
        ("mqtt://h", {"password": "x"}, "--username"),
    ],
)
def test_url_errors_name_the_option(url, kwargs, message):
    with pytest.raises(ValueError, match=message):
        BrokerConfig.from_url(url, **kwargs)


def test_missing_tls_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--tls-ca"):
        BrokerConfig.from_url("mqtts://h", ca_file=tmp_path / "nope.pem")


def _collector():
    got: list[tuple[str, bytes]] = []
    event = threading.Condition()

    def on_message(msg):
        with event:
            got.append((msg.topic, msg.payload))
            event.notify_all()

    def wait_for(n: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        with event:
            event.wait_for(lambda: len(got) >= n, timeout)
        return list(got)

    return on_message, wait_for


def test_reconnects_resubscribes_and_reports_blind_time(mosquitto):
    on_message, wait_for = _collector()
    cfg = BrokerConfig.from_url(mosquitto.url)
    sub = MqttClient(cfg, on_message=on_message, reconnect_min_s=1, reconnect_max_s=2).start()
    pub = MqttClient(cfg, reconnect_min_s=1, reconnect_max_s=2).start()
    try:
        sub.subscribe("t/#", qos=1)
        time.sleep(0.2)
        pub.publish("t/a", b"1", qos=1).wait_for_publish(5)
        assert wait_for(1) == [("t/a", b"1")]

        mosquitto.stop()
        deadline = time.monotonic() + 10
        while (sub.connected or pub.connected) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sub.connected and not pub.connected
        time.sleep(1.0)
        mosquitto.start()  # a fresh broker: no sessions, no subscriptions
        assert sub.wait_connected(15) and pub.wait_connected(15)
        time.sleep(0.3)
        pub.publish("t/b", b"2", qos=1).wait_for_publish(5)
        assert wait_for(2)[-1] == ("t/b", b"2")  # re-subscribed by itself
        assert sub.connects == 2 and len(sub.outages) == 2
        assert 1.0 <= sub.blind_seconds() < 20
    finally:
        sub.stop()
        pub.stop()


def test_first_connect_timeout_names_the_broker():
    cfg = BrokerConfig.from_url("mqtt://127.0.0.1:9")
    with pytest.raises(TimeoutError, match=re.escape("mqtt://127.0.0.1:9")):
        MqttClient(cfg).start(wait_s=0.5)


@pytest.mark.skipif(not shutil.which("openssl") or not shutil.which("mosquitto_passwd"), reason="needs openssl")
def test_tls_with_private_ca_and_password(mosquitto, tmp_path):
    """A TLS listener with its own CA and a password file: mqtts:// + --tls-ca + credentials connect,
    a wrong password and a client that does not trust the CA do not."""
    mosquitto.stop()
    make_tls_files(tmp_path)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp_path / "passwd"), "twin", "s3cret"], check=True)
    mosquitto.conf.write_text(
        # user root: a broker started as root would otherwise drop to "mosquitto" and not read tmp_path
        f"user root\nlistener {mosquitto.port} {mosquitto.host}\n"
        f"allow_anonymous false\npassword_file {tmp_path / 'passwd'}\n"
        f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'srv.pem'}\nkeyfile {tmp_path / 'srv.key'}\n"
    )
    mosquitto.start()
    url = f"mqtts://twin@127.0.0.1:{mosquitto.port}"
    ok = MqttClient(BrokerConfig.from_url(url, password="s3cret", ca_file=tmp_path / "ca.pem")).start(wait_s=10)
    ok.stop()
    with pytest.raises(TimeoutError, match="refused: Not authorized"):
        MqttClient(BrokerConfig.from_url(url, password="wrong", ca_file=tmp_path / "ca.pem")).start(wait_s=1)
    with pytest.raises(TimeoutError, match="the port answers but the MQTT or TLS handshake failed"):
        MqttClient(BrokerConfig.from_url(url, password="s3cret")).start(wait_s=1)  # system CAs do not know it
