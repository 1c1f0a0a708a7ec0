"""The twin: facility spec and assembly, scenarios, the simulation engine and controllers.

>>> from factory_twin import twin
>>> f = twin.load_facility("campus-100mw")
>>> s = twin.load_scenario(None, f)
>>> ds = twin.simulate(f, s, duration="1h")

The names below are imported on first use (PEP 562), so ``import factory_twin.twin`` stays light:
numpy, xarray, scipy and the engine load only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "Facility": "facility.assembly",
    "builtin_facilities": "facility.assembly",
    "load_facility": "facility.assembly",
    "Command": "simulation.controllers",
    "ControlPlan": "simulation.controllers",
    "Controller": "simulation.controllers",
    "FixedCap": "simulation.controllers",
    "TwinState": "simulation.controllers",
    "Uncapped": "simulation.controllers",
    "Twin": "simulation.engine",
    "simulate": "simulation.engine",
    "Scenario": "scenario.scenario",
    "load_scenario": "scenario.scenario",
    "SpecError": "facility.spec",
}
__all__ = [
    "Command",
    "ControlPlan",
    "Controller",
    "Facility",
    "FixedCap",
    "Scenario",
    "SpecError",
    "Twin",
    "TwinState",
    "Uncapped",
    "builtin_facilities",
    "load_facility",
    "load_scenario",
    "simulate",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


if TYPE_CHECKING:
    from factory_twin.twin.facility.assembly import Facility, builtin_facilities, load_facility
    from factory_twin.twin.facility.spec import SpecError
    from factory_twin.twin.scenario.scenario import Scenario, load_scenario
    from factory_twin.twin.simulation.controllers import (
        Command,
        Controller,
        ControlPlan,
        FixedCap,
        TwinState,
        Uncapped,
    )
    from factory_twin.twin.simulation.engine import Twin, simulate
