"""Recorders: interval means and samples of a running twin, assembled into a CF-style xarray Dataset.

:class:`Recorder` keeps every per-rack and per-CDU array at every record (a day, a week). A long run keeps
only what its output holds (:class:`CampusRecorder`): the campus meters, the campus reductions of the rack
and CDU arrays (:data:`REDUCED`) and the full per-rack/per-CDU state at a few records (for the seams of a
segmented run); the same values as the arrays of a :class:`Recorder` would give.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from factory_twin.models.units import J_PER_MWH, MW
from factory_twin.twin.simulation import meters
from factory_twin.twin.simulation.meters import GridNow, IntervalMean, PlantStepResult, Reading

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
        self.time = np.empty(n, "datetime64[s]")
        self.campus = {k: np.zeros(n) for k in meters.RECORDED}
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
        """Memory of the per-rack and per-CDU records of ``n`` records [bytes]."""
        return n * (len(RACK) * f.n_racks + len(CDU) * f.n_cdus) * 4

    def _allocate(self, f, n: int) -> None:
        self.rack = {k: np.zeros((n, f.n_racks), np.float32) for k in RACK}
        self.cdu = {k: np.zeros((n, f.n_cdus), np.float32) for k in CDU}

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
        for name, value in meters.read(Reading.of(self.interval.mean(), tw, grid), meters.RECORDED).items():
            self.campus[name][k] = value

    def record(self, k: int) -> None:
        tw = self.twin
        self._record_campus(k)
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
        return xr.Dataset(vars_, coords=self._coords(), attrs=self._attrs())

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
        return xr.Dataset(vars_, coords=coords, attrs=self._attrs())
