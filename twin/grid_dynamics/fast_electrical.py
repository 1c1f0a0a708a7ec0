r"""Fast electrical run: minutes to an hour of the campus's grid intake at a fine step (10 ms default).

Started from a state of the main twin (per-rack GPU power and caps, cooling load, BESS charge), it
places synchronous training jobs on training racks and advances, every step ``dt``:

GPU demand of each job (:func:`models.training_power.job_power_w`, one phase per job) -> GPU smoothing
(:func:`models.gpu_smoothing.smooth_series`) -> rack storage layers, per GPU (shelf buffer, rack battery:
:func:`models.storage_split.split_step`) -> PSUs (rack DC-DC on 800 VDC) -> storage on the 800 VDC bus
(``bus_layers``: the same layers and split law, per GPU at the DC-DC inputs; per group, which equals one hall-level
store while no store saturates, the split being linear) -> the one-line diagram
(:class:`twin.facility.topology.Topology`, all paths closed) with the (held) cooling load -> site BESS split at the
meter -> point of interconnection.

Racks of one job with the same rack type and cap move together, so the time loops run over a handful
of *groups* (job x rack kind), never over racks; racks outside the jobs hold their power from the start
state. Per-rack values are formed only at the end (:meth:`FastRun.rack_mean_gpu_w`). The books close per
step: POI energy = DC load + cooling + conversion losses + storage losses + change in stored energy.

An RMS power model: no network, voltages or currents (see docs/grid-dynamics.md for its limits).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
import xarray as xr
from factory_twin.models.gpu_smoothing import SmoothingProfile, smooth_series
from factory_twin.models.power import Bess
from factory_twin.models.storage_split import SplitLaw, run_split
from factory_twin.models.training_power import JobEvents, job_power_w, job_running
from factory_twin.models.units import MJ, MW, S_PER_MIN, TOKENS_PER_MTOK
from factory_twin.twin.facility.assembly import Facility
from factory_twin.twin.simulation.design import routing
from factory_twin.twin.simulation.plant import Plant, build_plant
from numpy.typing import NDArray

from factory_twin import data

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]


def mitigation_defaults() -> dict:
    """Mitigation options and their sources (``data/grid_mitigation.toml``)."""
    with data.path("grid_mitigation.toml").open("rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class TrainingJob:
    """A synchronous training job: GPU count, iteration waveform, events. ``comm_fraction`` is the
    communication-phase power as a share of TDP (None: the rack's idle power)."""

    name: str
    gpus: int
    period_s: float = 2.0
    duty: float = 0.75
    edge_s: float = 0.05
    phase_s: float = 0.0
    comm_fraction: float | None = None
    events: JobEvents = field(default_factory=JobEvents)

    def __post_init__(self) -> None:
        if self.gpus < 1 or int(self.gpus) != self.gpus:
            raise ValueError(f"gpus: job {self.name!r} needs a whole number of GPUs >= 1, got {self.gpus!r}")


@dataclass(frozen=True)
class RackLayer:
    """A rack storage layer per GPU: usable energy [J], power limit [W], one-way efficiency, split law
    (``law.ramp_w_s`` per GPU)."""

    name: str
    j_per_gpu: float
    w_per_gpu: float
    eta: float
    law: SplitLaw

    def store(self) -> Bess:
        return Bess(self.j_per_gpu, self.w_per_gpu, self.eta, self.eta)


@dataclass(frozen=True)
class Mitigation:
    """GPU smoothing, rack storage layers, storage layers on the 800 VDC bus (supercapacitor, battery: between the
    racks' DC-DC inputs and the DC busway, per GPU of the racks they serve), the site BESS's split law (None: BESS
    idle) and the job-start power-cap ramp per GPU (NVIDIA GB300 "job start" phase:
    :math:`p \\le P_{idle} + r (t - t_{start})`)."""

    smoothing: SmoothingProfile = field(default_factory=SmoothingProfile)
    rack_layers: tuple[RackLayer, ...] = ()
    bess_law: SplitLaw | None = None
    start_ramp_w_s: float = math.inf  # per GPU: power cap ramped from idle at each job start
    bus_layers: tuple[RackLayer, ...] = ()


@dataclass(frozen=True)
class StartState:
    """What the fast run takes from the main twin: per-rack GPU power and cap [W/GPU], the cooling
    (mechanical) load [W], the BESS charge [J]."""

    gpu_power_w: Array
    gpu_cap_w: Array
    mech_w: float
    bess_energy_j: float

    @classmethod
    def from_twin(cls, twin) -> StartState:
        """From a :class:`twin.simulation.engine.Twin` that has advanced at least one plant step."""
        st = twin.state()
        if not math.isfinite(st.cooling_power_w):
            raise ValueError("twin: advance the twin one plant step before starting a fast run (no cooling load yet)")
        return cls(st.gpu_power_w, st.gpu_cap_w, float(st.cooling_power_w), float(st.bess_energy_j))


def training_racks(f: Facility) -> IntArray:
    """Racks of the training classes (class or curve named ``training``), in facility order."""
    cls = [i for i, w in enumerate(f.spec.workloads) if "training" in (w.name, w.curve)]
    return np.flatnonzero(np.isin(f.rack_class, cls))


def place_jobs(f: Facility, jobs: Sequence[TrainingJob]) -> IntArray:
    """Rack -> job index (-1: none), filling training racks in order; a job takes whole racks."""
    free = training_racks(f)
    owner = np.full(f.n_racks, -1)
    pos = 0
    for j, job in enumerate(jobs):
        need = int(np.searchsorted(np.cumsum(f.gpus[free[pos:]]), job.gpus)) + 1
        if pos + need > free.size or f.gpus[free[pos:]].sum() < job.gpus:
            left = int(f.gpus[free[pos:]].sum())
            raise ValueError(f"--jobs: job {job.name!r} needs {job.gpus:,} GPUs; {left:,} free on training racks")
        owner[free[pos : pos + need]] = j
        pos += need
    return owner


@dataclass
class FastRun:
    """Result of :func:`run_fast`: POI and internal series at every step, books and hand-back values."""

    dataset: xr.Dataset
    group_of_rack: IntArray
    group_mean_gpu_w: Array
    start: StartState

    @property
    def poi_w(self) -> Array:
        return self.dataset.poi_mw.values * MW

    @property
    def dt_s(self) -> float:
        return float(self.dataset.attrs["dt_s"])

    def rack_mean_gpu_w(self) -> Array:
        """Mean GPU power per rack over the window [W/GPU]: the hand-back to the main twin's racks."""
        out = self.start.gpu_power_w.copy()
        inside = self.group_of_rack >= 0
        out[inside] = self.group_mean_gpu_w[self.group_of_rack[inside]]
        return out

    def handback(self) -> dict[str, float]:
        """Energy and throughput effects for the facility twin (SI)."""
        a = self.dataset.attrs
        return {
            "poi_energy_j": a["poi_energy_j"],
            "bess_energy_j": a["bess_energy_end_j"],
            "floor_burn_j": a["floor_burn_j"],
            "storage_loss_j": a["storage_loss_j"],
            "throughput_kept": a["throughput_kept"],
            "tokens_lost": a["tokens_lost"],
        }


@dataclass(frozen=True)
class JobGroups:
    """Racks of one job with identical electrical parameters, which move together: per group its job, rack
    count and the racks' GPUs, TDP, idle and compute power [W/GPU], non-GPU power, PSU rating [W], class and PSU
    curve (index into the facility's ``psu_curves``)."""

    of_rack: IntArray  # rack -> group (-1: outside the jobs)
    job: IntArray
    racks: Array
    gpus: Array
    tdp: Array
    idle: Array
    high: Array
    non_gpu: Array
    psu: Array
    rack_class: IntArray
    curve: IntArray

    @property
    def n(self) -> int:
        return self.job.size

    @property
    def gpu_count(self) -> Array:
        """GPUs per group (racks x GPUs per rack): the weights of per-GPU series."""
        return self.racks * self.gpus


def job_groups(f: Facility, start: StartState, owner: IntArray) -> JobGroups:
    """Group the job racks (``owner`` >= 0) by job and electrical parameters."""
    psu_rating = f.psu_count * f.psu_rating_w
    job_racks = np.flatnonzero(owner >= 0)
    p_high = np.minimum(f.demand_w, start.gpu_cap_w)
    cols = [owner, f.gpus, f.tdp_w, f.idle_w, p_high, f.non_gpu_w, psu_rating, f.rack_class, f.psu_curve]
    keys = np.column_stack(cols).astype(float)[job_racks]
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    of_rack = np.full(f.n_racks, -1)
    of_rack[job_racks] = inv.ravel()
    racks = np.bincount(inv.ravel(), minlength=uniq.shape[0]).astype(float)
    return JobGroups(of_rack, uniq[:, 0].astype(int), racks, *(uniq[:, k] for k in range(1, 7)), uniq[:, 7].astype(int),
                     uniq[:, 8].astype(int))  # fmt: skip


def gpu_power(
    g: JobGroups, jobs: Sequence[TrainingJob], t: Array, dt_s: float, mitigation: Mitigation
) -> tuple[Array, Array]:
    """Stage 1: each group's GPU demand [W/GPU] (groups x steps), then the power after the job-start cap ramp
    and GPU smoothing."""
    n_g, n = g.n, t.size
    demand = np.empty((n_g, n))
    running = np.empty((n_g, n), bool)
    for k in range(n_g):
        job = jobs[g.job[k]]
        low = g.idle[k] if job.comm_fraction is None else job.comm_fraction * g.tdp[k]
        demand[k] = job_power_w(
            t, g.high[k], low, g.idle[k], job.period_s, job.duty, job.edge_s, job.phase_s, job.events
        )
        running[k] = job_running(t, job.events)
    cap = None
    if math.isfinite(mitigation.start_ramp_w_s):
        starts = np.array([max(jobs[j].events.start_s, 0.0) for j in g.job])[:, None]
        cap = g.idle[:, None] + mitigation.start_ramp_w_s * np.maximum(t[None, :] - starts, 0.0)
    sm = smooth_series(np.minimum(demand, cap) if cap is not None else demand, g.tdp, dt_s, mitigation.smoothing,
                       running, cap_w=cap)  # fmt: skip
    return demand, sm.power_w


@dataclass(frozen=True)
class RackStorage:
    """Stage 2's result: power upstream of the storage layers [W/GPU] (groups x steps); over all job GPUs, the
    layers' loss [W] and stored energy [J] per step, and the stored energy at start and end; per layer its largest
    excursion of stored energy from the start [J/GPU] and its peak power [W/GPU] (the most loaded group)."""

    rack_in: Array
    loss_w: Array
    stored_j: Array
    e_start_j: float
    e_end_j: float
    excursion_j: tuple[float, ...] = ()
    peak_w: tuple[float, ...] = ()


def rack_storage(load: Array, g: JobGroups, dt_s: float, layers: Sequence[RackLayer]) -> RackStorage:
    """Stage 2: the rack storage layers, per GPU (racks of a group are identical), in order from the GPUs."""
    n = load.shape[1]
    rack_in = load
    loss_w, stored_j = np.zeros(n), np.zeros(n)
    e_start = e_end = 0.0
    w = g.gpu_count
    exc, peak = [], []
    for layer in layers:
        rack_in, p, loss, e, e0 = _run_layer(rack_in, dt_s, layer.law, layer.store())
        loss_w += w @ loss
        e_start += float(w @ e0)
        e_end += float(w @ e[:, -1])
        stored_j += w @ e
        exc.append(float(np.abs(e - e0[:, None]).max()))
        peak.append(float(np.abs(p).max()))
    return RackStorage(rack_in, loss_w, stored_j, e_start, e_end, tuple(exc), tuple(peak))


@dataclass(frozen=True)
class SiteDraw:
    """Stage 3's result [W per step]: IT input (rack PSUs / DC-DC), DC load, PSU DC output after the rack
    storage, the chain's conversion losses, the grid draw before the site BESS, and the 800 VDC bus storage."""

    it_w: Array
    dc_w: Array
    rack_in_w: Array
    losses_w: Array
    site_w: Array
    bus: RackStorage


def site_draw(
    f: Facility,
    plant: Plant,
    start: StartState,
    g: JobGroups,
    load: Array,
    rack_in: Array,
    bus_layers: Sequence[RackLayer] = (),
    dt_s: float = 1.0,
) -> SiteDraw:
    """Stage 3: PSUs (DC-DC), the DC-bus storage layers on their inputs (per GPU, :func:`rack_storage`'s law) and
    the one-line diagram (with the held cooling load), for the job groups plus the racks that hold their start power."""
    psu_rating = f.psu_count * f.psu_rating_w
    other = g.of_rack < 0
    dc_other = f.gpus[other] * start.gpu_power_w[other] + f.non_gpu_w[other]
    in_other_rack = plant.psu_input_w(dc_other, psu_rating[other], f.psu_curve[other])
    in_other = float(in_other_rack.sum())
    g_in = plant.psu_input_w(rack_in * g.gpus[:, None], g.psu[:, None], g.curve[:, None])
    it_w = g.racks @ g_in + in_other
    bus = rack_storage(g_in / g.gpus[:, None], g, dt_s, bus_layers)
    g_up = bus.rack_in * g.gpus[:, None]  # per rack, drawn from the DC busway
    w = g.gpu_count
    dc_w = w @ load + float(dc_other.sum())
    rack_in_w = w @ rack_in + float(dc_other.sum())
    flow = _network_flow(f, g.racks @ g_up + in_other, g_up, g.of_rack, in_other_rack, start.mech_w)
    return SiteDraw(it_w, dc_w, rack_in_w, flow.losses_w, flow.grid_w, bus)


def _network_flow(f: Facility, it_w: Array, g_in: Array, of_rack: Array, in_other: Array, mech_w: float):
    """One-line diagram flows over the run: per-rack input ``g_in`` [W] of each job group over time
    (``[groups, steps]``), the held input of the other racks ``in_other`` [W], the held mechanical load [W]
    (the aggregate chain reads only the campus IT input ``it_w``)."""
    topo, rt = f.topology, routing(f)
    if rt.single_rack_parent >= 0:
        direct = np.zeros((topo.n, it_w.size))
        direct[rt.single_rack_parent] = it_w
    else:
        job = np.flatnonzero(of_rack >= 0)
        onehot = sp.csr_matrix((np.ones(job.size), (job, of_rack[job])), (f.n_racks, g_in.shape[0]))
        held = np.zeros(f.n_racks)
        held[of_rack < 0] = in_other
        direct = (rt.rack @ onehot) @ g_in + (rt.rack @ held)[:, None]
    return topo.flow_direct(rt, direct + topo.mech_direct(rt, np.full(it_w.size, mech_w)))


@dataclass(frozen=True)
class SiteBess:
    """Stage 4's result: power at the POI [W], the BESS's power (> 0 discharging) and loss [W], its energy
    after each step [J] and at start [J]."""

    poi_w: Array
    bess_w: Array
    loss_w: Array
    energy_j: Array
    e_start_j: float


def site_bess(bess: Bess | None, law: SplitLaw | None, start: StartState, site_w: Array, dt_s: float) -> SiteBess:
    """Stage 4: the site BESS at the meter, its split law referred to the start charge (idle without a law)."""
    n = site_w.size
    if bess is None or law is None:
        e = start.bess_energy_j
        return SiteBess(site_w, np.zeros(n), np.zeros(n), np.full(n, e), e)
    e_start = min(
        max(start.bess_energy_j, bess.soc_min * bess.energy_capacity_j), bess.soc_max * bess.energy_capacity_j
    )
    law = replace(law, soc_ref=e_start / bess.energy_capacity_j)
    up, p, loss, e, _ = _run_layer(site_w[None, :], dt_s, law, bess, e_start)
    return SiteBess(up[0], p[0], loss[0], e[0], e_start)


def energy_books(draw: SiteDraw, store: RackStorage, site: SiteBess, mech_w: float, dt_s: float) -> dict[str, float]:
    """Energy over the run [J]: POI = DC load + cooling + conversion losses + storage losses + change in stored
    energy; ``energy_book_residual`` is what is left, relative to the POI energy."""
    n = draw.it_w.size
    poi_j = float(site.poi_w.sum() * dt_s)
    dc_j = float(draw.dc_w.sum() * dt_s)
    conv_j = float((draw.it_w - draw.rack_in_w + draw.losses_w).sum() * dt_s)  # PSUs, busway, UPS, transformers
    bus = draw.bus
    st_loss_j = float((store.loss_w.sum() + bus.loss_w.sum() + site.loss_w.sum()) * dt_s)
    d_stored = store.e_end_j - store.e_start_j + bus.e_end_j - bus.e_start_j + float(site.energy_j[-1] - site.e_start_j)
    mech_j = mech_w * n * dt_s
    residual = poi_j - (dc_j + mech_j + conv_j + st_loss_j + d_stored)
    return {
        "poi_energy_j": poi_j,
        "poi_mean_mw": poi_j / (n * dt_s) / MW,
        "dc_load_j": dc_j,
        "mech_j": mech_j,
        "conversion_loss_j": conv_j,
        "storage_loss_j": st_loss_j,
        "stored_change_j": d_stored,
        "energy_book_residual": residual / poi_j,
    }


def throughput(
    f: Facility, jobs: Sequence[TrainingJob], g: JobGroups, demand: Array, gpu_w: Array, dt_s: float
) -> dict[str, float]:
    """The work the ramp limits withheld, per job (the least kept share is reported), the tokens and value
    lost at the classes' rates, and the floor burn (energy above the work's own draw) [J]."""
    n = demand.shape[1]
    work = np.maximum(demand - g.idle[:, None], 0.0).sum(axis=1) * dt_s
    deficit = np.maximum(demand - gpu_w, 0.0).sum(axis=1) * dt_s  # work the limits held back
    burn = np.maximum(gpu_w - demand, 0.0).sum(axis=1) * dt_s  # energy above the work's own draw
    gw = g.gpu_count
    kept = np.ones(len(jobs))
    tokens_lost = 0.0
    tok = np.array([w.tokens_per_s_per_gpu for w in f.spec.workloads])
    val = np.array([w.value_per_mtok for w in f.spec.workloads])
    value_lost = 0.0
    for j in range(len(jobs)):
        gs = g.job == j
        wj, dj = float((gw * work)[gs].sum()), float((gw * deficit)[gs].sum())
        kept[j] = 1 - dj / wj if wj > 0 else 1.0
        rate = (gw * tok[g.rack_class] * (1 - kept[j]))[gs]
        tokens_lost += float(rate.sum()) * n * dt_s
        value_lost += float((rate * val[g.rack_class][gs]).sum()) * n * dt_s / TOKENS_PER_MTOK
    return {
        "floor_burn_j": float(gw @ burn),
        "throughput_kept": float(np.min(kept)) if len(jobs) else 1.0,
        "tokens_lost": tokens_lost,
        "value_lost": value_lost,
    }


def run_fast(
    f: Facility,
    start: StartState,
    jobs: Sequence[TrainingJob],
    mitigation: Mitigation = Mitigation(),
    duration_s: float = 600.0,
    dt_s: float = 0.01,
    record_every: int = 1,
) -> FastRun:
    """Advance the campus's electrical side over ``duration_s`` at ``dt_s`` from ``start``.

    ``record_every`` keeps every n-th step in the Dataset (metrics should use 1); the books use all.
    """
    if not (dt_s > 0 and duration_s >= dt_s):
        raise ValueError(f"dt_s: must be > 0 and <= duration_s, got dt {dt_s!r}, duration {duration_s!r}")
    n = int(round(duration_s / dt_s))
    t = np.arange(n) * dt_s
    plant = build_plant(f)
    g = job_groups(f, start, place_jobs(f, jobs))
    demand, gpu_w = gpu_power(g, jobs, t, dt_s, mitigation)
    load = gpu_w + (g.non_gpu / g.gpus)[:, None]  # rack DC per GPU
    store = rack_storage(load, g, dt_s, mitigation.rack_layers)
    draw = site_draw(f, plant, start, g, load, store.rack_in, mitigation.bus_layers, dt_s)
    site = site_bess(plant.bess, mitigation.bess_law, start, draw.site_w, dt_s)
    books = energy_books(draw, store, site, start.mech_w, dt_s)
    work = throughput(f, jobs, g, demand, gpu_w, dt_s)

    sl = slice(None, None, record_every)
    gw = g.gpu_count
    soc = site.energy_j / plant.bess.energy_capacity_j if plant.bess is not None else np.full(n, np.nan)
    ds = xr.Dataset(
        {
            "poi_mw": (
                "time",
                site.poi_w[sl] / MW,
                {"units": "MW", "long_name": "power at the point of interconnection"},
            ),
            "site_mw": ("time", draw.site_w[sl] / MW, {"units": "MW", "long_name": "grid draw before the site BESS"}),
            "it_mw": ("time", draw.it_w[sl] / MW, {"units": "MW", "long_name": "IT input (rack PSUs)"}),
            "gpu_mw": ("time", gw @ gpu_w[:, sl] / MW, {"units": "MW", "long_name": "job GPUs"}),
            "demand_mw": (
                "time",
                gw @ demand[:, sl] / MW,
                {"units": "MW", "long_name": "job GPU demand before smoothing"},
            ),
            "bess_mw": ("time", site.bess_w[sl] / MW, {"units": "MW", "long_name": "site BESS, > 0 discharging"}),
            "bess_soc": ("time", soc[sl], {"units": "1", "long_name": "site BESS state of charge"}),
            "rack_store_mj": (
                "time",
                store.stored_j[sl] / MJ,
                {"units": "MJ", "long_name": "energy held in the job racks' storage layers"},
            ),
            "bus_store_mj": (
                "time",
                draw.bus.stored_j[sl] / MJ,
                {"units": "MJ", "long_name": "energy held in the 800 VDC bus storage layers"},
            ),
        },
        coords={"time": ("time", t[sl], {"units": "s"})},
        attrs={
            "dt_s": dt_s * record_every,
            "step_s": dt_s,
            "duration_s": n * dt_s,
            "jobs": ", ".join(f"{j.name}:{j.gpus}" for j in jobs),
            "job_gpus": int(sum(j.gpus for j in jobs)),
            "groups": g.n,
            **books,
            "floor_burn_j": work["floor_burn_j"],
            "bess_energy_start_j": site.e_start_j,
            "bess_energy_end_j": float(site.energy_j[-1]),
            "bess_peak_mw": float(np.abs(site.bess_w).max() / MW),
            **_layer_attrs("rack", mitigation.rack_layers, store),
            **_layer_attrs("bus", mitigation.bus_layers, draw.bus),
            "throughput_kept": work["throughput_kept"],
            "tokens_lost": work["tokens_lost"],
            "value_lost": work["value_lost"],
            "currency": "",
        },
    )
    return FastRun(ds, g.of_rack, gpu_w.mean(axis=1), start)


def _layer_attrs(where: str, layers: Sequence[RackLayer], store: RackStorage) -> dict[str, float]:
    """Per storage layer its largest excursion from the start charge [J/GPU] and peak power [W/GPU]."""
    out = {}
    for layer, exc, peak in zip(layers, store.excursion_j, store.peak_w, strict=True):
        key = f"{where}_{layer.name.replace(' ', '_')}"
        out |= {f"{key}_excursion_j_per_gpu": exc, f"{key}_peak_w_per_gpu": peak}
    return out


def _run_layer(load: Array, dt: float, law: SplitLaw, store: Bess, e0: float | None = None):
    """One storage layer over (groups x time) from rest: upstream power, store power, loss, energy after
    each step, and the start energy (``law.soc_ref`` of capacity unless ``e0`` is given)."""
    start = np.full(load.shape[0], law.soc_ref * store.energy_capacity_j if e0 is None else e0)
    up, p, loss, e = run_split(load, dt, law, store, start)
    return up, p, loss, e, start


def bess_ramp_law(ramp_mw_per_min: float, tau_s: float, soc_gain_per_s: float) -> SplitLaw:
    """Site BESS law from engineering units."""
    return SplitLaw(tau_s=tau_s, ramp_w_s=ramp_mw_per_min * MW / S_PER_MIN, soc_gain_per_s=soc_gain_per_s)
