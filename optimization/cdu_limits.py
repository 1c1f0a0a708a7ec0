"""Per-CDU limits of the dispatch LP at class x CDU grouping: the heat a CDU's exchanger removes while
holding the TCS supply setpoint, and the heat its TCS flow carries within the allowed rise.

For CDU ``c`` at step ``t`` [MW], with ``Q_c = sum_{g in c} busy_mw[t, g] x[t, g] + base_c[t]`` its liquid
heat (``base``: idle GPUs and liquid-cooled non-GPU parts, the rack heat the engine sends to the CDU):

* ``cdu_heat``: ``Q_c <= E_c (T_set - T_fws) / (1 - E_c / C_tcs,c)``, the twin's own CDU model
  (:meth:`models.heat_exchange.ConstantFlowCdus.max_duty_w`; ``E_c = eps C_min`` at full valve, with the
  UA of ``cooling.cdu.fouling``). ``T_fws`` is the current facility-water supply temperature when it is
  measured (a re-plan from the twin's state, held over the horizon), else the setpoint, which the plant
  holds while the plant-wide heat-rejection row holds.
* ``cdu_flow``: ``Q_c <= C_tcs,c dT_max`` with ``dT_max = cooling.tcs.max_rise_k`` (no rows without it).

:func:`cdu_rooms` returns each limit minus ``base`` (the room left for busy GPUs), ``[T, Z]``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from factory_twin.models.cooling import ConstantFlowCdus
from factory_twin.models.units import MW
from factory_twin.optimization.groups import Groups
from numpy.typing import NDArray

Array = NDArray[np.float64]
FAMILIES = ("cdu_heat", "cdu_flow")


def cdu_labels(f) -> tuple[str, ...]:
    """``"cdu-12 (hall-2 #2)"``: the CDU index used in group names, its hall and its index in the hall."""
    first = {h: int(np.flatnonzero(f.cdu_hall == h)[0]) for h in np.unique(f.cdu_hall)}
    return tuple(f"cdu-{c} ({f.hall_names[h]} #{c - first[h]})" for c, h in enumerate(f.cdu_hall))


def cdu_limits_w(f, fws_supply_c: float | None = None) -> dict[str, Array]:
    """Per-CDU limits on liquid heat [W] at facility-water supply ``fws_supply_c`` [degC] (default: its
    setpoint); see the module docstring. ``cdu_flow`` only with ``max_rise_k``."""
    cool = f.spec.cooling
    t_fws = cool.facility_water.supply_setpoint_c if fws_supply_c is None else fws_supply_c
    c_tcs = np.bincount(f.rack_cdu, f.rack_m_dot_kg_s, f.n_cdus) * f.tcs.cp_j_kgk(cool.tcs.supply_setpoint_c)
    cdus = ConstantFlowCdus(c_tcs, f.c_fws_max_w_k, f.cdu_ua_nom_w_k, cool.tcs.supply_setpoint_c, cool.cdu.arrangement)
    out = {"cdu_heat": cdus.max_duty_w(t_fws)}
    if cool.tcs.max_rise_k is not None:
        out["cdu_flow"] = c_tcs * cool.tcs.max_rise_k
    return out


def cdu_rooms(f, groups: Groups, utilization: Array, fws_supply_c: float | None = None) -> dict[str, Array]:
    """Each CDU limit minus the heat that does not depend on the caps [MW], ``[T, Z]``, for busy shares
    ``utilization`` ``[T, G]`` (groups at class x CDU grouping) and facility water at ``fws_supply_c``."""
    if groups.grouping != "cdu":
        raise ValueError(f"grouping: CDU limits need grouping='cdu', got {groups.grouping!r}")
    liq = np.bincount(groups.rack_group, f.non_gpu_liquid_w, groups.n)
    base_g = groups.gpus * (1 - utilization) * groups.idle_w + liq  # [T, G] W
    member = sp.csr_matrix((np.ones(groups.n), (np.arange(groups.n), groups.zone)), shape=(groups.n, f.n_cdus))
    base = np.asarray((member.T @ base_g.T).T)  # [T, Z] W
    return {k: (lim[None, :] - base) / MW for k, lim in cdu_limits_w(f, fws_supply_c).items()}
