r"""Storage a power chain needs to meet the grid's sub-second rules (issue 24 item 4, power-architecture study).

For one facility on one chain, the default synchronous training job (every training GPU, the default wave of
``data/grid_mitigation.toml``) trains through the window; the fast electrical run
(:mod:`twin.grid_dynamics.fast_electrical`, 10 ms) is scored against the built-in requirement sets of
``[storage_sizing]`` after ``settle_taus`` time constants of the slowest layer (the layers start at rest at the first
sample), over ``measure_s``. The job's start is left to the GB300 job-start power-cap ramp (software, 15 MW/min,
inside the 20 MW/min rule by construction; at 1 GW it takes ~20 min, which the storage does not carry). The storage
that hides the iteration swing is the chain's own:

- AC chain (``ac-2n``): the existing rack mitigations, the power-shelf buffer (65 J/GPU, fixed, not counted) and a
  rack battery at the rack's DC side;
- 800 VDC chain (``dc800-2n``): the shelf buffer plus two layers on the 800 VDC bus at the DC-DC inputs, a
  supercapacitor (low-pass split, :math:`\tau` = 1 s) and a battery.

Each layer is a low-pass split (:mod:`models.storage_split`): while it has charge and power the grid sees the
low-pass of the load and the store carries the high-pass, independent of its size. So one run with unbounded
stores gives, per layer, the largest excursion :math:`\Delta E` of its charge from the start and its peak power
:math:`\max|p|`; a store started at half charge with usable energy :math:`2\max|\Delta E|` and that power never
saturates and reproduces the run exactly (the settling is included: conservative by at most the first sample's
distance from the mean times :math:`\tau`). For each battery time constant of ``battery_taus_s`` this is
the least storage that gives that grid trace; the cheapest compliant storage is the one of least energy whose run
meets every rule, and a run with exactly that storage checks it (same POI trace, books closed). The rules that
fail at the next shorter time constant bind; the rule closest to its limit is reported too. No capital cost is
priced (no sourced figure per layer); energy is the criterion. The site BESS is left idle (the hall's own storage
is sized).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from factory_twin.models.poi_metrics import compliance
from factory_twin.models.storage_split import SplitLaw
from factory_twin.models.training_power import JobEvents
from factory_twin.models.units import J_PER_MWH, MW
from factory_twin.twin.grid_dynamics.fast_electrical import (
    Mitigation,
    RackLayer,
    StartState,
    TrainingJob,
    mitigation_defaults,
    run_fast,
    training_racks,
)
from factory_twin.twin.grid_dynamics.grid_codes import load_requirements

UNBOUNDED = 1e9  # J and W per GPU of an unbounded store (excursions are < 1e6 J/GPU; float spacing ~1e-7 J)


def storage_layers(
    dc_bus: bool, battery_tau_s: float, tdp_w: float, sizes: dict[str, tuple[float, float]] | None = None
) -> dict:
    """Layers of a chain, ``{"rack": (...), "bus": (...)}``, each sized ``sizes[name] = (J/GPU, W/GPU)`` (absent:
    unbounded). AC: shelf buffer and rack battery at the rack's DC side; 800 VDC: shelf buffer, and supercapacitor
    and battery on the bus."""
    o = mitigation_defaults()
    sb = o["shelf_buffer"]
    shelf = RackLayer("shelf buffer", sb["j_per_gpu"], sb["w_per_tdp"] * tdp_w, sb["eta"],
                      SplitLaw(tau_s=sb["tau_s"], soc_gain_per_s=sb["soc_gain_per_s"]))  # fmt: skip
    if dc_bus:
        sc, bat = o["dc_bus_supercap"], o["dc_bus_battery"]
        spec = [("supercap", sc["tau_s"], sc), ("battery", battery_tau_s, bat)]
    else:
        spec = [("rack battery", battery_tau_s, o["rack_battery"])]
    sized = []
    for name, tau, p in spec:
        j, w = (sizes or {}).get(name, (UNBOUNDED, UNBOUNDED))
        sized.append(RackLayer(name, j, w, p["eta"], SplitLaw(tau_s=tau, soc_gain_per_s=p["soc_gain_per_s"])))
    return {"rack": (shelf,), "bus": tuple(sized)} if dc_bus else {"rack": (shelf, *sized), "bus": ()}


@functools.cache
def _start(facility: str, chain: str):
    """Facility on ``chain`` and the twin's start state (cached per process)."""
    from factory_twin.optimization.studies.power_architecture import study_facility
    from factory_twin.twin import Twin, load_scenario

    f = study_facility(facility, chain)
    tw = Twin(f, load_scenario(None, f))
    tw.advance()
    return f, StartState.from_twin(tw)


def size_storage(facility: str, chain: str, dt_s: float = 0.01) -> dict[str, Any]:
    """The cheapest compliant storage of ``chain`` on ``facility`` (see the module docstring) [MWh, MW, s]."""
    from factory_twin.twin.facility.power_chains import chain_templates

    o = mitigation_defaults()
    cfg, job = o["storage_sizing"], o["job"]
    dc_bus = "rectifier_curve" in chain_templates()[chain]
    f, start = _start(facility, chain)
    gpus = int(f.gpus[training_racks(f)].sum())
    jobs = [TrainingJob("job1", gpus, job["period_s"], job["duty"], job["edge_s"], events=JobEvents(start_s=0.0))]
    rules = [r for name in cfg["requirements"] for r in load_requirements(name).rules]
    tdp = float(f.tdp_w.max())

    def run(layers: dict):
        settle = cfg["settle_taus"] * max(x.law.tau_s for x in (*layers["rack"], *layers["bus"]))
        r = run_fast(f, start, jobs, Mitigation(rack_layers=layers["rack"], bus_layers=layers["bus"]),
                     settle + cfg["measure_s"], dt_s)  # fmt: skip
        return r, compliance(rules, r.poi_w[int(round(settle / dt_s)) :], dt_s)

    tried = []
    for tau in cfg["battery_taus_s"]:
        layers = storage_layers(dc_bus, tau, tdp)
        r, verdicts = run(layers)
        a = r.dataset.attrs
        where = "bus" if dc_bus else "rack"
        sizes = {}
        for layer in layers[where][0 if dc_bus else 1 :]:  # the sized layers (not the fixed shelf buffer)
            key = f"{where}_{layer.name.replace(' ', '_')}"
            sizes[layer.name] = (2 * a[f"{key}_excursion_j_per_gpu"], a[f"{key}_peak_w_per_gpu"])
        energy = sum(j for j, _ in sizes.values()) * gpus / J_PER_MWH
        tried.append((tau, energy, sizes, verdicts, r.poi_w))
    ok = [t for t in tried if all(v.ok for v in t[3])]
    if not ok:
        worst = {v.rule.name for t in tried for v in t[3] if not v.ok}
        return {"storage_compliant": False, "storage_binding": "MISSED: " + ", ".join(sorted(worst))}
    tau, energy, sizes, verdicts, poi_unbounded = min(ok, key=lambda t: t[1])
    shorter = [t for t in tried if t[0] < tau]
    failed = sorted({v.rule.name for v in shorter[-1][3] if not v.ok}) if shorter else []
    close = max(verdicts, key=lambda v: abs(v.value) / v.rule.limit)
    binding = f"fails at {shorter[-1][0]:g} s: {', '.join(failed)}; " if shorter else "shortest time constant tried; "
    binding += f"closest: {close.rule.name} at {abs(close.value) / close.rule.limit:.0%} of its limit"
    checked, verdicts = run(storage_layers(dc_bus, tau, tdp, sizes))  # exactly the sized stores
    a = checked.dataset.attrs
    return {
        "storage_compliant": all(v.ok for v in verdicts),
        "storage_energy_mwh": energy,
        "storage_power_mw": sum(w for _, w in sizes.values()) * gpus / MW,
        "storage_layers": "; ".join(
            f"{n} {j * gpus / J_PER_MWH:.3f} MWh {w * gpus / MW:.1f} MW" for n, (j, w) in sizes.items()
        ),
        "storage_battery_tau_s": float(tau),
        "storage_binding": binding,
        "storage_rules": "; ".join(f"{v.rule.name} {v.value:.3g}/{v.rule.limit:g} {v.rule.units}" for v in verdicts),
        "storage_job_gpus": gpus,
        "storage_loss_mwh": a["storage_loss_j"] / J_PER_MWH,
        "storage_book_residual": a["energy_book_residual"],
        "storage_poi_match_mw": float(np.abs(checked.poi_w - poi_unbounded).max()) / MW,
        "storage_measured_s": float(cfg["measure_s"]),
    }
