"""``emulate-bms`` and ``connect`` in one process, without a broker: the emulator's messages go straight into the
connector's queue and the connector's requests and heartbeats into the emulator's, as Mosquitto would carry
them (in order, none lost). For figures about the diagnosis over many runs (``bench_dsx_diagnosis.py``, the
clean week of ``bench_bms_clean_day.py --in-process``): the transport is measured on its own by
``bench_bms.py``; here every CPU second goes to the plant and the shadow twin.
"""

from __future__ import annotations

import json
import queue
import time
from dataclasses import dataclass
from pathlib import Path

from factory_twin.links.dsx_exchange.connect import Connector
from factory_twin.links.dsx_exchange.emulator import BmsEmulator
from factory_twin.links.dsx_exchange.faults import Fault
from factory_twin.links.mqtt import topic_matches


@dataclass
class _Msg:
    topic: str
    payload: bytes


class _Sent:
    rc = 0

    def wait_for_publish(self, timeout: float | None = None) -> None:
        return None


class Loopback:
    """One side of the in-process wire: what it publishes lands in the other side's ``on_message``."""

    connected = True

    def __init__(self) -> None:
        self.outages: list = []
        self.peer: Loopback | None = None
        self.on_message = None
        self.on_connect = None
        self.subs: list[str] = []

    def blind_seconds(self) -> float:
        return 0.0

    def subscribe(self, topic: str, qos: int = 0) -> None:
        self.subs.append(topic)

    def publish(self, topic: str, payload, qos: int = 0, retain: bool = False) -> _Sent:
        peer = self.peer
        if peer.on_message is not None and any(topic_matches(s, topic) for s in peer.subs):
            peer.on_message(_Msg(topic, payload.encode() if isinstance(payload, str) else payload))
        return _Sent()

    def publish_many(self, topics: list[str], payloads: list[str]) -> None:
        on = self.peer.on_message
        for t, p in zip(topics, payloads, strict=True):
            on(_Msg(t, p.encode()))


def pair() -> tuple[Loopback, Loopback]:
    a, b = Loopback(), Loopback()
    a.peer, b.peer = b, a
    return a, b


def run(
    facility,
    scenario,
    state_dir: Path,
    faults: tuple[Fault, ...] = (),
    seed: int = 0,
    duration_s: float = 3600.0,
    plant_step_s: float = 20.0,
    requests: bool = False,
    inject=None,
    progress=None,
) -> dict:
    """Emulate ``duration_s`` of the plant into a connector under ``state_dir``; returns the connector's final
    status, its alarm log, the emulator's report and the wall time. ``inject(emulator, connector)`` is called
    after every plant step (extra messages for a scenario); ``progress(elapsed_s, connector)`` after every
    simulated hour."""
    bms_side, con_side = pair()
    t0 = time.perf_counter()
    con = Connector(facility, state_dir, con_side, requests=requests)
    con.subscribe()
    emu = BmsEmulator(facility, scenario, bms_side, faults=faults, plant_step_s=plant_step_s, seed=seed)
    inbox = con.intake.inbox
    while emu.elapsed_s < duration_s - 1e-9:
        emu.step()
        if inject is not None:
            inject(emu, con)
        while True:
            try:
                item = inbox.get_nowait()
            except queue.Empty:
                break
            con.intake.drain(item, 50_000)
        con._housekeeping()
        if progress is not None and int(emu.elapsed_s // 3600) > int((emu.elapsed_s - plant_step_s) // 3600):
            progress(emu.elapsed_s, con)
    st = con.status()
    con.close()
    alarms = [json.loads(x) for x in (Path(state_dir) / "alarms.jsonl").read_text().splitlines()]
    return {"status": st, "alarms": alarms, "emulator": emu.report(0.0), "wall_s": time.perf_counter() - t0}


__all__ = ["Loopback", "pair", "run"]
