"""What each written NetCDF variable says about itself (CF-1.10): ``units`` and ``long_name``.

The labels and indices that several outputs share (racks, CDUs, the one-line diagram, plan groups, segments)
are described once here; money is in the run's currency: a ``units`` of ``currency`` or ``currency MWh-1``
written by a meter or a plan names the currency of the file's ``currency`` attribute (``KRW MWh-1``).
String variables carry a ``long_name`` only (CF gives text no units); date-times get their units from
xarray's encoding (``seconds since ...``).
"""

from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np
import xarray as xr

CURRENCY = "currency"  # the placeholder unit meters and plans use before the scenario's currency is known

LABELS: dict[str, tuple[str | None, str]] = {  # name -> (units, long_name); units None: text or a date-time
    "time": (None, "end of record interval (local time)"),
    "state_time": (None, "time of the state record (local time)"),
    "segment_start": (None, "start of the segment (local time)"),
    "rack": ("1", "rack index"),
    "cdu": ("1", "CDU index"),
    "rack_cdu": ("1", "index of the CDU that cools the rack"),
    "rack_hall": ("1", "index of the rack's hall (hall_names attribute)"),
    "rack_row": ("1", "row of the rack in its hall"),
    "rack_slot": ("1", "slot of the rack in its row"),
    "rack_class": ("1", "index of the rack's workload class (class_names attribute)"),
    "cdu_hall": ("1", "index of the CDU's hall (hall_names attribute)"),
    "element": (None, "element of the one-line diagram"),
    "element_kind": (None, "kind of element (feed, transformer, switchboard, ups, busway, pdu)"),
    "element_path": (None, "redundant power path the element belongs to (empty: shared)"),
    "element_redundancy": (None, "redundancy group of the element (empty: none)"),
    "element_depth": ("1", "longest path from a feed (0: the feeds)"),
    "edge_child": ("1", "element index fed by the edge"),
    "edge_parent": ("1", "element index feeding the edge"),
    "rack_edge_rack": ("1", "rack index fed by the edge"),
    "rack_edge_parent": ("1", "element index feeding the rack"),
    "event_time": (None, "time of the one-line diagram event (local time)"),
    "event_kind": (None, "kind of event (trip, opened, closed, racks dark, racks restored, mechanical load lost)"),
    "event_element": (None, "element the event happened to"),
    "event_detail": (None, "what happened, in words"),
    "group": (None, "rack group of the plan"),
    "group_class": (None, "workload class of the group"),
    "group_zone": ("1", "cooling zone index of the group"),
    "status": ("1", "case status (flag_meanings)"),  # a batch's cases (twin.runs.batch)
    "error": (None, "why the case failed (empty: it did not)"),
    "elapsed_s": ("s", "wall time of the case"),
}
SUFFIX_UNITS = {"mw": "MW", "mwh": "MWh", "kw": "kW", "w": "W", "j": "J", "s": "s", "h": "h", "min": "min", "k": "K",
                "c": "degC", "pct": "%"}  # fmt: skip


def units_from_name(name: str) -> str | None:
    """The units a parameter's name ends in (``energy_mwh`` -> ``MWh``, ``tau_s`` -> ``s``), or None."""
    return SUFFIX_UNITS.get(name.rsplit(".", 1)[-1].rsplit("_", 1)[-1]) if "_" in name else None


def describe_attrs(
    name: str, attrs: MutableMapping, currency: str | None, kind: str = "f", zone: str | None = None
) -> None:
    """Complete ``attrs`` of variable ``name`` (dtype kind ``kind``) in place: the shared label's ``units``
    and ``long_name`` where missing, and ``currency`` units named (``currency MWh-1`` -> ``KRW MWh-1``)."""
    units, long_name = LABELS.get(name, (None, None))
    if long_name is not None:
        attrs.setdefault("long_name", long_name)
    if units is not None and kind not in "OSUM" and "units" not in attrs:
        attrs["units"] = units
    u = str(attrs.get("units", ""))
    if currency and CURRENCY in u.split():
        attrs["units"] = " ".join(currency if w == CURRENCY else w for w in u.split())
    if zone and "(local time)" in str(attrs.get("long_name", "")):  # the site's zone, e.g. UTC-07:00
        attrs["long_name"] = attrs["long_name"].replace("(local time)", f"(local time, {zone})")


def describe(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` (a shallow copy) with every variable's attributes completed by :func:`describe_attrs`; with a
    ``time_zone`` attribute (the site's, ``UTC-07:00``), each "(local time)" in a long name says which."""
    ds = ds.copy()
    currency, zone = ds.attrs.get("currency"), ds.attrs.get("time_zone")
    for name, var in ds.variables.items():
        describe_attrs(str(name), var.attrs, currency, np.dtype(var.dtype).kind, zone)
    return ds
