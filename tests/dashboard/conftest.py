"""A deterministic stand-in for twin.simulation.engine.Twin, and snapshots made from it by the real runner."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from factory_twin.twin.scenario.grid_signals import GridSignals
from factory_twin.twin.scenario.scenario import Scenario
from factory_twin.twin.simulation.meters import PlantStepResult
from factory_twin.twin.simulation.plant import Plant

START = np.datetime64("2026-08-07T00:00:00", "s")
N_RACKS, N_CDUS = 12, 3


def stub_facility() -> SimpleNamespace:
    spec = SimpleNamespace(
        name="stub-campus",
        grid=SimpleNamespace(import_limit_mw=10.0),
        cooling=SimpleNamespace(
            plant=SimpleNamespace(
                dry_cooler=SimpleNamespace(capacity_mw=9.0, design_approach_k=4.0),
                evaporative=None,
                chiller=SimpleNamespace(capacity_mw=1.5),
            ),
            facility_water=SimpleNamespace(supply_setpoint_c=30.0),
            tcs=SimpleNamespace(supply_setpoint_c=35.0),
        ),
    )
    rack_cdu = np.repeat(np.arange(N_CDUS), N_RACKS // N_CDUS)
    return SimpleNamespace(
        spec=spec,
        class_names=("training", "inference"),
        hall_names=("hall-a", "hall-b"),
        rack_hall=np.array([0] * 8 + [1] * 4),
        rack_row=np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]),
        rack_slot=np.tile(np.arange(4), 3),
        rack_cdu=rack_cdu,
        rack_class=np.array([0] * 8 + [1] * 4),
        gpus=np.full(N_RACKS, 72.0),
        tdp_w=np.full(N_RACKS, 1200.0),
        t_max_c=np.full(N_RACKS, 87.0),
        rack_m_dot_kg_s=np.full(N_RACKS, 2.0),
        tcs_v_dot_m3_s=np.full(N_CDUS, 0.008),  # 24 L/s of TCS fluid in all = 1,440 L/min
        cdu_hall=np.array([0, 0, 1]),
        cdu_design_q_w=np.full(N_CDUS, 1.4e6),
        n_racks=N_RACKS,
        n_cdus=N_CDUS,
    )


def stub_scenario() -> Scenario:
    t = START - np.timedelta64(1, "D") + np.arange(72) * np.timedelta64(3600, "s")
    price = 100.0 + np.arange(72) % 24  # [KRW/MWh], hour of day + 100
    signals = GridSignals(t, price.astype(float), np.full(72, 400.0), None, "KRW")
    return Scenario("stub", START, None, signals, {}, contract_import_limit_mw=10.0)


class StubTwin:
    """Attributes the runner reads; ``advance`` returns fixed interval means that depend on the step
    count k (grid = IT + losses + cooling holds exactly)."""

    plant_dt = 10.0

    def __init__(self):
        self.f = stub_facility()
        self.scenario = stub_scenario()
        self.controller = SimpleNamespace(period_s=300.0, plan=None, replans=True)  # a planning one, no plan yet
        self.time = START
        self.k = 0
        n = N_RACKS
        self.t_die = np.linspace(60.0, 71.0, n)
        self.gpu_power_w = np.full(n, 1000.0)
        self.gpu_demand_w = np.full(n, 1100.0)
        self.gpu_energy_j = np.zeros(n)
        self.cap = np.full(n, 1200.0)
        self.throttled = np.zeros(n, bool)
        self.tcs_supply_c = np.full(N_CDUS, 35.0)
        self.tcs_return_c = np.full(N_CDUS, 43.0)
        self.cdu_at_capacity = np.zeros(N_CDUS, bool)
        self.c_tcs = np.full(N_CDUS, 1e5)
        self.fws_supply_c, self.fws_return_c = 30.0, 38.0
        self.fws_v_dot = 0.25
        self.c_fws_total, self.fws_setpoint_c = 1e6, 30.0  # [W/K]: the plant's 8 MW at a 38 -> 30 degC drop
        self.ambient = (25.0, 20.0)
        self.rejection = SimpleNamespace(t_supply_c=30.0, q_w=8e6, fan_w=1e5, chiller_w=2e4, water_kg_s=0.0, mode=1)
        self.bess_energy_j = 3.6e9
        self.plant = Plant(self.f, (), (), None, 0.0, 3e4)  # the real capacity model over the stub's plant

    def stored_heat_j(self) -> float:
        return 5e9

    @property
    def cdu_q_w(self) -> np.ndarray:
        return self.c_tcs * (self.tcs_return_c - self.tcs_supply_c)

    def request_control(self) -> None:
        self.control_requested_at = self.time

    def dr_baseline_mw(self, times: np.ndarray) -> np.ndarray:
        """The stub's DR baseline: 9 MW plus 1 kW per simulated minute since the start (a known counterfactual)."""
        return 9.0 + 1e-3 * (np.asarray(times, "datetime64[s]") - START).astype(float) / 60.0

    def advance(self) -> PlantStepResult:
        self.k += 1
        self.gpu_power_w = np.full(N_RACKS, 1000.0 + self.k)
        self.gpu_energy_j = self.gpu_energy_j + self.gpu_power_w * self.plant_dt
        self.time = self.time + np.timedelta64(10, "s")
        it, loss, cool = 8e6 + 1e3 * self.k, 2e5, 5e5
        return PlantStepResult(
            gpu_w=6e6,
            rack_dc_w=7.6e6,
            it_w=it,
            losses_w=loss,
            cooling_w=cool,
            grid_w=it + loss + cool,
            bess_w=0.0,
            q_liquid_w=7e6,
            q_air_w=1e6,
            q_rejected_w=9e6,  # the plant's 8 MW (rejection.q_w) + 1 MW of air heat, as the engine books it
            tokens_per_s=9e6,
            tokens_uncapped_per_s=1e7,
            throttled_gpus=0.0,
        )


@pytest.fixture
def stub_twin() -> StubTwin:
    return StubTwin()


@pytest.fixture
def snapshot(tmp_path):
    """A snapshot published by the real runner after 20 simulated minutes of the stub twin."""
    from factory_twin.twin.live.runner import LiveRunner

    runner = LiveRunner(StubTwin(), tmp_path, speed=60.0, controller_name="uncapped", rack_history=5)
    for _ in range(120):
        runner.step()
    return runner.snapshot()
