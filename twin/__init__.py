"""The twin: facility spec and assembly, scenarios, the simulation engine and controllers.

>>> from factory_twin import twin
>>> f = twin.load_facility("campus-100mw")
>>> s = twin.load_scenario(None, f)
>>> ds = twin.simulate(f, s, duration="1h")
"""

from factory_twin.twin.assembly import Facility, builtin_facilities, load_facility
from factory_twin.twin.controllers import Command, Controller, FixedCap, TwinState, Uncapped
from factory_twin.twin.engine import Twin, simulate
from factory_twin.twin.scenario import Scenario, load_scenario
from factory_twin.twin.spec import SpecError

__all__ = [
    "Command",
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
