"""Recorder: interval means and samples of a running twin, assembled into a CF-style xarray Dataset."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import xarray as xr
from factory_twin.models.units import J_PER_MWH, MJ, MW


@dataclass
class PlantStepResult:
    """Interval means over one plant step [W unless stated]."""

    gpu_w: float
    rack_dc_w: float
    it_w: float
    losses_w: float
    cooling_w: float
    grid_w: float
    bess_w: float
    q_liquid_w: float
    q_air_w: float
    q_rejected_w: float
    throughput: float
    tokens_per_s: float
    tokens_uncapped_per_s: float
    throttled_gpus: float


# name: (units, long_name) for the campus time series, from PlantStepResult means
SERIES = {
    "grid_import_mw": ("MW", "power imported at the point of interconnection (after BESS)"),
    "it_power_mw": ("MW", "IT power at the rack inputs (PSU inputs)"),
    "losses_mw": ("MW", "transformer + UPS + busway losses"),
    "cooling_power_mw": ("MW", "pumps, heat-rejection fans, chiller and air cooling"),
    "bess_power_mw": ("MW", "BESS power into the site (> 0 discharging)"),
    "heat_rejected_mw": ("MW", "heat rejected by the plant and the air system"),
    "liquid_heat_mw": ("MW", "heat delivered to the technology cooling loops"),
    "air_heat_mw": ("MW", "heat removed by the air system"),
    "pue": ("1", "power usage effectiveness (grid before BESS / IT)"),
    "throughput": ("1", "token throughput relative to uncapped at the same demand"),
    "tokens_per_s": ("s-1", "tokens produced per second"),
    "throttled_gpus": ("1", "GPUs held by the thermal throttle (interval mean)"),
}
SAMPLES = {
    "fws_supply_c": ("degC", "facility water supply temperature"),
    "fws_return_c": ("degC", "facility water return temperature at the plant"),
    "dry_bulb_c": ("degC", "ambient dry bulb"),
    "wet_bulb_c": ("degC", "ambient wet bulb"),
    "bess_soc_mwh": ("MWh", "BESS stored energy"),
    "import_limit_mw": ("MW", "import limit at the point of interconnection"),
    "price_per_mwh": ("currency MWh-1", "energy price"),
    "carbon_kg_per_mwh": ("kg MWh-1", "grid carbon intensity"),
    "dr_depth": ("1", "demand-response reduction required (fraction of baseline)"),
    "fan_power_mw": ("MW", "dry and evaporative cooler fan power"),
    "chiller_power_mw": ("MW", "chiller trim power"),
    "water_use_kg_s": ("kg s-1", "evaporative make-up water"),
    "stored_heat_mj": ("MJ", "heat held in racks, pipes and loops (0 degC reference)"),
}
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
        self.series = {k: np.zeros(n) for k in SERIES}
        self.samples = {k: np.zeros(n) for k in SAMPLES}
        self.rack = {k: np.zeros((n, f.n_racks), np.float32) for k in RACK}
        self.cdu = {k: np.zeros((n, f.n_cdus), np.float32) for k in CDU}
        self._acc = dict.fromkeys((fl.name for fl in fields(PlantStepResult)), 0.0)
        self._gpu = np.zeros(f.n_racks)
        self._count = 0
        self.heat_in_j = self.heat_out_j = 0.0
        self.grid_j = self.books_rhs_j = 0.0
        self.stored0_j = twin.stored_heat_j()
        self.t0 = twin.time

    def accumulate(self, r) -> None:
        for k in self._acc:
            self._acc[k] += getattr(r, k)
        self._gpu += self.twin.gpu_power_w
        self._count += 1
        dt = self.twin.plant_dt
        self.heat_in_j += r.it_w * dt
        self.heat_out_j += r.q_rejected_w * dt
        self.grid_j += (r.grid_w - r.bess_w) * dt
        self.books_rhs_j += (r.it_w + r.losses_w + r.cooling_w - r.bess_w) * dt

    def record(self, k: int) -> None:
        tw, m = self.twin, {key: v / self._count for key, v in self._acc.items()}
        self.time[k] = tw.time
        s = self.series
        s["grid_import_mw"][k] = (m["grid_w"] - m["bess_w"]) / MW
        s["it_power_mw"][k] = m["it_w"] / MW
        s["losses_mw"][k] = m["losses_w"] / MW
        s["cooling_power_mw"][k] = m["cooling_w"] / MW
        s["bess_power_mw"][k] = m["bess_w"] / MW
        s["heat_rejected_mw"][k] = m["q_rejected_w"] / MW
        s["liquid_heat_mw"][k] = m["q_liquid_w"] / MW
        s["air_heat_mw"][k] = m["q_air_w"] / MW
        s["pue"][k] = m["grid_w"] / m["it_w"]
        s["tokens_per_s"][k] = m["tokens_per_s"]
        s["throughput"][k] = m["tokens_per_s"] / m["tokens_uncapped_per_s"] if m["tokens_uncapped_per_s"] else 1.0
        s["throttled_gpus"][k] = m["throttled_gpus"]
        t = np.array([tw.time])
        sc, rej = tw.scenario, tw.rejection
        p = self.samples
        p["fws_supply_c"][k], p["fws_return_c"][k] = tw.fws_supply_c, tw.fws_return_c
        p["dry_bulb_c"][k], p["wet_bulb_c"][k] = tw.ambient
        p["bess_soc_mwh"][k] = tw.bess_energy_j / J_PER_MWH
        p["import_limit_mw"][k] = sc.import_limit(t, tw.f.spec.grid.import_limit_mw)[0]
        p["price_per_mwh"][k] = sc.signals.at(t, "price_per_mwh")[0]
        p["carbon_kg_per_mwh"][k] = sc.signals.at(t, "carbon_kg_per_mwh")[0]
        p["dr_depth"][k] = sc.dr_depth(t)[0]
        p["fan_power_mw"][k] = rej.fan_w / MW
        p["chiller_power_mw"][k] = rej.chiller_w / MW
        p["water_use_kg_s"][k] = rej.water_kg_s
        p["stored_heat_mj"][k] = tw.stored_heat_j() / MJ
        self.rack["gpu_power_w"][k] = self._gpu / self._count
        self.rack["gpu_cap_w"][k] = tw.cap
        self.rack["die_temp_c"][k] = tw.t_die
        self.cdu["tcs_supply_c"][k] = tw.tcs_supply_c
        self.cdu["tcs_return_c"][k] = tw.tcs_return_c
        self.cdu["cdu_at_capacity"][k] = tw.cdu_at_capacity
        self._acc = dict.fromkeys(self._acc, 0.0)
        self._gpu[:] = 0.0
        self._count = 0

    def dataset(self) -> xr.Dataset:
        tw, f = self.twin, self.twin.f
        vars_ = {}
        for table, dims, store in (
            (SERIES, ("time",), self.series),
            (SAMPLES, ("time",), self.samples),
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
