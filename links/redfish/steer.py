"""Steering: pushing per-GPU power limits to the BMCs over Redfish with DMTF's ``redfish`` client.

:class:`LimitPusher` takes the limits a controller wants (one value per GPU, in the layout's order) and writes
only what changed since the BMCs last confirmed it. A node whose GPUs all get the same limit takes one
``PATCH`` of its Chassis ``EnvironmentMetrics`` (``PowerLimitWatts.SetPoint`` = the sum, which the BMC splits
equally); other nodes take one ``PATCH`` per changed GPU. Every write is verified from the resource the
``PATCH`` returns (the BMC's state after the write); a value the BMC changed is reported. Limits are clipped
to the ``AllowableMin``/``AllowableMax`` the BMC publishes (read before the first write), so a request never
exceeds a node's maximum. Transport errors, 5xx and 429 are retried with exponential backoff and jitter; a
401 logs in again; other 4xx are refusals, reported with their Base MessageId. Requests run concurrently
(``concurrency`` in flight on kept-alive HTTPS connections, one Redfish session).

:func:`steer` runs the loop: every ``step_s`` it reads the service's clock (the Manager's ``DateTime``; the
read also renews the BMCs' control lease), calls the controller when it is due (in a worker thread, so the
loop keeps its pace while an MPC solves), pushes, and checks a slice of the nodes against what it believes
(a sweep that finds a node changed behind its back, e.g. after a watchdog fallback, forgets everything and the
next push rewrites it all). :class:`SteerState` is the one object that says how it goes (last push,
refusals, lag).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time as wall
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import numpy as np
from factory_twin.links.redfish.credentials import Credentials
from factory_twin.links.redfish.layout import NodeLayout
from numpy.typing import NDArray
from redfish.aio import AsyncRedfishClient, RedfishConnectionError, RedfishTimeoutError
from redfish.aio.exceptions import RedfishError

log = logging.getLogger(__name__)
Array = NDArray[np.float64]
TOLERANCE_W = 0.01  # a SetPoint within this of the wanted one counts as applied [W]
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
ROOT = "/redfish/v1"


@dataclass
class PushReport:
    """One push: what was written, what the BMCs confirmed, refused or did not answer, and how long it took."""

    started: float  # wall clock, seconds since the epoch
    sim_time: str | None = None
    node_writes: int = 0
    gpu_writes: int = 0
    applied: int = 0
    retries: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # resource -> Base MessageId (or HTTP status)
    failed: dict[str, str] = field(default_factory=dict)  # resource -> why no answer after the retries
    changed_by_bmc: dict[str, float] = field(default_factory=dict)  # resource -> SetPoint the BMC kept
    lagging: list[str] = field(default_factory=list)  # confirmed after the deadline, or not at all
    duration_s: float = 0.0
    latency_p50_s: float = 0.0
    latency_p99_s: float = 0.0
    latency_max_s: float = 0.0

    @property
    def writes(self) -> int:
        return self.node_writes + self.gpu_writes

    def summary(self) -> str:
        s = f"{self.writes} writes ({self.node_writes} nodes, {self.gpu_writes} GPUs) in {self.duration_s:.2f} s"
        s += f", {self.applied} applied"
        if self.writes:
            s += f", latency p50 {self.latency_p50_s * 1e3:.0f} ms p99 {self.latency_p99_s * 1e3:.0f} ms"
        for what, d in (
            ("refused", self.refused),
            ("failed", self.failed),
            ("changed by the BMC", self.changed_by_bmc),
        ):
            if d:
                s += f"; {len(d)} {what} (e.g. {next(iter(d))}: {next(iter(d.values()))})"
        if self.lagging:
            s += f"; {len(self.lagging)} lagging (e.g. {self.lagging[0]})"
        return s


@dataclass
class SteerState:
    """How steering goes, in one readable object (the CLI prints it; a metrics endpoint can serve it)."""

    url: str
    started: float = field(default_factory=wall.time)
    connected: bool = False
    last_contact: float | None = None  # wall time of the last answer from the service
    sim_time: str | None = None  # the service's clock at the last step
    steps: int = 0
    pushes: int = 0  # pushes that wrote something
    requests: int = 0
    controller_calls: int = 0
    resyncs: int = 0  # times everything was rewritten after losing track of the BMCs' state
    refused_total: int = 0
    failed_total: int = 0
    last_push: PushReport | None = None
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=20))

    def note_error(self, text: str) -> None:
        self.errors.append(f"{datetime.now(UTC).isoformat(timespec='seconds')} {text}")  # with its zone
        log.warning("steer: %s", text)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["errors"] = list(self.errors)
        return out


@dataclass
class _Outcome:
    uri: str
    status: str  # applied | refused | failed | changed
    detail: str = ""
    setpoint: float = np.nan
    latency_s: float = np.nan
    retries: int = 0


class LimitPusher:
    """Writes per-GPU limits to one aggregating Redfish service (see the module docstring)."""

    def __init__(
        self,
        client: AsyncRedfishClient,
        layout: NodeLayout,
        state: SteerState,
        concurrency: int = 16,
        retries: int = 3,
        backoff_s: float = 0.05,
        relogin: Callable | None = None,
    ) -> None:
        self.client, self.layout, self.state = client, layout, state
        self.sem = asyncio.Semaphore(concurrency)
        self.retries, self.backoff_s = retries, backoff_s
        self.relogin = relogin
        self._relogin_lock = asyncio.Lock()
        n, g = layout.n_nodes, layout.n_gpus
        self.node_sp = np.full(n, np.nan)  # last SetPoint the BMC confirmed (node: the sum over its GPUs)
        self.node_uniform = np.zeros(n, bool)  # its GPUs are known to be equal (last write was the node's)
        self.gpu_sp = np.full(g, np.nan)
        self.node_min, self.node_max = np.full(n, np.nan), np.full(n, np.nan)
        self.gpu_min, self.gpu_max = np.full(g, np.nan), np.full(g, np.nan)
        self._sweep_at = 0
        self.manager_uri: str | None = None

    # ------------------------------------------------------------------ URIs
    def node_uri(self, node: int) -> str:
        return f"{ROOT}/Chassis/{self.layout.node_ids[node]}/EnvironmentMetrics"

    def gpu_uri(self, gpu: int) -> str:
        lay = self.layout
        node = int(lay.gpu_node[gpu])
        return f"{ROOT}/Systems/{lay.node_ids[node]}/Processors/GPU_{int(lay.gpu_slot[gpu])}/EnvironmentMetrics"

    # ------------------------------------------------------------------ reading
    async def discover(self, nodes: NDArray | None = None) -> int:
        """Read the nodes' limits and bounds (all by default); return how many answered."""
        idx = np.arange(self.layout.n_nodes) if nodes is None else np.asarray(nodes)
        done = await asyncio.gather(*(self._read_node(int(i)) for i in idx))
        return int(sum(done))

    async def _read_node(self, node: int) -> bool:
        async with self.sem:
            r = await self._send("GET", self.node_uri(node))
        if not isinstance(r, int) and r.status == 200:
            self._learn_node(node, r.dict.get("PowerLimitWatts") or {}, uniform=None)
            return True
        return False

    def _learn_node(self, node: int, ctl: dict, uniform: bool | None) -> float:
        sp = _number(ctl.get("SetPoint"))
        self.node_min[node] = _number(ctl.get("AllowableMin"), self.node_min[node])
        self.node_max[node] = _number(ctl.get("AllowableMax"), self.node_max[node])
        if uniform is None:  # a read: keep what we knew of the split if the sum did not move
            uniform = bool(self.node_uniform[node]) and abs(sp - self.node_sp[node]) <= TOLERANCE_W
        self.node_sp[node] = sp
        self.node_uniform[node] = uniform
        lay = self.layout
        a = int(lay.node_first_gpu[node])
        self.gpu_sp[a : a + int(lay.node_gpus[node])] = sp / lay.node_gpus[node] if uniform else np.nan
        return sp

    def _learn_gpu(self, gpu: int, ctl: dict) -> float:
        sp = _number(ctl.get("SetPoint"))
        self.gpu_sp[gpu] = sp
        self.gpu_min[gpu] = _number(ctl.get("AllowableMin"), self.gpu_min[gpu])
        self.gpu_max[gpu] = _number(ctl.get("AllowableMax"), self.gpu_max[gpu])
        node = int(self.layout.gpu_node[gpu])
        self.node_uniform[node] = False
        self.node_sp[node] = np.nan
        return sp

    def forget(self) -> None:
        """Assume nothing about the BMCs' limits: the next push rewrites every node."""
        self.node_sp[:] = np.nan
        self.gpu_sp[:] = np.nan
        self.node_uniform[:] = False

    async def sweep(self, count: int) -> list[int]:
        """Read the next ``count`` nodes (round robin); return those whose SetPoint is not what was confirmed."""
        n = self.layout.n_nodes
        idx = (self._sweep_at + np.arange(min(count, n))) % n
        self._sweep_at = int((self._sweep_at + idx.size) % n)
        before = self.node_sp[idx].copy()
        await self.discover(idx)
        known = np.isfinite(before)
        return [int(i) for i in idx[known & ~(np.abs(self.node_sp[idx] - before) <= TOLERANCE_W)]]

    async def clock(self) -> np.datetime64:
        """The service's clock (its Manager's ``DateTime``) as the facility's local time, a request that renews the
        lease. The ``DateTime`` carries its offset (Redfish ``DateTimeLocalOffset``): a BMC on UTC is converted; one
        without an offset is taken as the facility's local time."""
        if self.manager_uri is None:
            r = await self.client.get(f"{ROOT}/Managers")
            _check(r, "the Managers collection")
            self.manager_uri = r.dict["Members"][0]["@odata.id"]
        r = await self.client.get(self.manager_uri)
        _check(r, self.manager_uri)
        self.state.requests += 1
        t = datetime.fromisoformat(r.dict["DateTime"])
        if t.tzinfo is not None:
            offset = timedelta(hours=self.layout.facility.spec.site.utc_offset_h)
            t = t.astimezone(UTC).replace(tzinfo=None) + offset
        return np.datetime64(t, "s")

    # ------------------------------------------------------------------ writing
    def plan(self, gpu_limit_w: Array) -> tuple[NDArray, Array, NDArray, Array]:
        """What a push of ``gpu_limit_w`` writes: (nodes, their SetPoints, GPUs, their SetPoints), each clipped
        to the bounds the BMCs published."""
        lay = self.layout
        want = np.asarray(gpu_limit_w, float)
        if want.shape != (lay.n_gpus,) or not np.all(np.isfinite(want)):
            raise ValueError(f"limits: expected {lay.n_gpus} finite values [W], got shape {want.shape}")
        want = np.fmax(np.fmin(want, self.gpu_max), self.gpu_min)  # fmin/fmax skip unknown (NaN) bounds
        first = lay.node_first_gpu
        uniform = np.maximum.reduceat(want, first) - np.minimum.reduceat(want, first) <= TOLERANCE_W
        node_sp = np.fmax(np.fmin(lay.per_node_sum(want), self.node_max), self.node_min)
        same = self.node_uniform & (np.abs(node_sp - self.node_sp) <= TOLERANCE_W)
        nodes = np.flatnonzero(uniform & ~same)
        gpus = np.flatnonzero(~uniform[lay.gpu_node] & ~(np.abs(want - self.gpu_sp) <= TOLERANCE_W))
        return nodes, node_sp[nodes], gpus, want[gpus]

    async def push(
        self, gpu_limit_w: Array, deadline_s: float | None = None, sim_time: str | None = None
    ) -> PushReport:
        """Write the limits that changed, verify them, report (see the module docstring)."""
        nodes, node_sp, gpus, gpu_sp = self.plan(gpu_limit_w)
        rep = PushReport(wall.time(), sim_time, node_writes=nodes.size, gpu_writes=gpus.size)
        t0 = wall.monotonic()
        unknown_gpus = gpus[np.isnan(self.gpu_max[gpus])]
        if unknown_gpus.size:  # bounds first: a GPU is never sent more than its AllowableMax
            await asyncio.gather(*(self._read_gpu(int(g)) for g in unknown_gpus))
            gpu_sp = np.fmax(np.fmin(gpu_sp, self.gpu_max[gpus]), self.gpu_min[gpus])
        jobs = [self._write(int(i), None, float(s), t0) for i, s in zip(nodes, node_sp, strict=True)]
        jobs += [
            self._write(int(self.layout.gpu_node[g]), int(g), float(s), t0) for g, s in zip(gpus, gpu_sp, strict=True)
        ]
        outcomes = await asyncio.gather(*jobs)
        rep.duration_s = wall.monotonic() - t0
        lat = np.array([o.latency_s for o in outcomes if o.status in ("applied", "changed")])
        if lat.size:
            rep.latency_p50_s, rep.latency_p99_s = (float(q) for q in np.percentile(lat, [50, 99]))
            rep.latency_max_s = float(lat.max())
        for o in outcomes:
            rep.retries += o.retries
            if o.status == "applied":
                rep.applied += 1
            elif o.status == "changed":
                rep.changed_by_bmc[o.uri] = o.setpoint
            elif o.status == "refused":
                rep.refused[o.uri] = o.detail
            else:
                rep.failed[o.uri] = o.detail
            late = deadline_s is not None and not (o.latency_s <= deadline_s)
            if late or o.status in ("failed", "refused"):
                rep.lagging.append(o.uri)
        st = self.state
        st.pushes += bool(rep.writes)
        st.refused_total += len(rep.refused)
        st.failed_total += len(rep.failed)
        st.last_push = rep
        return rep

    async def _read_gpu(self, gpu: int) -> None:
        async with self.sem:
            r = await self._send("GET", self.gpu_uri(gpu))
        if not isinstance(r, int) and r.status == 200:
            self._learn_gpu(gpu, r.dict.get("PowerLimitWatts") or {})

    async def _write(self, node: int, gpu: int | None, setpoint: float, t0: float) -> _Outcome:
        uri = self.node_uri(node) if gpu is None else self.gpu_uri(gpu)
        body = {"PowerLimitWatts": {"SetPoint": round(setpoint, 3)}}
        retries = 0
        async with self.sem:
            for attempt in range(self.retries + 1):
                r = await self._send("PATCH", uri, body)
                if isinstance(r, int) or r.status in RETRY_STATUS or r.status == 401:
                    if attempt == self.retries:
                        return _Outcome(uri, "failed", _why(r), retries=retries)
                    retries += 1
                    if not isinstance(r, int) and r.status == 401:
                        await self._login_again()
                    await asyncio.sleep(self.backoff_s * 2**attempt * (0.5 + random.random()))
                    continue
                break
        latency = wall.monotonic() - t0
        if r.status != 200:
            return _Outcome(uri, "refused", _message_id(r), latency_s=latency, retries=retries)
        ctl = r.dict.get("PowerLimitWatts") or {}
        got = self._learn_node(node, ctl, uniform=True) if gpu is None else self._learn_gpu(gpu, ctl)
        status = "applied" if abs(got - setpoint) <= TOLERANCE_W else "changed"
        return _Outcome(uri, status, setpoint=got, latency_s=latency, retries=retries)

    async def _send(self, method: str, uri: str, body: dict | None = None):
        """The response, or an ``int`` 0 when the service did not answer (connection error, timeout)."""
        self.state.requests += 1
        try:
            if method == "GET":
                return await self.client.get(uri)
            return await self.client.patch(uri, body=body)
        except (TimeoutError, RedfishConnectionError, RedfishTimeoutError):
            return 0

    async def _login_again(self) -> None:
        if self.relogin is None:
            return
        async with self._relogin_lock:
            try:
                await self.relogin()
            except RedfishError as e:
                self.state.note_error(f"login failed: {e}")


def _number(value: object, default: float = np.nan) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _message_id(r) -> str:
    try:
        return str(r.dict["error"]["@Message.ExtendedInfo"][0]["MessageId"])
    except (KeyError, IndexError, TypeError, ValueError, RedfishError):
        return f"HTTP {r.status}"


def _why(r) -> str:
    return "no answer (connection error or timeout)" if isinstance(r, int) else f"HTTP {r.status}"


def _check(r, what: str) -> None:
    if r.status != 200:
        raise RedfishError(f"GET {what}: HTTP {r.status}")


@dataclass
class Connection:
    """An open Redfish session (or Basic credentials) to one service, with its aiohttp transport."""

    client: AsyncRedfishClient
    http: aiohttp.ClientSession
    credentials: Credentials

    @classmethod
    async def open(cls, url: str, credentials: Credentials, concurrency: int, timeout_s: float) -> Connection:
        if not url.startswith("https://"):
            raise ValueError(f"--redfish: credentials go over HTTPS only, got {url!r}")
        connector = aiohttp.TCPConnector(ssl=credentials.ssl_context(), limit=concurrency)
        http = aiohttp.ClientSession(connector=connector)
        client = AsyncRedfishClient(url, credentials.username, credentials.password, session=http, timeout=timeout_s)
        try:
            await client.login(auth=credentials.auth)
        except BaseException:
            await http.close()
            raise
        return cls(client, http, credentials)

    async def relogin(self) -> None:
        await self.client.login(auth=self.credentials.auth)

    async def close(self) -> None:
        try:
            await self.client.logout()
        except RedfishError as e:
            log.warning("steer: logout failed: %s", e)
        finally:
            await self.http.close()


__all__ = ["Connection", "LimitPusher", "PushReport", "SteerState"]
