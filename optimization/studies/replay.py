"""Event replay: a grid operator's DR calendar over a year, one dispatch pair (without / with the
event) per event, and the year's energy, throughput and money totals.

Calendar (``kpx_calendar``, after KPX reliability DR as summarized in the field guide's grid notes:
dispatched 1 h ahead, 1-4 h per event in 15-min steps, at most 60 h a year, weekdays, outside
21:00-08:00 and the 12:00-13:00 lunch hour): seeded draws of one event per chosen weekday in the
peak months until the next event would pass the yearly hours. Each event is planned from its
announcement (``start - notice``) over ``options.horizon`` with the committed depth ``dr_depth``.

Money (currency of the scenario): ``value_lost`` is the objective difference (token value lost net
of the energy cost saved); ``energy_payment`` pays the price signal for the energy reduced inside
the event (an SMP-based performance payment; an assumption, set ``energy_payment_scale = 0`` to
drop it); ``capacity_payment`` is ``capacity_price_per_kw_yr`` x the committed kW (mean of
``depth x baseline`` over the events). KPX pays roughly 30,000-50,000 KRW per kW-year for reliability
DR capacity (field guide, grid notes section 5; default 40,000).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from factory_twin.models.units import KW, MW, S_PER_H, S_PER_MIN
from factory_twin.optimization.studies.cases import DR_NOTICE_MIN, DR_RAMP_MIN, model_for, plan
from factory_twin.twin.scenario.grid_signals import DREvent

KPX_CAPACITY_KRW_PER_KW_YR = 40_000.0  # KPX reliability DR, 30,000-50,000 KRW/kW-yr (field guide grid.md s5)


def kpx_calendar(
    first_day: str | np.datetime64,
    seed: int = 0,
    days: int = 365,
    hours_per_year: float = 60.0,
    duration_h: tuple[float, float] = (1.0, 4.0),
    window_h: tuple[float, float] = (8.0, 21.0),
    lunch_h: tuple[float, float] = (12.0, 13.0),
    months: tuple[int, ...] = (1, 7, 8, 12),
    step_h: float = 0.25,
) -> tuple[list[str], list[float]]:
    """Event starts (ISO text) and lengths [h] of a KPX-like reliability DR year (see module doc).

    Parameters
    ----------
    first_day : first day of the calendar [date]
    seed : random seed [-]
    days : calendar length [d]
    hours_per_year : cap on the summed event hours [h] (KPX: 60)
    duration_h : shortest and longest event [h] (KPX: 1-4 h), drawn in ``step_h`` steps
    window_h, lunch_h : allowed hours of the day and the excluded lunch hour [h]
    months : months with events (peak seasons) [1-12]
    step_h : time step of starts and lengths [h] (KPX: 15 min)
    """
    rng = np.random.default_rng(seed)
    day0 = np.datetime64(first_day, "D")
    dates = day0 + np.arange(days)
    month = dates.astype("datetime64[M]").astype(int) % 12 + 1
    weekday = (dates.astype(int) + 3) % 7 < 5  # 1970-01-01 was a Thursday
    pool = rng.permutation(dates[weekday & np.isin(month, months)])
    lengths = np.arange(duration_h[0], duration_h[1] + 1e-9, step_h)
    starts, durs, total = [], [], 0.0
    for day in pool:
        d = float(rng.choice(lengths))
        if total + d > hours_per_year + 1e-9:
            break
        s = np.arange(window_h[0], window_h[1] - d + 1e-9, step_h)
        s = s[(s + d <= lunch_h[0] + 1e-9) | (s >= lunch_h[1] - 1e-9)]
        if s.size == 0:
            continue
        h = float(rng.choice(s))
        starts.append(str(day.astype("datetime64[s]") + np.timedelta64(round(h * S_PER_H), "s")))
        durs.append(d)
        total += d
    order = np.argsort(starts)
    return [starts[i] for i in order], [durs[i] for i in order]


def replay_sweep(study: dict[str, Any]) -> dict[str, Any]:
    """The ``[sweep]`` of a replay study: the calendar as zipped ``dr_start`` / ``dr_duration_h``."""
    o = study.get("options", {})
    cal = o.get("calendar", {})
    first = cal.get("first_day") or str(np.datetime64(o.get("start", "2026-08-08"), "D"))
    starts, durs = kpx_calendar(first, **{k: v for k, v in cal.items() if k != "first_day"})
    return {"combine": "zip", "dr_start": starts, "dr_duration_h": durs}


def replay_event(context: dict[str, Any], dr_start: str, dr_duration_h: float, **params: Any) -> dict[str, Any]:
    """One calendar event: plan from its announcement without and with it; energy, tokens, money."""
    f, s, p = model_for(context, params)
    t_ev, dur_s = np.datetime64(dr_start, "s"), S_PER_H * float(dr_duration_h)
    notice_s = S_PER_MIN * float(p.get("dr_notice_min", DR_NOTICE_MIN))
    ramp_s = S_PER_MIN * float(p.get("dr_ramp_min", DR_RAMP_MIN))
    p = p | {"start": str(t_ev - np.timedelta64(round(notice_s), "s"))}
    base = plan(f, s.with_changes(dr_events=()), p)
    ev = DREvent(t_ev, dur_s, float(p["dr_depth"]), min(ramp_s, dur_s), notice_s)
    plan_ev = plan(f, s.with_changes(dr_events=(ev,)), p)
    dt_h = float(base.attrs["step_s"]) / S_PER_H
    t = base.time.values
    inside = (t >= t_ev) & (t < t_ev + np.timedelta64(round(dur_s), "s"))
    cut = base.grid_import_mw.values - plan_ev.grid_import_mw.values
    return {
        "plan_status": str(plan_ev.attrs["status"]),
        "optimal": int(plan_ev.attrs["status"] == "optimal"),
        "committed_mw": float(p["dr_depth"] * base.baseline_mw.values[inside].mean()),
        "event_reduction_mwh": float(cut[inside].sum() * dt_h),
        "energy_reduced_mwh": float(cut.sum() * dt_h),
        "tokens_lost": float((base.tokens_per_s.values - plan_ev.tokens_per_s.values).sum() * dt_h * S_PER_H),
        "throughput_kept_event": float(
            plan_ev.tokens_per_s.values[inside].sum() / plan_ev.tokens_uncapped_per_s.values[inside].sum()
        ),
        "value_lost": float(base.attrs["objective"] - plan_ev.attrs["objective"]),
        "energy_cost_saved": float(base.attrs["energy_cost"] - plan_ev.attrs["energy_cost"]),
        "energy_payment": float(
            p.get("energy_payment_scale", 1.0) * np.sum(base.price.values[inside] * cut[inside]) * dt_h
        ),
    }


def replay_totals(ds: xr.Dataset, options: dict[str, Any]) -> xr.Dataset:
    """Year totals over the events (``case`` dim): sums of the per-event values, event hours,
    events held, capacity payment and net benefit (payments - value lost)."""
    held = (ds.status == 0) & (ds.optimal == 1)
    cap = float(options.get("capacity_price_per_kw_yr", KPX_CAPACITY_KRW_PER_KW_YR))
    out = {
        f"total_{k}": ds[k].where(held).sum("case").assign_attrs(ds[k].attrs)
        for k in ("event_reduction_mwh", "energy_reduced_mwh", "tokens_lost", "value_lost", "energy_payment")
    }
    capacity = cap * (MW / KW) * float(ds.committed_mw.where(held).mean())
    return xr.Dataset(
        out
        | {
            "events": ((), int(ds.sizes["case"])),
            "events_held": ((), int(held.sum())),
            "event_hours": ((), float(ds.dr_duration_h.sum()), {"units": "h"}),
            "capacity_payment": ((), capacity, {"units": "currency"}),
            "net_benefit": (
                (),
                capacity + float(out["total_energy_payment"]) - float(out["total_value_lost"]),
                {"units": "currency"},
            ),
        }
    )
