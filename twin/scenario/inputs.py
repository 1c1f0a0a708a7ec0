"""The Python API's inputs: a facility or scenario object, or its built-in name or TOML path."""

from __future__ import annotations

from pathlib import Path


def facility_and_scenario(facility, scenario=None):
    """``(Facility, Scenario)`` from objects, names or paths (``scenario=None``: the defaults).

    Raises ``TypeError`` naming the argument and what it accepts for anything else, ``ValueError`` for a
    scenario built for a facility with another contracted import limit.
    """
    from factory_twin.twin.facility.assembly import Facility, load_facility
    from factory_twin.twin.scenario.scenario import Scenario, load_scenario

    if isinstance(facility, str | Path):
        facility = load_facility(facility)
    elif not isinstance(facility, Facility):
        raise TypeError(
            "facility: expected a Facility (twin.load_facility), a built-in name such as 'campus-100mw' "
            f"or a TOML path, got {type(facility).__name__}"
        )
    if scenario is None or isinstance(scenario, str | Path):
        scenario = load_scenario(scenario, facility)
    elif not isinstance(scenario, Scenario):
        raise TypeError(
            "scenario: expected a Scenario (twin.load_scenario), a built-in name such as 'hot-day-dr', "
            f"a TOML path or None, got {type(scenario).__name__}"
        )
    scenario.check_facility(facility)
    return facility, scenario


__all__ = ["facility_and_scenario"]
