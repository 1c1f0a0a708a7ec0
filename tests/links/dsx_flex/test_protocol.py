"""DSX Flex protocol and agent state: signatures, the five refusals, target rules, persistence, contract schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from factory_twin.links.dsx_flex import protocol as dx
from factory_twin.links.dsx_flex.state import Feed, FlexState
from joserfc.jwk import ECKey, RSAKey

T0 = datetime(2025, 5, 4, 23, 0, tzinfo=UTC)
FEEDS = (Feed("main-a", 1e6, 60e6, 50e6, 0.5, "grid"), Feed("main-b", 1e6, 60e6, 50e6, 0.5, "grid"))


@pytest.fixture(scope="module")
def keys():
    return ECKey.generate_key("P-256"), RSAKey.generate_key(2048), ECKey.generate_key("P-256")


def _trust(*keys) -> dx.TrustStore:
    """The public parts of ``keys``, each signing for the ISV ``acme``."""
    return dx.TrustStore.bound("acme", *(ECKey.import_key(k.as_pem(private=False)) if isinstance(k, ECKey) else
                                        RSAKey.import_key(k.as_pem(private=False)) for k in keys))  # fmt: skip


def _event(key, targets, now=T0, isv="acme"):
    return json.dumps(dx.loadtarget_event(isv, targets, key, now)).encode()


def test_signed_targets_verify_with_es256_and_rs256(keys):
    ec, rsa, _ = keys
    trust = _trust(ec, rsa)
    for k, alg in ((ec, "ES256"), (rsa, "RS256")):
        payload = _event(k, [dx.loadtarget_data(40e6, T0, T0 + timedelta(hours=3), ["main-a"])])
        ev = dx.parse_loadtarget(payload, "acme", trust, T0, set())
        assert ev.targets[0].constraint_w == 40e6 and ev.targets[0].feeds == ("main-a",)
        assert ev.targets[0].end - ev.targets[0].start == timedelta(hours=3)
        assert json.loads(payload)["data"].count(".") == 2
        assert dx.jws.extract_compact(json.loads(payload)["data"].encode()).protected["alg"] == alg


def test_five_refusals_change_nothing(keys):
    """Unsigned, badly signed (tampered and untrusted key), expired, replayed and schema-invalid events are
    refused with a reason, and the state is left as it was."""
    ec, _, stranger = keys
    trust = _trust(ec)
    st = FlexState(FEEDS)
    good = _event(ec, [dx.loadtarget_data(40e6)])
    st.apply(dx.parse_loadtarget(good, "acme", trust, T0, st.seen))
    before = json.dumps(st.to_json(), sort_keys=True)

    unsigned = json.loads(_event(ec, [dx.loadtarget_data(30e6)]))
    unsigned["data"] = {"targets": [dx.loadtarget_data(30e6)]}
    tampered = json.loads(_event(ec, [dx.loadtarget_data(30e6)]))
    h, _, s = tampered["data"].split(".")
    other = dx.sign({"targets": [dx.loadtarget_data(1e6)]}, ec).split(".")[1]
    tampered["data"] = f"{h}.{other}.{s}"
    old = _event(ec, [dx.loadtarget_data(30e6)], now=T0 - timedelta(minutes=10))
    invalid = _event(ec, [{"interval": {}, "load_constraint": {"value": -5, "unit": "megawatt"}}])
    cases = {
        "unsigned": json.dumps(unsigned).encode(),
        "bad signature": json.dumps(tampered).encode(),
        "not a trusted key": _event(stranger, [dx.loadtarget_data(30e6)]),
        "expired": old,
        "replayed": good,
        "schema .data.": invalid,
    }
    for reason, payload in cases.items():
        with pytest.raises(dx.RefusedError, match=reason):
            st.apply(dx.parse_loadtarget(payload, "acme", trust, T0, st.seen))
        assert json.dumps(st.to_json(), sort_keys=True) == before, reason
    wrong_spec = json.loads(_event(ec, [dx.loadtarget_data(30e6)]))
    wrong_spec["specversion"] = "1.0"
    with pytest.raises(dx.RefusedError, match="specversion"):
        dx.parse_loadtarget(json.dumps(wrong_spec).encode(), "acme", trust, T0, st.seen)
    with pytest.raises(dx.RefusedError, match="does not match the topic"):
        dx.parse_loadtarget(_event(ec, [dx.loadtarget_data(30e6)]), "other-isv", trust, T0, st.seen)


def test_signed_data_rewrapped_in_a_fresh_envelope_is_a_replay(keys, tmp_path):
    """The signature covers ``data`` only: a captured JWS in a new envelope (fresh id and time) was accepted again,
    so a removed target could be brought back by anyone on the broker. It is refused while any of its intervals
    runs (for ever when open-ended), also after a restart from the saved state; a fresh signature is accepted."""
    ec, _, _ = keys
    trust = _trust(ec)
    st = FlexState(FEEDS)
    honest = json.loads(_event(ec, [dx.loadtarget_data(40e6, T0, None, ["main-a"])]))
    st.apply(dx.parse_loadtarget(json.dumps(honest).encode(), "acme", trust, T0, st.seen))
    st.apply(dx.parse_loadtarget(_event(ec, [dx.loadtarget_data(None, T0, None, ["main-a"])], now=T0 + timedelta(
        minutes=1)), "acme", trust, T0 + timedelta(minutes=1), st.seen))  # fmt: skip
    assert st.limit_w("main-a", T0 + timedelta(minutes=2)) == FEEDS[0].default_w  # removed

    later = T0 + timedelta(hours=2)
    st.prune(later, 360.0)
    st.save(tmp_path)
    st = FlexState(FEEDS)
    st.load(tmp_path)
    rewrapped = json.loads(_event(ec, [dx.loadtarget_data(1e6)], now=later))  # a fresh id and time
    rewrapped["data"] = honest["data"]
    with pytest.raises(dx.RefusedError, match="replayed signed data"):
        dx.parse_loadtarget(json.dumps(rewrapped).encode(), "acme", trust, later, st.seen)
    assert st.limit_w("main-a", later) == FEEDS[0].default_w
    resigned = _event(ec, [dx.loadtarget_data(40e6, T0, None, ["main-a"])], now=later)  # the operator signs anew
    st.apply(dx.parse_loadtarget(resigned, "acme", trust, later, st.seen))
    assert st.limit_w("main-a", later) == 40e6

    bounded = json.loads(
        _event(ec, [dx.loadtarget_data(30e6, later, later + timedelta(hours=1), ["main-b"])], now=later)
    )
    st.apply(dx.parse_loadtarget(json.dumps(bounded).encode(), "acme", trust, later, st.seen))
    st.prune(later + timedelta(hours=1, seconds=1), 360.0)  # its interval has ended: the digest is let go
    assert dx.data_digest(bounded["data"]) not in st.seen and dx.data_digest(honest["data"]) in st.seen


def test_target_rules_schedule_feeds_and_removal(keys):
    ec = keys[0]
    trust = _trust(ec)
    st = FlexState(FEEDS)
    s, e = T0 + timedelta(minutes=30), T0 + timedelta(hours=2)

    def send(*targets, now=T0):
        st.apply(dx.parse_loadtarget(_event(ec, list(targets), now), "acme", trust, now, st.seen))

    send(dx.loadtarget_data(40e6, s, e, ["main-a"]))
    assert st.limit_w("main-a", T0) == 50e6  # scheduled, not yet in force: the default
    assert st.limit_w("main-a", s) == 40e6 and st.limit_w("main-a", e - timedelta(seconds=1)) == 40e6
    assert st.limit_w("main-a", e) == 50e6 and st.limit_w("main-b", s) == 50e6
    send(dx.loadtarget_data(30e6, s + timedelta(hours=1)))  # all feeds, open-ended: cuts main-a's target
    assert st.limit_w("main-a", s) == 40e6 and st.limit_w("main-a", s + timedelta(hours=1)) == 30e6
    assert st.limit_w("main-b", s + timedelta(hours=5)) == 30e6
    send(dx.loadtarget_data(None, s + timedelta(hours=2), feeds=["main-b"]))  # null removes from its start
    assert st.limit_w("main-b", s + timedelta(hours=2)) == 50e6 and st.limit_w("main-a", s + timedelta(hours=3)) == 30e6
    with pytest.raises(dx.RefusedError, match="unknown feed"):
        send(dx.loadtarget_data(30e6, feeds=["main-c"]))
    with pytest.raises(dx.RefusedError, match="below feed 'main-a' power_minimum"):
        send(dx.loadtarget_data(0.5e6, feeds=["main-a"]))


def test_state_persists_atomically_and_reloads(keys, tmp_path):
    ec = keys[0]
    trust = _trust(ec)
    st = FlexState(FEEDS)
    payload = _event(ec, [dx.loadtarget_data(40e6, T0, T0 + timedelta(hours=3), best_effort=True)])
    st.apply(dx.parse_loadtarget(payload, "acme", trust, T0, st.seen))
    st.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["flex-state.json"]
    again = FlexState(FEEDS)
    assert again.load(tmp_path) and again.targets == st.targets and again.seen == st.seen
    with pytest.raises(dx.RefusedError, match="replayed"):
        dx.parse_loadtarget(payload, "acme", trust, T0 + timedelta(seconds=5), again.seen)


def test_ramp_breach_lifecycle_and_published_messages_match_the_contract(keys, flex_contract):
    """Ramp down/up events, breach active -> escalated -> resolved with the 20 % severity rule; every message
    validates against the contract's schemas (envelope and verified data)."""
    ec = keys[0]
    trust = _trust(ec)
    st = FlexState(FEEDS[:1], grace_s=60, escalate_s=120)
    st.ramp_w_per_s = 1e6
    send = dx.parse_loadtarget(_event(ec, [dx.loadtarget_data(20e6)]), "acme", trust, T0, st.seen)
    st.apply(send)
    seq = []
    for k, load in enumerate([45e6, 30e6, 25e6, 25e6, 25e6, 25e6, 25e6, 25e6, 25e6, 20.1e6]):
        seq += [(k, e) for e in (x[1] for x in st.tick(T0 + timedelta(seconds=30 * k), {"main-a": load}))]
    # the feed carries half the site's 1 MW/s ramp: 45 -> 20 MW is due after 50 s + 60 s grace, so the breach
    # starts at the tick at 120 s, escalates 120 s later and resolves when the load is within 1 %
    assert seq == [
        (0, "start_ramp_down"),
        (4, "breach:active"),
        (8, "breach:escalated"),
        (9, "end_ramp_down"),
        (9, "breach:resolved"),
    ]
    resolved = st.breach_data("main-a", "resolved", T0, 20.1e6, [])
    assert resolved["breach"]["breach_id"] == st.tracks["main-a"].resolved.id
    st.apply(dx.parse_loadtarget(_event(ec, [dx.loadtarget_data(None)]), "acme", trust, T0, st.seen))
    assert st.tick(T0 + timedelta(seconds=300), {"main-a": 22e6}) == [("main-a", "start_ramp_up")]
    assert st.tick(T0 + timedelta(seconds=330), {"main-a": 30e6}) == []
    assert st.tick(T0 + timedelta(seconds=360), {"main-a": 30.2e6}) == [("main-a", "end_ramp_up")]
    st2 = FlexState(FEEDS[:1], grace_s=0)
    st2.apply(dx.parse_loadtarget(_event(ec, [dx.loadtarget_data(20e6)]), "acme", trust, T0, st2.seen))
    st2.tick(T0, {"main-a": 20e6})
    assert st2.tick(T0 + timedelta(seconds=1), {"main-a": 23e6}) == [("main-a", "breach:active")]
    warn = st2.breach_data("main-a", "active", T0, 23e6, [])
    assert warn["severity"] == "warning"
    assert st2.breach_data("main-a", "active", T0, 25e6, [])["severity"] == "critical"

    names = ("PowerStateStatusEvent", "PowerStateStatusData", "PowerBreachAlertData")
    ev_v, status_v, breach_v = (flex_contract(n) for n in names)
    status = st2.status_data(T0, {"main-a": 23e6}, {"main-a": 20e6}, {"main-a": "end_ramp_down"})
    ev = dx.build_event(dx.STATUS, "//grid/v1/dsx-flex-agent/twin", "powerstate", status, ec, T0, send.correlation_id)
    ev_v.validate(ev)
    status_v.validate(trust.verify(ev["data"]))
    assert status["feeds"]["main-a"]["compliant"] is False
    hint = {"resource_id": "job@hall", "resource_type": "node", "action": "power_cap", "priority": 1,
            "target_power": dx.power(200, "watt")}  # fmt: skip
    breach_v.validate(warn | {"shed_hints": [hint]})
    st2.tick(T0 + timedelta(seconds=2), {"main-a": 19e6})
    breach_v.validate(st2.breach_data("main-a", "resolved", T0, 19e6, []))
    flex_contract("LoadTargetSetEvent").validate(json.loads(_event(ec, [dx.loadtarget_data(20e6)])))
