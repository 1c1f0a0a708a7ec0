"""Recorder: interval means and samples of a running twin, assembled into a CF-style xarray Dataset."""

from __future__ import annotations

import numpy as np
import xarray as xr
from factory_twin.models.units import J_PER_MWH
from factory_twin.twin import meters
from factory_twin.twin.meters import IntervalMean, PlantStepResult, Reading

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


class Recorder:
    """Collects ``n`` records, each the mean over ``per_record`` plant steps."""

    def __init__(self, twin, n: int, per_record: int):
        f = twin.f
        self.twin, self.n, self.per_record = twin, n, per_record
        self.time = np.empty(n, "datetime64[s]")
        self.campus = {k: np.zeros(n) for k in meters.RECORDED}
        self.rack = {k: np.zeros((n, f.n_racks), np.float32) for k in RACK}
        self.cdu = {k: np.zeros((n, f.n_cdus), np.float32) for k in CDU}
        self.interval = IntervalMean(f.n_racks)
        self.heat_in_j = self.heat_out_j = 0.0
        self.grid_j = self.books_rhs_j = 0.0
        self.stored0_j = twin.stored_heat_j()
        self.t0 = twin.time

    def accumulate(self, r: PlantStepResult) -> None:
        self.interval.add(r, self.twin.gpu_power_w)
        dt = self.twin.plant_dt
        self.heat_in_j += r.it_w * dt
        self.heat_out_j += r.q_rejected_w * dt
        self.grid_j += meters.grid_import_w(r) * dt
        self.books_rhs_j += (r.it_w + r.losses_w + r.cooling_w - r.bess_w) * dt

    def record(self, k: int) -> None:
        tw = self.twin
        self.time[k] = tw.time
        for name, value in meters.read(Reading.of(self.interval.mean(), tw), meters.RECORDED).items():
            self.campus[name][k] = value
        self.rack["gpu_power_w"][k] = self.interval.gpu_power_w()
        self.rack["gpu_cap_w"][k] = tw.cap
        self.rack["die_temp_c"][k] = tw.t_die
        self.cdu["tcs_supply_c"][k] = tw.tcs_supply_c
        self.cdu["tcs_return_c"][k] = tw.tcs_return_c
        self.cdu["cdu_at_capacity"][k] = tw.cdu_at_capacity
        self.interval.reset()

    def dataset(self) -> xr.Dataset:
        tw, f = self.twin, self.twin.f
        vars_ = {k: (("time",), v, meters.attrs(k)) for k, v in self.campus.items()}
        for table, dims, store in (
            (RACK, ("time", "rack"), self.rack),
            (CDU, ("time", "cdu"), self.cdu),
        ):
            for k, (units, long_name) in table.items():
                vars_[k] = (dims, store[k], {"units": units, "long_name": long_name})
        stored1 = tw.stored_heat_j()
        heat_res = (self.heat_in_j - self.heat_out_j - (stored1 - self.stored0_j)) / self.heat_in_j
        elec_res = (self.grid_j - self.books_rhs_j) / self.grid_j
        coords = {
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
        attrs = {
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
        return xr.Dataset(vars_, coords=coords, attrs=attrs)
