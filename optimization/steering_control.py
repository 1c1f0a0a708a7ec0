"""Steering controllers for :class:`twin.simulation.power_loop.PowerLoop` (and, per GPU, the Redfish link): the
MaxLPS allocator every step, and the baselines it is measured against.

Budgets. Every element of the one-line diagram has a budget at its input [W] (:class:`ScenarioBudgets`: its
continuous limit, rating x derate), and the site two more: the import in force at the meter (contract, grid
targets; :class:`MpcBudgets`: the targets the MPC plans against, refreshed every re-plan: "the MPC sets the budgets
for the horizon, steering distributes within them each second") and the heat the cooling plant can reject at the
ambient. Steering turns each into a budget on the GPU power through it by feedback on the measured step, with the
element's marginal input per GPU watt ``beta_e`` (PSUs, the losses of the chain and, for the site, the cooling;
a secant of the steady site model between 90 % and 100 % of TDP)::

    G_e = g_e + ((1 - reserve) B_e - L_e) / beta_e        (g_e: GPU power through e, L_e: its input, measured)

so a budget lowered by the MPC, a path lost (the survivor's shares double) or load above budget (an excursion)
brings the limits below it at the next step. With room left (``L_e < (1 - reserve) B_e``) the budget is instead the
larger of that and the limits already through ``e`` plus the room, ``l_e + ((1 - reserve) B_e - L_e) / beta_e``
(integral action), at most ``reserve B_e / beta_e`` above the first form: GPUs drawing below their limits leave
``l_e > g_e``, and a budget on the limits alone holds the tier's load below its budget for good (measured on
campus-1gw at a site limit 3 % under the peak: 29 MW of the import unused, bench/bench_steering.py day), while the
bound keeps a synchronous jump of every GPU to its limit at or under ``B_e`` itself (a training surge: the limits act
one step after the telemetry). ``reserve`` (``data/power_policies.toml``) absorbs what moves within a
step outside the limits. The site's cooling budget is the plant's remaining room plus the GPU heat now.

Modes: ``steer`` (MaxLPS: :func:`optimization.steering.allocate` every step), ``greedy`` (greedy proportional every
step), ``equal`` (static equal share of the design-point budgets, the site's under the import in force at the first
step), ``static`` (MaxP / MaxQ: every GPU at its
group's maximum, which MaxQ sets to the efficiency cap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from factory_twin.models.units import MW
from factory_twin.optimization.steering import Allocation, allocate, equal_share, greedy_proportional, make_cells
from factory_twin.optimization.steering_tree import rack_shares, tree_from_shares
from factory_twin.twin.facility.resource_groups import (
    ResourceGroups,
    gpu_bounds,
    policy_presets,
    resource_groups,
    units_per_rack,
)
from factory_twin.twin.scenario.weather import climate_normals
from factory_twin.twin.simulation.controllers import TwinState
from factory_twin.twin.simulation.design import cooling_power_w, rack_totals
from numpy.typing import NDArray

Array = NDArray[np.float64]
MODES = ("steer", "greedy", "equal", "static")
SITE = ("site import", "site cooling")


class ScenarioBudgets:
    """Element budgets = continuous limits; the site import = the scenario's import limit in force (grid targets
    included)."""

    def __init__(self, f):
        self.limit_w = f.topology.continuous_limit_w.copy()

    def __call__(self, time: np.datetime64, scenario, m=None) -> tuple[Array, float]:
        return self.limit_w, float(scenario.import_limit(np.array([time]))[0]) * MW


class MpcBudgets(ScenarioBudgets):
    """The site import budget from the MPC's plan (the tighter of the import limit and the DR target it planned
    against, plus the BESS discharge it planned), re-planned every ``mpc.period_s``; element budgets as
    :class:`ScenarioBudgets`."""

    def __init__(self, f, mpc):
        super().__init__(f)
        self.f, self.mpc = f, mpc
        self.next_at: np.datetime64 | None = None
        self.site_w = np.inf
        self.replans = 0

    def __call__(self, time: np.datetime64, scenario, m=None) -> tuple[Array, float]:
        if self.next_at is None or time >= self.next_at:
            f = self.f
            nan_r, nan_c = np.full(f.n_racks, np.nan), np.full(f.n_cdus, np.nan)
            gpu = m.rack_gpu_w / f.gpus if m is not None else f.tdp_w
            state = TwinState(time, gpu, f.tdp_w.copy(), nan_r, nan_c, np.nan, np.nan, np.nan, np.nan, np.nan, scenario)
            self.mpc(state, time)
            plan = self.mpc.plan
            self.replans += 1
            target = np.nanmin([plan.import_limit_w[0], plan.dr_target_w[0]])
            bess = plan.bess_power_w[0] if np.isfinite(plan.bess_power_w[0]) else 0.0
            self.site_w = float(target + max(bess, 0.0)) if np.isfinite(target) else np.inf
            self.next_at = time + np.timedelta64(int(round(self.mpc.period_s)), "s")
        return self.limit_w, self.site_w


@dataclass
class Marginals:
    """Design-point linearization: per element (and the site import) the GPU power through it and its input at all
    GPUs at TDP, and ``beta`` the marginal input per GPU watt (secant 90 %-100 % of TDP)."""

    gpu_w: Array
    in_w: Array
    beta: Array
    site_gpu_w: float
    site_grid_w: float
    site_beta: float


def marginals(f, shares: sp.csr_matrix) -> Marginals:
    """:class:`Marginals` at the site's design ambient (ASHRAE 0.4 %, as
    :func:`twin.simulation.design.design_point`)."""
    normals = climate_normals().get(f.spec.site.climate, {})
    db, wb = normals.get("design_dry_bulb_c", 35.0), normals.get("design_wet_bulb_c", 27.0)
    routing = f.topology.routing()
    out = []
    for x in (1.0, 0.9):
        rt = rack_totals(f, x * f.tdp_w)
        cool = float(cooling_power_w(f, rt.q_liquid_w, rt.q_air_w, db, wb))
        flow = f.topology.flow(routing, rt.rack_in_w, cool)
        gpu_rack = x * f.tdp_w * f.gpus
        out.append((shares @ gpu_rack, flow.in_w, float(gpu_rack.sum()), float(flow.grid_w)))
    (g1, l1, s1, gr1), (g0, l0, s0, gr0) = out
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(g1 - g0 > 0, (l1 - l0) / (g1 - g0), np.nan)
    return Marginals(g1, l1, beta, s1, gr1, (gr1 - gr0) / (s1 - s0))


class SteeringController:
    """Per-GPU limits every step for facility ``f`` (module docstring). ``groups`` default to the facility's
    resource groups; ``budgets`` to :class:`ScenarioBudgets`; ``dtype`` of the per-GPU arithmetic;
    ``gpus_per_unit``: GPUs steered as one (:func:`twin.facility.resource_groups.units_per_rack`; 1: per GPU), whose
    limits and demands are then one entry per unit [W per GPU]."""

    def __init__(self, f, groups: ResourceGroups | None = None, mode: str = "steer", budgets=None, dtype=np.float32,
                 gpus_per_unit: int = 1):  # fmt: skip
        if mode not in MODES:
            raise ValueError(f"mode: one of {', '.join(MODES)}, got {mode!r}")
        self.f, self.mode, self.dtype = f, mode, dtype
        self.gpus_per_unit = int(gpus_per_unit)
        self.units = units_per_rack(f, gpus_per_unit)
        self.groups = groups or resource_groups(f)
        self.budgets = budgets or ScenarioBudgets(f)
        st = policy_presets()["steering"]
        self.reserve = float(st["budget_reserve_fraction"])
        self.decay_w = np.repeat(st["peak_hold_decay_fraction_per_s"] * f.tdp_w, self.units).astype(dtype)
        self.held: NDArray | None = None
        self.n_el = f.topology.n
        self.budget_w = f.topology.continuous_limit_w.copy()
        self.last: Allocation | None = None
        self.binding_steps = 0  # steps at which a budget held some GPU below its maximum (mode steer)
        self.rack_limit_w: Array | None = None  # the limits set at the last step, summed per rack [W]
        self.gpu_budget_w: Array | None = None  # the budgets on GPU power the last step used [W] (gpu_budgets)
        self._routing = None
        self._set_routing(f.topology.routing())
        self.design = marginals(f, self.shares)
        self._beta = np.append(self.design.beta, self.design.site_beta)  # elements, then the site import
        self._set_groups(self.groups)
        self._static: NDArray | None = None

    # ------------------------------------------------------------------ structure
    def _set_routing(self, routing) -> None:
        f = self.f
        s = rack_shares(f.topology, routing)
        ones = sp.csr_matrix(np.ones((2, f.n_racks)))
        self.shares = s
        names = (*f.topology.names, *SITE)
        live = np.concatenate([routing.energized, [True, True]])
        self.tree = tree_from_shares(names, sp.vstack([s, ones]).tocsr(), self.units, live)
        self._routing = routing
        if hasattr(self, "bounds"):
            self._make_cells()

    def _set_groups(self, groups: ResourceGroups) -> None:
        self.groups = groups
        self.bounds = gpu_bounds(self.f, groups, self.gpus_per_unit)
        self._make_cells()
        self._static = None

    def _make_cells(self) -> None:
        b = self.bounds
        self.cells = make_cells(self.tree, b.gpu_group, b.lo_w, b.hi_w, b.guarantee_w, b.margin_w, b.idle_w,
                                b.priority, 1.0, b.names, dtype=self.dtype, kappa_surplus=b.kappa,
                                unit_gpus=self.gpus_per_unit)  # fmt: skip

    @property
    def rack_group(self) -> NDArray[np.int64]:
        return self.groups.rack_group

    @property
    def group_names(self) -> tuple[str, ...]:
        return self.groups.names

    # ------------------------------------------------------------------ run time (API)
    def set_group(self, name: str, priority: int | None = None, guarantee_w: float | None = None,
                  max_w: float | None = None) -> None:  # fmt: skip
        """Change a resource group at run time (checked; ``ValueError`` naming the field)."""
        self._set_groups(self.groups.updated(name, priority, guarantee_w, max_w))

    def set_policy(self, policy: str) -> None:
        """Switch the policy bundle (MaxP, MaxQ, MaxLPS); MaxP/MaxQ hold static limits, MaxLPS steers."""
        self._set_groups(self.groups.with_policy(policy))
        self.mode = "steer" if policy == "MaxLPS" else "static"

    # ------------------------------------------------------------------ budgets
    def gpu_budgets(self, m) -> Array:
        """Budgets on the GPU power through every element and the two site rows [W] (module docstring), in one kernel
        (:func:`optimization.steering_kernels.gpu_budgets`). The GPU power (and limits) through an element: its share
        of the sum over its node's racks (:meth:`SteeringTree.through`)."""
        from factory_twin.optimization.steering_kernels import gpu_budgets  # numba: loaded at the first step

        el_w, site_w = self.budgets(m.time, m.scenario, m)
        self.budget_w = np.where(m.routing.energized, el_w, np.inf)
        self.site_budget_w = site_w
        t = self.tree
        lim = np.zeros(0) if self.rack_limit_w is None else np.asarray(self.rack_limit_w, float)
        tree = (t.rack_first_node, t.nodes_bottom_up, t.node_parent, t.member_element, t.member_node, t.member_share)
        rows = (np.append(el_w, site_w), np.append(m.element_in_w, m.grid_w), self._beta)
        return gpu_budgets(np.asarray(m.rack_gpu_w, float), lim, *tree, *rows, self.reserve, float(m.cooling_room_w))

    def design_budgets(self, site_w: float | None = None) -> Array:
        """GPU budgets at the design point (all GPUs at TDP) for the site import ``site_w`` [W] (default the
        contract's): what the static baselines share."""
        d = self.design
        el = np.where(np.isfinite(d.beta), d.gpu_w + (self.budget_w - d.in_w) / d.beta, np.inf)
        site_w = self.f.spec.grid.import_limit_mw * MW if site_w is None else site_w
        site = d.site_gpu_w + (site_w - d.site_grid_w) / d.site_beta
        return np.concatenate([el, [site, np.inf]])

    def hold(self, demand_w: NDArray) -> NDArray:
        """The demand a request is based on: each GPU's highest recent demand, decaying by
        ``peak_hold_decay_fraction_per_s`` of TDP per step (``data/power_policies.toml``)."""
        d = np.asarray(demand_w, self.dtype)
        if self.held is None:
            self.held = d.copy()
        else:  # in place: two passes over the GPUs, no temporaries
            np.subtract(self.held, self.decay_w, out=self.held)
            np.maximum(self.held, d, out=self.held)
        return self.held

    # ------------------------------------------------------------------ the step
    def __call__(self, m) -> NDArray:
        if m.routing is not self._routing:
            self._set_routing(m.routing)
        budgets = self.gpu_budget_w = self.gpu_budgets(m)  # kept: what this step's allocation used
        nb, binding = self.tree.node_budgets(budgets)
        if self.mode in ("steer", "greedy"):
            if self.mode == "steer":
                self.last = allocate(self.cells, self.hold(m.gpu_demand_w), nb, binding)
                self.binding_steps += bool(self.last.binding or self.last.brake)
                self.rack_limit_w = self.last.rack_limit_w
                return self.last.limit_w
            limit = greedy_proportional(self.cells, self.hold(m.gpu_demand_w), nb)
            self.rack_limit_w = self.gpus_per_unit * np.add.reduceat(limit, self.tree.rack_first_gpu, dtype=float)
            return limit
        if self._static is None:
            if self.mode == "equal":
                static_nb, _ = self.tree.node_budgets(self.design_budgets(self.site_budget_w))
                self._static = equal_share(self.cells, static_nb)
            else:
                self._static = np.asarray(self.bounds.hi_w, self.dtype)
        return self._static
