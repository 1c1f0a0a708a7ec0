"""The grid side's reading of a DSX Flex agent (``grid-signal --agent``): its clock and its verdict on a load target.

The agent's clock is the ``time`` of its ``grid.powerstate.status.v1`` events (a heartbeat every ``--heartbeat`` of
twin time): a sped-up twin's, not the wall clock. The contract's confirmation of a load target is a status carrying
the target's correlation id (``target_set``); a refusal is not published (the agent logs it), so a target that two
statuses after it was sent neither confirm nor hold is reported as not taken. Only statuses that verify with the
agent's public key are read.
"""

from __future__ import annotations

import queue
import time as wall
from dataclasses import dataclass
from datetime import datetime

from factory_twin.links.dsx_flex.protocol import STATUS, Key, RefusedError, TrustStore, iso
from factory_twin.twin.runs import strict_json

AHEAD_S, BEHIND_S = 60.0, 300.0  # the agent's skew allowance and its default --max-age: the likely reason beyond [s]


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    text: str


class AgentStatus:
    """The verified statuses of agent ``agent_id`` as they arrive (:meth:`on_message` in the MQTT thread)."""

    def __init__(self, agent_id: str, public_key: Key) -> None:
        self.id = agent_id
        self.trust = TrustStore({public_key.thumbprint(): public_key})
        self.inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def on_message(self, msg) -> None:
        self.inbox.put(bytes(msg.payload))

    def _next(self, deadline: float) -> tuple[dict, dict] | None:
        """The next status that verifies (the event, its data) before monotonic ``deadline``; others are skipped."""
        while (left := deadline - wall.monotonic()) > 0:
            try:
                payload = self.inbox.get(timeout=left)
            except queue.Empty:
                return None
            try:
                ev = strict_json.loads(payload)
                if ev.get("type") != STATUS:
                    continue
                return ev, self.trust.verify(ev["data"])
            except (ValueError, KeyError, TypeError, AttributeError, RefusedError):
                continue
        return None

    def clock(self, wait_s: float) -> datetime:
        """The agent's present time: the ``time`` of its next verified status (UTC)."""
        got = self._next(wall.monotonic() + wait_s)
        if got is None:
            raise TimeoutError(
                f"--agent {self.id}: no status verified with --agent-key within {wait_s:g} s (is the agent running, "
                "with this --identifier and key, on this broker?)"
            )
        return _time(got[0])

    def forget(self) -> None:
        """Drop what has arrived so far (before sending: a verdict is read from later statuses only)."""
        while True:
            try:
                self.inbox.get_nowait()
            except queue.Empty:
                return

    def verdict(self, correlation_id: str, event_time: datetime, wait_s: float) -> Verdict:
        """Whether the agent took the target sent with ``correlation_id`` (see the module docstring)."""
        deadline, seen = wall.monotonic() + wait_s, 0
        while (got := self._next(deadline)) is not None:
            ev, data = got
            feeds = data.get("feeds", {})
            if ev.get("correlationid") == correlation_id:
                tags = sorted(tag for tag, x in feeds.items() if x.get("event") == "target_set")
                if tags:
                    return Verdict(
                        True, f"accepted by agent {self.id} at {ev['time']}: target_set on {', '.join(tags)}"
                    )
            held = any(t.get("correlation_id") == correlation_id for x in feeds.values() for t in x.get("targets", []))
            if held:
                return Verdict(True, f"accepted by agent {self.id}: its status at {ev['time']} holds the target")
            seen += 1
            if seen >= 2:
                skew = (event_time - _time(ev)).total_seconds()
                hint = (
                    f"; the event time {iso(event_time)} is {skew:+.0f} s from the agent's clock {ev['time']} "
                    "(leave out --time: --agent stamps it on the agent's clock)"
                    if skew > AHEAD_S or skew < -BEHIND_S
                    else ""
                )
                return Verdict(
                    False,
                    f"refused: agent {self.id} did not take the target (its statuses up to {ev['time']} neither "
                    f"confirm nor hold it; the agent logs the reason){hint}",
                )
        return Verdict(False, f"no verdict from agent {self.id} within {wait_s:g} s (no status after the target)")


def _time(ev: dict) -> datetime:
    return datetime.fromisoformat(str(ev["time"]).replace("Z", "+00:00"))


__all__ = ["AgentStatus", "Verdict"]
