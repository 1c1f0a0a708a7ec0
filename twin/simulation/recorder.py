"""Recorders: interval means and samples of a running twin, assembled into a CF-style xarray Dataset.

:class:`Recorder` keeps every per-rack and per-CDU array at every record (a day, a week). A long run keeps
only what its output holds (:class:`CampusRecorder`): the campus meters, the campus reductions of the rack
and CDU arrays (:data:`REDUCED`) and the full per-rack/per-CDU state at a few records (for the seams of a
segmented run); the same values as the arrays of a :class:`Recorder` would give.

A facility with its own one-line diagram (``[topology]``) adds its meters: per element (:data:`meters.TIER_METERS`,
dimension ``element``) and per rack ``rack_powered`` in a :class:`Recorder`, the campus reductions
(:data:`meters.TOPOLOGY_RECORDED`) in both, and the diagram's events (trips, paths opened, racks dark) on an
``event`` dimension.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from factory_twin.models.units import J_PER_MWH, KW, MW
from factory_twin.twin.simulation import meters
from factory_twin.twin.simulation.meters import GridNow, IntervalMean, PlantStepResult, Reading
from factory_twin.twin.simulation.paths import PathEvent

RACK = {
    "gpu_power_w": ("W", "mean power per GPU"),
    "gpu_cap_w": ("W", "GPU power cap"),
    "die_temp_c": ("degC", "GPU die temperature (rack's representative GPU)"),
}
CDU = {
    "tcs_supply_c": ("degC", "TCS supply temperature"),
    "tcs_return_c": ("degC", "TCS return at the CDU"),
    "cdu_at_capacity": ("1", "CDU cannot hold its supply setpoint"),
}

# per-record campus reductions of the rack and CDU arrays: name -> (units, long_name)
REDUCED = {
    "die_temp_max_c": ("degC", "hottest GPU die at the record time"),
    "cdus_at_capacity": ("1", "CDUs not holding their TCS supply setpoint at the record time"),
    "flexible_mw": ("MW", "GPU power the caps could shed: busy GPUs from their cap down to the minimum cap"),
}
STATE = ("die_temp_c", "tcs_supply_c", "tcs_return_c")  # the per-rack/CDU state a CampusRecorder keeps


class Recorder:
    """Collects ``n`` records, each the mean over ``per_record`` plant steps."""

    def __init__(self, twin, n: int, per_record: int):
        f = twin.f
        self.twin, self.n, self.per_record = twin, n, per_record
        self.explicit = f.topology.explicit
        self.recorded = meters.RECORDED + (meters.TOPOLOGY_RECORDED if self.explicit else ())
        self.time = np.empty(n, "datetime64[s]")
        self.campus = {k: np.zeros(n) for k in self.recorded}
        self._allocate(f, n)
        self.interval = IntervalMean(f.n_racks)
        self.heat_in_j = self.heat_out_j = 0.0
        self.grid_j = self.books_rhs_j = 0.0
        self.stored0_j = twin.stored_heat_j()
        self.t0 = twin.time
        # record k is taken at the end of its interval: its grid signals, looked up for every record at once
        step = np.timedelta64(int(round(per_record * twin.plant_dt)), "s")
        self._due = twin.time + step * np.arange(1, n + 1)
        self._grid = GridNow.over(twin, self._due)

    @staticmethod
    def record_bytes(f, n: int) -> int:
        """Memory of the per-rack and per-CDU records of ``n`` records, and of the one-line diagram's per-element and
        per-rack records when the facility has its own ``[topology]`` [bytes]."""
        tiers = (len(meters.TIER_METERS) * 4 + 1) * f.topology.n + f.n_racks if f.topology.explicit else 0
        return n * ((len(RACK) * f.n_racks + len(CDU) * f.n_cdus) * 4 + tiers)

    def _allocate(self, f, n: int) -> None:
        self.rack = {k: np.zeros((n, f.n_racks), np.float32) for k in RACK}
        self.cdu = {k: np.zeros((n, f.n_cdus), np.float32) for k in CDU}
        if self.explicit:
            n_el = f.topology.n
            self.tier = {k: np.zeros((n, n_el), np.float32) for k in meters.TIER_METERS}
            self.tier_closed = np.zeros((n, n_el), np.int8)
            self.rack_powered = np.zeros((n, f.n_racks), np.int8)

    def accumulate(self, r: PlantStepResult) -> None:
        self.interval.add(r, self.twin.gpu_power_w)
        dt = self.twin.plant_dt
        self.heat_in_j += r.it_w * dt
        self.heat_out_j += r.q_rejected_w * dt
        self.grid_j += meters.grid_import_w(r) * dt
        self.books_rhs_j += (r.it_w + r.losses_w + r.cooling_w - r.bess_w) * dt

    def _record_campus(self, k: int) -> None:
        tw = self.twin
        self.time[k] = tw.time
        grid = self._grid[k] if tw.time == self._due[k] else None
        mean = self.interval.mean()
        for name, value in meters.read(Reading.of(mean, tw, grid), self.recorded).items():
            self.campus[name][k] = value
        return mean

    def record(self, k: int) -> None:
        tw = self.twin
        mean = self._record_campus(k)
        if self.explicit:
            for name, value in meters.tier_read(tw.f.topology, mean).items():
                self.tier[name][k] = value
            self.tier_closed[k] = tw.paths.closed
            self.rack_powered[k] = tw.paths.rack_on
        self.rack["gpu_power_w"][k] = self.interval.gpu_power_w()
        self.rack["gpu_cap_w"][k] = tw.cap
        self.rack["die_temp_c"][k] = tw.t_die
        self.cdu["tcs_supply_c"][k] = tw.tcs_supply_c
        self.cdu["tcs_return_c"][k] = tw.tcs_return_c
        self.cdu["cdu_at_capacity"][k] = tw.cdu_at_capacity
        self.interval.reset()

    def dataset(self) -> xr.Dataset:
        vars_ = {k: (("time",), v, meters.attrs(k)) for k, v in self.campus.items()}
        for table, dims, store in (
            (RACK, ("time", "rack"), self.rack),
            (CDU, ("time", "cdu"), self.cdu),
        ):
            for k, (units, long_name) in table.items():
                vars_[k] = (dims, store[k], {"units": units, "long_name": long_name})
        coords = self._coords()
        if self.explicit:
            for k, m in meters.TIER_METERS.items():
                vars_[k] = (("time", "element"), self.tier[k], {"units": m.units, "long_name": m.long_name})
            closed = {"units": "1", "long_name": "element closed (1) or open: tripped or opened (0)"}
            powered = {"units": "1", "long_name": "rack has power on some path (1) or is dark (0)"}
            vars_["tier_closed"] = (("time", "element"), self.tier_closed, closed)
            vars_["rack_powered"] = (("time", "rack"), self.rack_powered, powered)
            coords |= topology_coords(self.twin.f.topology)
        return self._with_events(xr.Dataset(vars_, coords=coords, attrs=self._attrs()))

    def _with_events(self, ds: xr.Dataset) -> xr.Dataset:
        """The one-line diagram's events as variables on an ``event`` dimension, and their counts as attributes."""
        if not self.explicit:
            return ds
        ev: list[PathEvent] = self.twin.paths.events
        ds = ds.assign_coords(
            event_time=("event", np.array([e.time for e in ev], "datetime64[s]")),
            event_kind=("event", np.array([e.kind for e in ev], dtype=str)),
            event_element=("event", np.array([e.element for e in ev], dtype=str)),
            event_detail=("event", np.array([e.detail for e in ev], dtype=str)),
        ).assign(
            event_racks=("event", np.array([e.racks for e in ev], np.int64), {"units": "1", "long_name": "racks"}),
            event_busy_gpus=(
                "event",
                np.array([e.busy_gpus for e in ev], float),
                {"units": "1", "long_name": "busy GPUs on the racks (jobs lost when they go dark)"},
            ),
        )
        kinds = [e.kind for e in ev]
        ds.attrs["tier_trips"] = kinds.count("trip")
        ds.attrs["tier_events"] = "; ".join(map(str, ev))
        ds.attrs["tier_over_limit"] = self._over_limit()
        return ds

    def _over_limit(self) -> str:
        """Elements whose recorded load exceeded their continuous limit: the worst few, with their peak loading and
        the time above it."""
        if not hasattr(self, "tier"):
            return ""
        topo = self.twin.f.topology
        over = self.tier["tier_headroom_kw"] < 0
        worst = np.flatnonzero(over.any(axis=0))
        if not worst.size:
            return ""
        peak = self.tier["tier_loading"].max(axis=0)
        worst = worst[np.argsort(-peak[worst])]
        rec_min = self.per_record * self.twin.plant_dt / 60.0
        parts = [f"{topo.names[e]} {peak[e]:.0%} of rating (limit {topo.derate[e]:.0%}) for "
                 f"{int(over[:, e].sum()) * rec_min:g} min" for e in worst[:5]]  # fmt: skip
        more = f" (+{worst.size - 5} more)" if worst.size > 5 else ""
        return "; ".join(parts) + more

    def _coords(self) -> dict:
        f = self.twin.f
        return {
            "time": ("time", self.time, {"long_name": "end of record interval (local time)"}),
            "rack": ("rack", np.arange(f.n_racks)),
            "cdu": ("cdu", np.arange(f.n_cdus)),
            "rack_cdu": ("rack", f.rack_cdu),
            "rack_hall": ("rack", f.rack_hall),
            "rack_row": ("rack", f.rack_row),
            "rack_slot": ("rack", f.rack_slot),
            "rack_class": ("rack", f.rack_class),
            "cdu_hall": ("cdu", f.cdu_hall),
        }

    def _attrs(self) -> dict:
        tw, f = self.twin, self.twin.f
        stored1 = tw.stored_heat_j()
        heat_res = (self.heat_in_j - self.heat_out_j - (stored1 - self.stored0_j)) / self.heat_in_j
        elec_res = (self.grid_j - self.books_rhs_j) / self.grid_j
        return {
            "facility": f.spec.name,
            "scenario": tw.scenario.name,
            "start": str(self.t0),
            "step_s": tw.dt,
            "plant_step_s": tw.plant_dt,
            "record_s": tw.plant_dt * self.per_record,
            "class_names": list(f.class_names),
            "hall_names": list(f.hall_names),
            "heat_in_mwh": self.heat_in_j / J_PER_MWH,
            "heat_rejected_mwh": self.heat_out_j / J_PER_MWH,
            "heat_stored_change_mwh": (stored1 - self.stored0_j) / J_PER_MWH,
            "heat_book_residual": heat_res,
            "electric_book_residual": elec_res,
            "grid_energy_mwh": self.grid_j / J_PER_MWH,
            "currency": tw.scenario.signals.currency,
            "Conventions": "CF-1.10",
        }


class CampusRecorder(Recorder):
    """Campus meters and :data:`REDUCED` at every record; the per-rack/CDU :data:`STATE` only at the records
    ``states_at`` (indices, negative from the end), on a ``state`` dimension with its ``state_time``.

    The reductions read the arrays a :class:`Recorder` would store (float32), so they equal its arrays
    reduced afterwards (``flexible_mw`` to rounding: summed per class, then weighted by the busy share)."""

    def __init__(self, twin, n: int, per_record: int, states_at: tuple[int, ...] = (-1,)):
        self.states_at = sorted({k % n for k in states_at})
        super().__init__(twin, n, per_record)

    @staticmethod
    def record_bytes(f, n: int) -> int:
        return n * (len(REDUCED) + len(f.class_names)) * 8

    def _allocate(self, f, n: int) -> None:
        self.reduced = {k: np.zeros(n) for k in REDUCED if k != "flexible_mw"}
        self._flex_by_class = np.zeros((n, len(f.class_names)))  # sum of gpus x (cap - min cap), busy or not
        sizes = {"die_temp_c": f.n_racks, "tcs_supply_c": f.n_cdus, "tcs_return_c": f.n_cdus}
        self.states = {v: np.zeros((len(self.states_at), sizes[v]), np.float32) for v in STATE}

    def record(self, k: int) -> None:
        tw, f = self.twin, self.twin.f
        self._record_campus(k)
        cap = tw.cap.astype(np.float32)
        shed = f.gpus * np.maximum(np.minimum(f.demand_w, cap) - f.min_cap_w, 0.0)
        self._flex_by_class[k] = np.bincount(f.rack_class, shed, minlength=len(f.class_names))
        self.reduced["die_temp_max_c"][k] = np.float32(tw.t_die.max())
        self.reduced["cdus_at_capacity"][k] = np.count_nonzero(tw.cdu_at_capacity)
        if k in self.states_at:
            i = self.states_at.index(k)
            self.states["die_temp_c"][i] = tw.t_die
            self.states["tcs_supply_c"][i] = tw.tcs_supply_c
            self.states["tcs_return_c"][i] = tw.tcs_return_c
        self.interval.reset()

    def dataset(self) -> xr.Dataset:
        f = self.twin.f
        busy = np.stack([self.twin.scenario.utilization(c, self.time) for c in f.class_names], axis=1)
        reduced = self.reduced | {"flexible_mw": np.sum(busy * self._flex_by_class, axis=1) / MW}
        vars_ = {k: (("time",), v, meters.attrs(k)) for k, v in self.campus.items()}
        vars_ |= {k: (("time",), reduced[k], {"units": u, "long_name": n}) for k, (u, n) in REDUCED.items()}
        for k, dim in (("die_temp_c", "rack"), ("tcs_supply_c", "cdu"), ("tcs_return_c", "cdu")):
            units, long_name = (RACK | CDU)[k]
            vars_[k] = (("state", dim), self.states[k], {"units": units, "long_name": f"{long_name} (state records)"})
        coords = self._coords() | {"state_time": ("state", self.time[self.states_at])}
        return self._with_events(xr.Dataset(vars_, coords=coords, attrs=self._attrs()))


def topology_coords(topo) -> dict:
    """Coordinates describing the one-line diagram: per element its name, kind, path, redundancy group, rating,
    continuous limit and depth; its edges (``edge``: child and parent element) and the racks' parents
    (``rack_edge``)."""
    from factory_twin.twin.facility.topology_spec import KINDS

    none = ""
    return {
        "element": ("element", np.array(topo.names, dtype=str)),
        "element_kind": ("element", np.array([KINDS[k] for k in topo.kind], dtype=str)),
        "element_path": ("element", np.array([p or none for p in topo.path], dtype=str)),
        "element_redundancy": ("element", np.array([r or none for r in topo.redundancy], dtype=str)),
        "element_rating_kw": ("element", topo.rating_w / KW, {"units": "kW", "long_name": "rating as real power"}),
        "element_limit_kw": ("element", topo.continuous_limit_w / KW,
                             {"units": "kW", "long_name": "continuous limit (rating x continuous derate)"}),
        "element_depth": ("element", topo.depth),
        "edge_child": ("edge", topo.edge_child),
        "edge_parent": ("edge", topo.edge_parent),
        "rack_edge_rack": ("rack_edge", topo.rack_edge_rack),
        "rack_edge_parent": ("rack_edge", topo.rack_edge_parent),
    }  # fmt: skip
