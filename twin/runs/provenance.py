"""Provenance attributes for every output: software version, facility, scenario (with content hashes)
and controller, so that a NetCDF file says what produced it."""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata

import numpy as np
from factory_twin.twin.scenario.timeparse import utc_offset


@functools.cache
def software_version() -> str:
    """The installed factory-twin's version (its distribution metadata; the twin does not import the package
    root above it), or ``unknown (not installed)`` when running from a checkout that was never installed."""
    try:
        return metadata.version("factory-twin")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]


def facility_hash(f) -> str:
    """Content hash of a facility: its validated spec (every value, defaults included; a file without a
    ``[topology]`` hashes as it did before the one-line diagram existed)."""
    return _sha256(f.spec.model_dump_json(exclude={"topology"} if f.spec.topology is None else None).encode())


def scenario_hash(sc) -> str:
    """Content hash of a scenario: its validated spec plus the data it resolved (signals, weather, events)."""
    sig, w = sc.signals, sc.weather
    arrays = [sig.time, sig.price_per_mwh, sig.carbon_kg_per_mwh]
    if sig.import_limit_mw is not None:
        arrays.append(sig.import_limit_mw)
    if w is not None:
        arrays += [w.dry_bulb_c, w.rel_humidity, np.array([w.pressure_pa])]
    extra = repr(
        (sc.dr_events, sc.offset_k, sc.what_if_import_limit_mw, sc.carbon_price_per_t, sorted(sc.workload.items()))
    )
    spec = sc.spec.model_dump_json(exclude={"faults"} if not sc.spec.faults else None)  # as before faults existed
    extra += repr(sc.faults) if sc.faults else ""
    return _sha256(spec.encode(), *(np.ascontiguousarray(a).tobytes() for a in arrays), extra.encode())


def fingerprint(facility, scenario) -> dict[str, str]:
    """The facility and scenario of a resumable run, by name and content (a file edited between a kill and
    ``--resume`` is refused, not mixed in)."""
    return {"facility": facility.spec.name, "scenario": scenario.name, "facility_sha256": facility_hash(facility),
            "scenario_sha256": scenario_hash(scenario)}  # fmt: skip


def provenance(facility, scenario, controller: str | None = None) -> dict[str, str]:
    """NetCDF attributes naming what produced an output."""
    out = {
        "software": "factory-twin",
        "software_version": software_version(),
        "facility": facility.spec.name,
        "facility_source": str(facility.source),
        "facility_sha256": facility_hash(facility),
        "scenario": scenario.name,
        "scenario_sha256": scenario_hash(scenario),
        "time_zone": "UTC" + utc_offset(facility.spec.site.utc_offset_h),  # of every local time in the output
    }
    if controller is not None:
        out["controller"] = controller
    return out


__all__ = ["facility_hash", "fingerprint", "provenance", "scenario_hash", "software_version"]
