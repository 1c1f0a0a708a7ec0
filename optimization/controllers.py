"""Every controller, registered in one table; ``make_controller`` builds the ones a person can name.

The hand-off types and the protocol live in :mod:`twin.simulation.controllers` (``Controller``: ``period_s``,
the call, ``plan``, ``replans``; ``Command``; ``ControlPlan``; ``TwinState``), re-exported here: the engine
and the live runner read them and must not import the optimizer. This module holds every controller's
registration (:data:`CONTROLLERS`).

Why a single table here, not a registry in the twin that the optimizer fills on import: ``optimization`` is
the lowest layer that can import every controller (the twin's own and the planning ones), so one plain
table lists them all, with no import side effects. A registry in the twin would know ``mpc`` only after
something had imported the optimizer; whether ``--controller mpc`` worked would then depend on import
order. The layers stay one way (models < twin < optimization < links < dashboard < CLI): the CLI and the
dashboard call :func:`make_controller`, links build the MPC with their own settings through it or directly.

Nameable (CLI ``--controller``, the dashboard): ``uncapped``, ``fixed:FRACTION``, ``mpc``, ``mpc-n1``. Built in
code only: ``uniform`` (needs a grid target on the GPU meter, set by a grid link: the DSX Flex replay's uniform policy),
``plan`` (needs a finished plan: :class:`optimization.plan_follower.PlanFollower`), and the Redfish link's
``bmc-limits`` (the twin driven by the emulated BMCs' limits, built by :mod:`links.redfish.emulator`, which
this layer cannot import). The DSX Flex agent and the OpenADR VEN run ``mpc`` with their own options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from factory_twin.twin.simulation.controllers import (
    Command,
    Controller,
    ControlPlan,
    FixedCap,
    TwinState,
    Uncapped,
)


@dataclass(frozen=True)
class Registration:
    """One controller: its ``name`` (``usage`` as typed, e.g. ``fixed:FRACTION``), what it does, the class that
    implements it, whether a person can name it, and for those ``build(facility, scenario, argument, option,
    **settings)`` (None for controllers built in code from what they need: a plan, a grid target, BMC limits).
    """

    name: str
    usage: str
    summary: str
    defined_in: str
    nameable: bool
    build: Callable[..., Controller] | None


def _uncapped(facility, scenario, arg: str, option: str) -> Controller:
    return Uncapped(facility.tdp_w)


def _fixed(facility, scenario, arg: str, option: str) -> Controller:
    try:
        fraction = float(arg)
    except ValueError:
        raise ValueError(f"{option}: fixed:FRACTION needs a number in (0, 1], got {arg!r}") from None
    if not 0 < fraction <= 1:
        raise ValueError(f"{option}: fixed:FRACTION needs a fraction of TDP in (0, 1], got {arg}")
    return FixedCap(facility.tdp_w, facility.min_cap_w, fraction)


def _mpc(facility, scenario, arg: str, option: str, **settings: Any) -> Controller:
    from factory_twin.optimization.mpc import MPCController

    return MPCController(facility, scenario, **settings)


def _mpc_n1(facility, scenario, arg: str, option: str, **settings: Any) -> Controller:
    from factory_twin.optimization.options import MPC_OPTIONS

    options = settings.pop("options", MPC_OPTIONS).updated(n_minus_1=True)
    return _mpc(facility, scenario, arg, option, options=options, **settings)


CONTROLLERS: dict[str, Registration] = {
    r.name: r
    for r in (
        Registration("uncapped", "uncapped", "every GPU at its TDP (no control)",
                     "twin.simulation.controllers.Uncapped", True, _uncapped),
        Registration("fixed", "fixed:FRACTION", "one cap for every GPU, FRACTION of TDP (at least the minimum cap)",
                     "twin.simulation.controllers.FixedCap", True, _fixed),
        Registration("mpc", "mpc", "re-plans caps and BESS with the dispatch LP every 5 min (DR events, limits)",
                     "optimization.mpc.MPCController", True, _mpc),
        Registration("mpc-n1", "mpc-n1", "mpc that also keeps every element of the one-line diagram within its "
                     "limit after the loss of any one path (N-1 rows)", "optimization.mpc.MPCController", True,
                     _mpc_n1),
        Registration("uniform", "uniform", "one cap for every GPU meeting the grid target on the GPU meter",
                     "twin.simulation.controllers.UniformCapToTarget", False, None),
        Registration("plan", "plan", "follows a finished dispatch plan (dispatch_plan) open loop",
                     "optimization.plan_follower.PlanFollower", False, None),
        Registration("bmc-limits", "bmc-limits", "the caps the emulated BMCs' Redfish power limits amount to",
                     "links.redfish.emulator.BmcLimits", False, None),
    )
}  # fmt: skip
NAMEABLE = tuple(r.usage for r in CONTROLLERS.values() if r.nameable)


def make_controller(name: str, facility, scenario, option: str = "controller", **settings: Any) -> Controller:
    """The controller a person named (one of :data:`NAMEABLE`: ``uncapped``, ``fixed:FRACTION``, ``mpc``);
    ``settings`` go to its constructor (``options=``, ``replan_every=`` for ``mpc``). ``ValueError`` naming
    ``option`` (the CLI passes ``--controller``) and the names it accepts, for any other name."""
    head, sep, arg = name.partition(":")
    reg = CONTROLLERS.get(head)
    if reg is None or reg.build is None or bool(sep) != (":" in reg.usage):
        expected = ", ".join(NAMEABLE[:-1]) + f" or {NAMEABLE[-1]}"
        raise ValueError(f"{option}: expected {expected}, got {name!r}")
    return reg.build(facility, scenario, arg, option, **settings)


__all__ = [
    "CONTROLLERS",
    "NAMEABLE",
    "Command",
    "ControlPlan",
    "Controller",
    "Registration",
    "TwinState",
    "make_controller",
]
