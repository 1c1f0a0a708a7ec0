"""The MaxLPS sizing study (issue 22): how many GPUs each power policy deploys in a power shell, and what they deliver.

A template facility (its rack type, plant, one-line diagram and workload mix; campus-1gw by default) gives the power
each policy provisions per rack, at the grid meter [W]:

* ``MaxP``: every GPU at TDP, at the site's ASHRAE 0.4 % design ambient
  (:func:`twin.simulation.design.steady_point`: rack, PSU losses, distribution losses and cooling);
* ``MaxP-shelf``: the rack's power-shelf nameplate (``psu_count x psu_rating_w``, ``data/racks.toml``) with nothing
  added: provisioning a rack at what its shelves could draw (the hypothesis that reproduces NVIDIA's "without"
  column, 261.9 kW per NVL72 rack all-in against 264 kW of shelves; docs/maxlps.md);
* ``MaxQ``: every GPU at its efficiency cap (:func:`twin.facility.resource_groups.efficiency_cap_w`), design ambient;
* ``MaxLPS``: every GPU at the campus's sustained GPU power ``x_s`` (a share of TDP), design ambient, where ``x_s`` is
  the ``sustained_quantile`` of the 1 s campus GPU power under static TDP limits over the study's windows
  (``data/power_policies.toml`` [maxlps]).

A shell of ``P`` MW holds ``floor(P / per_rack)`` whole racks under each policy. Then the windows run again under
MaxLPS steering with the template's import limited to its MaxLPS provision (``n_racks x per_rack``): throughput lost
to steering, excursions above a tier's budget, trips, cooling limit hits and seconds above the import limit, which
scale per GPU to every shell. Tokens/s per GPU: the windows' delivered tokens (MaxP and MaxQ deliver what is
demanded, MaxQ on its capped curve; MaxLPS what steering delivers); revenue at each class's ``value_per_mtok``.

Hot days and grid flexibility (:func:`ambient_provision`): the MaxLPS provision at every hour of the site's year
(GPUs at ``x_s``, the plant at that hour's ambient). Provisioned at the design ambient, the shell holds in all but the
hours hotter than it; provisioned at a milder hour's ambient (``ambient_quantiles``), it holds more GPUs and is over
the shell for the hours above, by an energy the campus must shed there (steering under a lower import, or the DSX
Flex agent in the utility's events): the GPUs the hot days cost, and what flexibility buys back.

Windows run as pieces (:func:`twin.runs.pieces.run_pieces`: serially or on Dask, checkpointed, resumable).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from factory_twin.models.units import MW
from factory_twin.optimization.steering_control import SteeringController
from factory_twin.twin.facility.resource_groups import efficiency_cap_w, policy_presets
from factory_twin.twin.runs.netcdf import write_netcdf
from factory_twin.twin.runs.pieces import Checkpoints, run_pieces
from factory_twin.twin.scenario.scenario import WorkloadProfile
from factory_twin.twin.scenario.weather import climate_normals
from factory_twin.twin.simulation.design import cooling_power_w, grid_flow, rack_totals, rack_types, steady_point
from factory_twin.twin.simulation.power_loop import PowerLoop

from factory_twin import twin

POLICIES = ("MaxP", "MaxP-shelf", "MaxQ", "MaxLPS")
YEAR_S = 365.0 * 86400.0
NVIDIA = {96.0: (38_304, 26_322), 250.0: (99_720, 68_688), 1000.0: (399_096, 274_968)}  # MaxLPS, without (orply.com)
STUDY_FILES = ("results.nc", "cases")


def settings() -> dict:
    """``data/power_policies.toml`` [maxlps]."""
    return dict(policy_presets()["maxlps"])


def study_scenario(f, limit_mw: float | None = None):
    """The facility's default scenario with the study's workload ([maxlps]) and optionally an import limit [MW]."""
    s = settings()
    inf = WorkloadProfile(profile="diurnal", min=s["inference_min"], max=s["inference_max"],
                          peak_hour=s["inference_peak_hour"])  # fmt: skip
    wl = {c: (inf if "inference" in c else WorkloadProfile(level=s["training_level"])) for c in f.class_names}
    changes: dict = {"workload": wl}
    if limit_mw is not None:
        changes["what_if_import_limit_mw"] = limit_mw
    return twin.load_scenario(None, f).with_changes(**changes)


def window_starts(year: int, n: int, hour: float) -> list[str]:
    """``n`` window starts spread over the months of ``year`` (the 15th), at ``hour`` (local time)."""
    months = np.linspace(1, 12, n).round().astype(int) if n <= 12 else np.arange(n) % 12 + 1
    days = [15] * n if n <= 12 else list(1 + (np.arange(n) // 12) * 28 // max(1, (n + 11) // 12))
    out = []
    for m, d in zip(months, days, strict=True):
        t = np.datetime64(f"{year}-{m:02d}-{d:02d}T00:00:00") + np.timedelta64(int(round(hour * 3600)), "s")
        out.append(str(t))
    return out


def run_window(case: dict) -> dict:
    """One window at 1 s (a piece): ``pass`` "demand" (static TDP limits: the campus GPU power every second) or
    "steer" (MaxLPS steering at ``limit_mw``: the meters)."""
    f = twin.load_facility(case["facility"])
    steer = case["pass"] == "steer"
    sc = study_scenario(f, case["limit_mw"] if steer else None)
    ctl = SteeringController(f, mode="steer" if steer else "static")
    loop = PowerLoop(f, sc, ctl, start=np.datetime64(case["start"]), seed=case["seed"], record_every_s=60.0)
    n = int(round(case["duration_s"]))
    gpu = np.empty(n)
    grid = np.empty(n)
    for k in range(n):
        m = loop.step()
        gpu[k] = m.rack_gpu_w.sum()
        grid[k] = m.grid_w
    me = loop.meters
    over = grid > case["limit_mw"] * MW * (1 + 1e-6) if steer else np.zeros(n, bool)
    return {
        "gpu_w": gpu,
        "grid_w": grid,
        "tokens_demanded": np.array(me.tokens_demanded),
        "tokens_delivered": np.array(me.tokens_delivered),
        "satisfaction": np.array(me.satisfaction),
        "excursions": np.array(me.excursions.sum()),
        "longest_excursion_s": np.array(me.longest_s.max()),
        "trips": np.array(sum(e.kind == "trip" for e in loop.paths.events)),
        "cooling_limit_s": np.array(me.cooling_hit_s),
        "over_import_s": np.array(over.sum(dtype=float)),
        "at_limit_s": np.array(me.at_limit_s.max()),
    }


@dataclass(frozen=True)
class AmbientProvision:
    """The MaxLPS provision over the site's year: per hour the grid import per rack [W] with every GPU at ``x_s``
    (the plant at that hour's ambient), and at each quantile ``q`` of those hours the provision per rack [W], the hours
    a year above it and the energy above it per rack [J a year] (an upper bound: every hour at the sustained power)."""

    hourly_w: np.ndarray
    dry_bulb_c: np.ndarray  # per hour [degC]
    wet_bulb_c: np.ndarray
    quantiles: np.ndarray
    per_rack_w: np.ndarray
    hours_over: np.ndarray
    energy_over_j: np.ndarray


def ambient_provision(f, sustained: float, quantiles) -> AmbientProvision:
    """:class:`AmbientProvision` of template ``f`` at sustained share ``sustained`` of TDP (module docstring): the
    steady site model of :func:`steady_point` at each hour's dry and wet bulb of the study's scenario (the facility's
    climate), rack types evaluated once."""
    sc = study_scenario(f)
    year = np.datetime64(str(np.datetime64(sc.start, "Y")), "h")
    times = year + np.arange(8760).astype("timedelta64[h]")
    db, wb = sc.ambient(times)
    types = rack_types(f)
    rt = rack_totals(f, sustained * f.tdp_w[types.rack], types)
    cooling = np.asarray(cooling_power_w(f, rt.q_liquid_w, rt.q_air_w, db, wb), float)
    grid = np.asarray(grid_flow(f, rt, cooling, types).grid_w, float) / f.n_racks
    q = np.asarray(quantiles, float)
    per = np.quantile(grid, q)
    over = np.maximum(grid[None, :] - per[:, None], 0.0)
    return AmbientProvision(grid, np.asarray(db, float), np.asarray(wb, float), q, per,
                            (over > 0).sum(axis=1).astype(float), over.sum(axis=1) * 3600.0)  # fmt: skip


@dataclass
class Provision:
    """Per rack [W at the grid meter] under each policy, GPUs per rack, ``x_s`` (sustained share of TDP), the
    design ambient (dry, wet bulb) [degC] and the PUE at MaxP's design point."""

    per_rack_w: dict[str, float]
    gpus_per_rack: float
    sustained: float
    design_c: tuple[float, float]
    pue: float  # grid import / IT power at MaxP's design point


def provision(f, sustained: float) -> Provision:
    """Per-rack provision of every policy for template ``f`` (module docstring)."""
    normals = climate_normals().get(f.spec.site.climate, {})
    db, wb = normals.get("design_dry_bulb_c", 35.0), normals.get("design_wet_bulb_c", 27.0)
    n = f.n_racks

    def grid(gpu_w):
        return float(steady_point(f, gpu_w, db, wb).grid_w) / n

    per = {
        "MaxP": grid(f.tdp_w),
        "MaxP-shelf": float(np.mean(f.psu_count * f.psu_rating_w)),
        "MaxQ": grid(np.minimum(efficiency_cap_w(f), f.tdp_w)),
        "MaxLPS": grid(sustained * f.tdp_w),
    }
    sp = steady_point(f, f.tdp_w, db, wb)
    return Provision(per, float(f.gpus.mean()), sustained, (db, wb), float(sp.grid_w / sp.it_w))


def maxlps_study(
    facility: str = "campus-1gw",
    shells_mw: tuple[float, ...] = (96.0, 250.0, 1000.0),
    out: Path | None = None,
    year: int = 2026,
    windows: int | None = None,
    window_s: float | None = None,
    serial: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress=None,
) -> xr.Dataset:
    """Run the study (module docstring); with ``out``, pieces are checkpointed in ``out/cases`` (a rerun resumes)
    and the Dataset is written to ``out/results.nc``."""
    s = settings()
    shells = np.asarray(shells_mw, float)
    if shells.size == 0 or not np.all(np.isfinite(shells) & (shells > 0)):
        raise ValueError(f"shells: power shells must be finite and > 0 MW, got {list(shells_mw)}")
    nw = int(windows or s["windows"])
    dur = float(window_s or s["window_s"])
    if nw < 1 or dur < 60:
        raise ValueError(f"windows: at least 1 window of at least 60 s, got {nw} x {dur:g} s")
    f = twin.load_facility(facility)
    starts = window_starts(year, nw, s["window_start_hour"])
    kw = {"serial": serial, "workers": workers, "scheduler": scheduler, "progress": progress}
    if out is None:  # nothing to resume: the pieces live in a folder removed afterwards
        with tempfile.TemporaryDirectory(prefix="maxlps-") as tmp:
            return _study(f, facility, shells, starts, dur, s, Path(tmp), None, kw)
    return _study(f, facility, shells, starts, dur, s, Path(out), out, kw)


def _study(f, facility: str, shells, starts, dur: float, s: dict, folder: Path, out, kw: dict) -> xr.Dataset:
    store = Checkpoints(folder / "cases")
    store.folder.mkdir(parents=True, exist_ok=True)
    nw = len(starts)

    def cases(p: str, limit_mw: float | None) -> dict:
        return {f"{p}-{i:02d}": {"pass": p, "facility": facility, "start": t, "seed": i, "duration_s": dur,
                                 "limit_mw": limit_mw} for i, t in enumerate(starts)}  # fmt: skip

    def values(cs: dict) -> list[dict]:
        ran = run_pieces(run_window, cs, store, **kw)
        bad = {k: r["error"] for k, r in ran.items() if r["status"] != "ok"}
        if bad:
            raise RuntimeError(f"{len(bad)} window(s) failed: " + "; ".join(f"{k}: {e}" for k, e in bad.items()))
        return [store.values(k) for k in cs]

    demand = values(cases("demand", None))
    tdp_sum = float((f.tdp_w * f.gpus).sum())
    frac = np.concatenate([v["gpu_w"] for v in demand]) / tdp_sum
    x_s = float(np.quantile(frac, s["sustained_quantile"]))
    prov = provision(f, x_s)
    limit_mw = prov.per_rack_w["MaxLPS"] * f.n_racks / MW
    steer = values(cases("steer", limit_mw))
    amb = ambient_provision(f, x_s, s["ambient_quantiles"])
    return _table(f, shells, prov, amb, demand, steer, frac, limit_mw, nw, dur, out)


def _table(
    f, shells, prov: Provision, amb: AmbientProvision, demand, steer, frac, limit_mw, nw, dur, out
) -> xr.Dataset:
    n_gpu = float(f.gpus.sum())
    tok_dem = sum(float(v["tokens_demanded"]) for v in demand) / (nw * dur) / n_gpu  # per GPU per s
    tok_lps = sum(float(v["tokens_delivered"]) for v in steer) / (nw * dur) / n_gpu
    value = _value_per_token(f)
    per_gpu = {"MaxP": tok_dem, "MaxP-shelf": tok_dem, "MaxQ": tok_dem * _maxq_throughput(f), "MaxLPS": tok_lps}
    racks = np.array([[np.floor(p * MW / prov.per_rack_w[k]) for k in POLICIES] for p in shells])
    gpus = racks * prov.gpus_per_rack
    tps = gpus * np.array([per_gpu[k] for k in POLICIES])[None, :]
    total = lambda k: sum(float(v[k]) for v in steer)  # noqa: E731
    sim_s = nw * dur
    ds = xr.Dataset(
        {
            "per_rack_kw": ("policy", [prov.per_rack_w[k] / 1e3 for k in POLICIES], {"units": "kW"}),
            "racks": (("shell", "policy"), racks, {"units": "1"}),
            "gpus": (("shell", "policy"), gpus, {"units": "1"}),
            "tokens_per_s": (("shell", "policy"), tps, {"units": "1/s"}),
            "tokens_per_mwh": (("shell", "policy"), tps * 3600 / shells[:, None], {"units": "1/MWh"}),
            "revenue_per_yr": (("shell", "policy"), tps * value * YEAR_S, {"units": "USD/yr"}),
            "nvidia_gpus": (("shell", "policy"), _nvidia(shells), {"units": "1", "source": "orply.com, 2 Jun 2026"}),
            "maxlps_per_rack_kw_at": ("ambient_quantile", amb.per_rack_w / 1e3, {"units": "kW", "long_name":
                "MaxLPS provision per rack at the grid meter with the plant at this quantile of the year's hours"}),
            "maxlps_gpus_at": (("shell", "ambient_quantile"),
                               np.floor(shells[:, None] * MW / amb.per_rack_w[None, :]) * prov.gpus_per_rack,
                               {"units": "1", "long_name": "GPUs MaxLPS deploys, provisioned at that ambient"}),
            "hours_over_shell": ("ambient_quantile", amb.hours_over, {"units": "h/yr", "long_name":
                "hours of the year the campus at its sustained power would be over the shell"}),
            "shed_mwh_per_yr": (("shell", "ambient_quantile"),
                                np.floor(shells[:, None] * MW / amb.per_rack_w[None, :]) * amb.energy_over_j / 3.6e9,
                                {"units": "MWh/yr", "long_name": "energy to shed in those hours (upper bound: every "
                                 "hour at the sustained power); steering under a lower import or DSX Flex events"}),
        },
        coords={"shell": ("shell", shells, {"units": "MW"}), "policy": list(POLICIES),
                "ambient_quantile": ("ambient_quantile", amb.quantiles, {"units": "1"})},
    )  # fmt: skip
    ds.attrs |= {
        "study": "maxlps",
        "template": f.spec.site.name,
        "sustained_share_of_tdp": prov.sustained,
        "gpu_power_share_max": float(frac.max()),
        "gpu_power_share_mean": float(frac.mean()),
        "design_dry_bulb_c": prov.design_c[0],
        "design_wet_bulb_c": prov.design_c[1],
        "design_pue": prov.pue,
        "template_import_limit_mw": limit_mw,
        "windows": nw,
        "window_s": dur,
        "simulated_s": sim_s,
        "throughput_lost_to_steering": 1.0 - tok_lps / tok_dem if tok_dem > 0 else 0.0,
        "satisfaction": float(np.mean([float(v["satisfaction"]) for v in steer])),
        "excursions": total("excursions"),
        "longest_excursion_s": max(float(v["longest_excursion_s"]) for v in steer),
        "trips": total("trips"),
        "cooling_limit_s": total("cooling_limit_s"),
        "over_import_s": total("over_import_s"),
        "at_tier_limit_s_max": max(float(v["at_limit_s"]) for v in steer),
        "ratio_maxlps_maxp": prov.per_rack_w["MaxP"] / prov.per_rack_w["MaxLPS"],
        "ratio_maxlps_maxp_shelf": prov.per_rack_w["MaxP-shelf"] / prov.per_rack_w["MaxLPS"],
        "ratio_maxq_maxp": prov.per_rack_w["MaxP"] / prov.per_rack_w["MaxQ"],
        "value_per_token_usd": value,
        **_design_hours(prov, amb),
    }
    if out is not None:
        write_netcdf(ds, Path(out) / "results.nc")
    return ds


def _design_hours(prov: Provision, amb: AmbientProvision) -> dict[str, float]:
    """The MaxLPS provision at the design ambient against the year's hours: hours over it, the energy above it per
    rack [kWh a year] and the hour the plant's power peaks (its ambient)."""
    over = np.maximum(amb.hourly_w - prov.per_rack_w["MaxLPS"], 0.0)
    worst = int(np.argmax(amb.hourly_w))
    return {
        "design_hours_over_shell": float((over > 0).sum()),
        "design_shed_kwh_per_rack_yr": float(over.sum()) / 1e3,
        "worst_hour_per_rack_kw": float(amb.hourly_w[worst]) / 1e3,
        "worst_hour_dry_bulb_c": float(amb.dry_bulb_c[worst]),
        "worst_hour_wet_bulb_c": float(amb.wet_bulb_c[worst]),
    }


def _value_per_token(f) -> float:
    """Value per token [USD] over the template's GPUs (each class's ``value_per_mtok``, weighted by its GPUs and
    tokens per GPU)."""
    w = np.array([(f.gpus[f.rack_class == c]).sum() * wl.tokens_per_s_per_gpu for c, wl in enumerate(f.spec.workloads)])
    v = np.array([wl.value_per_mtok * 1e-6 for wl in f.spec.workloads])
    return float((w * v).sum() / w.sum()) if w.sum() > 0 else 0.0


def _maxq_throughput(f) -> float:
    """Throughput at the MaxQ cap over throughput uncapped, GPU-weighted over the template's racks."""
    cap = np.minimum(efficiency_cap_w(f), f.tdp_w)
    r = np.ones(f.n_racks)
    for c, curve in enumerate(f.curves):
        idx = np.flatnonzero(f.rack_class == c)
        if idx.size:
            hi = np.minimum(f.demand_w[idx] / f.tdp_w[idx], curve.x_demand)
            r[idx] = curve.throughput(np.minimum(cap[idx] / f.tdp_w[idx], hi)) / curve.throughput(hi)
    return float((r * f.gpus).sum() / f.gpus.sum())


def _nvidia(shells) -> np.ndarray:
    out = np.full((shells.size, len(POLICIES)), np.nan)
    for i, p in enumerate(shells):
        if float(p) in NVIDIA:
            out[i, POLICIES.index("MaxLPS")], out[i, POLICIES.index("MaxP-shelf")] = NVIDIA[float(p)]
    return out


def summary_lines(ds: xr.Dataset) -> list[str]:
    """The study's table and ratios as text lines (the CLI summary)."""
    provision_line, *findings = finding_lines(ds)
    lines = [provision_line]
    for i, p in enumerate(ds.shell.values):
        row = ", ".join(f"{k} {int(v):,}" for k, v in zip(ds.policy.values, ds.gpus.values[i], strict=True))
        nv = ds.nvidia_gpus.values[i]
        ref = f" | NVIDIA: with {int(nv[3]):,}, without {int(nv[1]):,}" if np.isfinite(nv[3]) else ""
        lines.append(f"{p:g} MW: {row}{ref}")
    return lines + findings + ([ambient_line(ds)] if "ambient_quantile" in ds.dims else [])


def finding_lines(ds: xr.Dataset) -> list[str]:
    """The study's provisioning, ratios and steering figures as text lines (the summary without the shells)."""
    a = ds.attrs
    per_rack = ", ".join(f"{p} {v:.1f}" for p, v in zip(ds.policy.values, ds.per_rack_kw.values, strict=True))
    lines = [
        f"sustained GPU power {a['sustained_share_of_tdp']:.3f} of TDP (max {a['gpu_power_share_max']:.3f}, "
        f"mean {a['gpu_power_share_mean']:.3f}); design PUE {a['design_pue']:.3f}; per rack kW: {per_rack}"
    ]
    lines.append(
        f"GPU ratio MaxLPS/MaxP {a['ratio_maxlps_maxp']:.3f}, MaxLPS/MaxP-shelf {a['ratio_maxlps_maxp_shelf']:.3f} "
        f"(NVIDIA 1.45), MaxQ/MaxP {a['ratio_maxq_maxp']:.3f}"
    )
    lines.append(
        f"steering at the MaxLPS shell ({a['windows']} x {a['window_s']:g} s): throughput lost "
        f"{100 * a['throughput_lost_to_steering']:.2f} %, satisfaction {100 * a['satisfaction']:.2f} %, "
        f"{int(a['excursions'])} excursions (longest {a['longest_excursion_s']:g} s), {int(a['trips'])} trips, "
        f"{a['over_import_s']:g} s above the import limit, {a['cooling_limit_s']:g} s at the cooling limit"
    )
    if "ambient_quantile" in ds.dims:
        lines.append(
            f"hot days: provisioned at the design ambient ({ds.per_rack_kw.sel(policy='MaxLPS').item():.1f} kW per "
            f"rack) the campus at its sustained power is over the shell at most {a['design_hours_over_shell']:g} h a "
            f"year; its worst hour, {a['worst_hour_per_rack_kw']:.1f} kW per rack, is at "
            f"{a['worst_hour_dry_bulb_c']:.1f} / {a['worst_hour_wet_bulb_c']:.1f} degC dry / wet bulb"
        )
    return lines


def ambient_line(ds: xr.Dataset) -> str:
    """The MaxLPS provision with the plant at each quantile of the year's hours, at the largest shell, as one line
    (the CLI summary; the Studies page shows it as a table)."""
    big = int(np.argmax(ds.shell.values))
    design = ds.gpus.sel(policy="MaxLPS").values[big]
    rows = "; ".join(
        f"{100 * q:g} % {kw:.1f} kW, {100 * g / design - 100:+.1f} % GPUs, {h:g} h, {e:,.0f} MWh"
        for q, kw, g, h, e in zip(ds.ambient_quantile.values, ds.maxlps_per_rack_kw_at.values,
                                  ds.maxlps_gpus_at.values[big], ds.hours_over_shell.values,
                                  ds.shed_mwh_per_yr.values[big], strict=True)
    )  # fmt: skip
    return (
        f"MaxLPS provisioned with the plant at a quantile of the year's hours (per rack; GPUs against the design "
        f"ambient's; hours a year over the shell; energy to shed at {ds.shell.values[big]:g} MW, at most): {rows}"
    )
