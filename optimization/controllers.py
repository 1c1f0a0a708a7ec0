"""The one controller factory: a controller named on the command line or the dashboard -> an object.

Lives in ``optimization`` because it is the lowest layer that knows every controller (the MPC among them).
"""

from __future__ import annotations


def make_controller(name: str, facility, scenario, option: str = "controller"):
    """``uncapped`` | ``fixed:FRACTION`` | ``mpc`` -> a controller; ``ValueError`` naming ``option``
    (the CLI passes ``--controller``) otherwise."""
    from factory_twin.twin.simulation.controllers import FixedCap, Uncapped

    if name == "uncapped":
        return Uncapped(facility.tdp_w)
    if name.startswith("fixed:"):
        text = name.split(":", 1)[1]
        try:
            fraction = float(text)
        except ValueError:
            raise ValueError(f"{option}: fixed:FRACTION needs a number in (0, 1], got {text!r}") from None
        if not 0 < fraction <= 1:
            raise ValueError(f"{option}: fixed:FRACTION needs a fraction of TDP in (0, 1], got {text}")
        return FixedCap(facility.tdp_w, facility.min_cap_w, fraction)
    if name == "mpc":
        from factory_twin.optimization.mpc import MPCController

        return MPCController(facility, scenario)
    raise ValueError(f"{option}: expected uncapped, fixed:FRACTION or mpc, got {name!r}")


__all__ = ["make_controller"]
