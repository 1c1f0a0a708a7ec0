"""Property-based (Hypothesis) suite over what reaches the DSX Flex agent from the broker (issue 20, the flex
block): for any topic and payload (bytes, JSON of any shape and depth, the contract's envelope with a field
mutated, data signed by a key not bound to the topic's ISV, data signed by the bound key but mutated: wrong types,
non-finite and huge numbers, huge strings, deep nesting) :meth:`FlexAgent.handle` never raises, never moves the
clock, and changes the agent's state only for a message signed by the key bound to that ISV whose targets are in
range: every limit then in force is finite, > 0 and within the feed's power_minimum..power_maximum. An honest signed
target is always taken. Sized to run in seconds."""

from __future__ import annotations

import json
import math

import pytest
from factory_twin.links.dsx_flex import protocol as dx
from factory_twin.links.dsx_flex.agent import AgentConfig, FlexAgent
from factory_twin.twin.simulation.controllers import UniformCapToTarget
from factory_twin.twin.simulation.engine import Twin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey

from factory_twin import twin

ISV = "srp"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GRID, OTHER, AGENT = (ECKey.generate_key("P-256") for _ in range(3))  # the key bound to ISV, a stranger, the agent's


@pytest.fixture(scope="module")
def agent() -> FlexAgent:
    f = twin.load_facility("emerald-phoenix")
    sc = twin.load_scenario("srp-2025-05-04", f)
    tw = Twin(f, sc, start="2025-05-04T16:00:00", plant_step_s=20.0, controller=UniformCapToTarget(f))
    trust = dx.TrustStore({GRID.thumbprint(): GRID, OTHER.thumbprint(): OTHER}, {GRID.thumbprint(): {ISV}})
    a = FlexAgent(tw, trust, AGENT, None, None, AgentConfig(identifier="phx"))
    a.step()
    return a


# ------------------------------------------------------------------------------------------------ strategies
finite = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.one_of(
    st.floats(),  # NaN and infinities included (json.dumps writes NaN / Infinity tokens)
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),  # beyond a double
    st.sampled_from([1e309, -1e309, 1.7976931348623157e308, 5e-324, -0.0]),
)
strings = st.one_of(st.text(max_size=40), st.sampled_from(["x" * 300_000, "Infinity", "NaN", "1e309", ""]))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, strings),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)
deep = st.integers(min_value=1, max_value=5000).flatmap(
    lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, "[" * n])
)
topics = st.one_of(
    st.sampled_from(
        [
            dx.loadtarget_topic(ISV),
            dx.loadtarget_topic("mallory"),
            dx.loadtarget_topic("+"),
            dx.loadtarget_topic(ISV) + "/extra",
            "grid/v1/isv",
            "",
            "/" * 10,
            "grid/v1/isv/" + "s" * 10_000 + "/loadtarget/set",
        ]
    ),
    st.text(max_size=60),
)


def _dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _signed(data, key) -> str:
    payload = data if isinstance(data, bytes) else _dumps(data)
    return jws.serialize_compact({"alg": "ES256", "kid": key.thumbprint()}, payload, key)


def _honest(agent, constraint_w: float | None = 70e3, isv: str = ISV, key=GRID) -> dict:
    return dx.loadtarget_event(isv, [dx.loadtarget_data(constraint_w)], key, agent.now())


@st.composite
def mutated_data(draw):
    """A ``SetLoadTargetData`` with one part replaced: the value, the unit, the interval, the list, the whole."""
    value = draw(st.one_of(numbers, strings, json_values))
    target = {"interval": {}, "load_constraint": {"value": 70.0, "unit": "kilowatt"}}
    where = draw(st.sampled_from(["value", "unit", "constraint", "interval", "start", "feeds", "targets", "data"]))
    if where == "value":
        target["load_constraint"]["value"] = value
    elif where == "unit":
        target["load_constraint"]["unit"] = value
    elif where == "constraint":
        target["load_constraint"] = value
    elif where == "interval":
        target["interval"] = value
    elif where == "start":
        target["interval"] = {"start_time": value, "end_time": value}
    elif where == "feeds":
        target["feed_tags"] = value
    data = {"targets": value if where == "targets" else [target]}
    return value if where == "data" else data


@st.composite
def payloads(draw, agent):
    """(topic, payload bytes, who signed the data and whether the data was left honest)."""
    kind = draw(
        st.sampled_from(["bytes", "json", "deep", "envelope", "stranger", "cross-isv", "signed-mutated", "raw-data"])
    )
    topic = dx.loadtarget_topic(ISV)
    signer, honest = None, False
    if kind == "bytes":
        payload = draw(st.binary(max_size=512))
        topic = draw(topics)
    elif kind == "json":
        payload = _dumps(draw(json_values))
        topic = draw(topics)
    elif kind == "deep":
        payload = draw(deep).encode()
    elif kind == "envelope":  # the signed data intact, one envelope field replaced or removed
        ev = _honest(agent)
        field = draw(st.sampled_from(sorted(ev)))
        removed = draw(st.booleans())
        if removed:
            del ev[field]
        else:
            ev[field] = draw(json_values)
        payload, signer = _dumps(ev), GRID
        honest = removed and field == "correlationid"  # the one optional field the agent's honest events carry
    elif kind == "stranger":  # a trusted key that is not bound to this ISV, or an unknown one
        payload, signer = _dumps(_honest(agent, key=draw(st.sampled_from([OTHER, AGENT])))), OTHER
    elif kind == "cross-isv":  # the bound key's honest target sent as another ISV
        isv = draw(st.sampled_from(["mallory", "aps", ISV.upper()]))
        payload, signer = _dumps(_honest(agent, isv=isv)), GRID
        topic = draw(st.sampled_from([dx.loadtarget_topic(isv), dx.loadtarget_topic(ISV)]))
    elif kind == "signed-mutated":
        ev = _honest(agent)
        ev["data"] = _signed(draw(mutated_data()), GRID)
        payload, signer = _dumps(ev), GRID
    else:  # data signed over bytes that are no JSON a double can hold
        ev = _honest(agent)
        ev["data"] = _signed(draw(st.one_of(deep, st.sampled_from(["NaN", "1e309", "{"]))).encode(), GRID)
        payload, signer = _dumps(ev), GRID
    return topic, payload, signer, honest


def _snapshot(agent) -> tuple:
    return json.dumps(agent.state.to_json(), sort_keys=True), agent.twin.time, agent.twin.cap.copy().tobytes()


def _in_range(agent) -> bool:
    now = agent.now()
    for f in agent.state.feeds:
        w = agent.state.limit_w(f.tag, now)
        if not (math.isfinite(w) and w > 0.0 and f.minimum_w <= w <= f.maximum_w):
            return False
    return True


# ------------------------------------------------------------------------------------------------ properties
@SETTINGS
@given(data=st.data())
def test_nothing_but_a_bound_in_range_signature_changes_state_or_the_clock(agent, data):
    topic, payload, signer, honest = data.draw(payloads(agent))
    before = _snapshot(agent)
    accepted = agent.handle(topic, payload)  # never raises
    after = _snapshot(agent)
    assert after[1] == before[1], "the clock moved"
    if accepted:
        assert signer is GRID and topic == dx.loadtarget_topic(ISV), (topic, payload[:300])
        assert _in_range(agent), agent.state.to_json()
    else:
        assert after == before, (topic, payload[:300], agent.refusals[-1])
    if honest:
        assert accepted, agent.refusals[-1]
    json.loads(json.dumps(agent.status_file(), allow_nan=False))  # what it shows stays strict JSON


@SETTINGS
@given(value_w=st.one_of(finite, st.floats(0, 2e5), st.none()), unit=st.sampled_from(sorted(dx.UNITS_W)))
def test_a_bound_signed_target_is_taken_exactly_when_it_is_in_range(agent, value_w, unit):
    """Any finite number the bound key signs: taken if 0 <= value <= the feed's power_maximum, else refused with
    nothing changed; a null constraint (removal) is always taken."""
    feed = agent.state.feed["cluster"]
    target = dx.loadtarget_data(value_w, unit=unit)
    ev = dx.loadtarget_event(ISV, [target], GRID, agent.now())
    before = _snapshot(agent)
    accepted = agent.handle(dx.loadtarget_topic(ISV), _dumps(ev))
    c = target["load_constraint"]
    in_range = c is None or (c["value"] > 0 and feed.minimum_w <= c["value"] * dx.UNITS_W[unit] <= feed.maximum_w)
    assert accepted == in_range, (value_w, unit, agent.refusals[-1] if agent.refusals else "")
    assert _in_range(agent)
    if not accepted:
        assert _snapshot(agent) == before
