"""Offline ``report.html`` of a grid study: POI power, spectrum with band limits, band-passed peak-to-peak
and ramps against their limits, the voltage-event replay, and the cost of every mitigation mix (plotly.js
inlined once, as :mod:`optimization.studies.report` does)."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import xarray as xr
from factory_twin.models.poi_metrics import (
    amplitude_spectrum,
    band_pass,
    compliance,
    ramp_series_w_s,
    rolling_peak_to_peak,
)
from factory_twin.models.units import MW, S_PER_MIN
from factory_twin.twin.runs.atomic import write_atomic

SHOW_POINTS = 6000  # points per trace in the full-window plots (every n-th sample)
SPECTRUM_MAX_HZ = 10.0


def _series(case: dict) -> tuple[np.ndarray, np.ndarray, float]:
    run = case["_run"]
    return run.dataset.time.values, run.poi_w, run.dt_s


def figures(baseline: dict, chosen: dict | None, reqs, replay, site_mw: float) -> list[go.Figure]:
    """Power, spectrum, p-p, ramp and ride-through figures (baseline vs the chosen mix)."""
    cases = [("unmitigated (shelf buffer only)", baseline)] + ([("cheapest compliant mix", chosen)] if chosen else [])
    rules = [r for q in reqs for r in q.rules]
    figs = []
    fig = go.Figure()
    for name, c in cases:
        t, p, _ = _series(c)
        k = max(t.size // SHOW_POINTS, 1)
        fig.add_scatter(x=t[::k], y=p[::k] / MW, name=name, mode="lines")
    fig.update_layout(title="Power at the point of interconnection", xaxis_title="time [s]", yaxis_title="MW")
    figs.append(fig)
    fig = go.Figure()
    for name, c in cases:
        t, p, dt = _series(c)
        i0 = int(np.argmax(np.abs(np.diff(p)) > 0)) if np.any(np.diff(p)) else 0
        sl = slice(i0, i0 + int(round(20 / dt)))
        fig.add_scatter(x=t[sl], y=p[sl] / MW, name=name, mode="lines")
    fig.update_layout(title="The first 20 s of swing at full resolution", xaxis_title="time [s]", yaxis_title="MW")
    figs.append(fig)
    fig = go.Figure()
    for name, c in cases:
        _, p, dt = _series(c)
        f, a = amplitude_spectrum(p, dt)
        keep = (f > 0) & (f <= SPECTRUM_MAX_HZ)
        fig.add_scatter(x=f[keep], y=a[keep] / MW, name=name, mode="lines")
    for r in rules:
        if r.band_hz:
            fig.add_vrect(x0=r.band_hz[0], x1=min(r.band_hz[1], SPECTRUM_MAX_HZ), opacity=0.08, line_width=0,
                          annotation_text=r.name, fillcolor="orange")  # fmt: skip
        if r.kind == "band_amplitude":
            fig.add_hline(y=r.limit, line_dash="dash", annotation_text=f"{r.name} {r.limit:g} MW")
    fig.update_layout(title="Amplitude spectrum (peak MW per line) with the requirement bands",
                      xaxis_title="Hz", yaxis_title="MW", yaxis_type="log")  # fmt: skip
    figs.append(fig)
    for r in rules:
        if r.kind not in ("peak_to_peak", "ramp"):
            continue
        fig = go.Figure()
        for name, c in cases:
            t, p, dt = _series(c)
            if r.kind == "peak_to_peak":
                y = band_pass(p, dt, r.band_hz) if r.band_hz else p
                v = rolling_peak_to_peak(y, dt, r.window_s) / MW
            else:
                v = ramp_series_w_s(p, dt, r.window_s, r.averaging_s or None) * S_PER_MIN / MW
            k = max(t.size // SHOW_POINTS, 1)
            fig.add_scatter(x=t[::k], y=v[::k], name=name, mode="lines")
        fig.add_hline(y=r.limit, line_dash="dash", line_color="red", annotation_text=f"limit {r.limit:g} {r.units}")
        if r.kind == "ramp":
            fig.add_hline(y=-r.limit, line_dash="dash", line_color="red")
        what = "rolling peak-to-peak" if r.kind == "peak_to_peak" else "ramp"
        fig.update_layout(title=f"{r.name}: {what} over {r.window_s:g} s", xaxis_title="time [s]", yaxis_title=r.units)
        figs.append(fig)
    t, v, rows = replay
    fig = go.Figure()
    k = max(t.size // SHOW_POINTS, 1)
    for row in rows:
        fig.add_scatter(x=t[::k], y=row.online_mw[::k], name=row.name, mode="lines")
    fig.add_scatter(x=t[::k], y=v[::k] * site_mw, name="POI voltage (x site MW)", mode="lines",
                    line={"dash": "dot", "color": "grey"})  # fmt: skip
    fig.update_layout(title="Voltage-event replay: MW online per protection setting", xaxis_title="time [s]",
                      yaxis_title="MW")  # fmt: skip
    figs.append(fig)
    for f in figs:
        f.update_layout(height=380, margin={"t": 40, "b": 40})
    return figs


def case_table(ds: xr.Dataset, best: dict | None, currency: str) -> str:
    """Every mitigation mix, cheapest first; the chosen one marked."""
    df = ds.drop_vars([v for v in ds.data_vars if ds[v].dtype.kind in "OUS"]).to_dataframe().reset_index()
    df = df.sort_values(["compliant", "total_cost"], ascending=[False, True])
    if best:
        mark = np.logical_and.reduce([df[k] == v for k, v in best.items()])
        df.insert(0, "chosen", np.where(mark, "<<", ""))
    df = df.rename(columns={"energy_cost": f"energy_cost [{currency}]", "value_lost": f"value_lost [{currency}]",
                            "total_cost": f"total_cost [{currency}]"})  # fmt: skip
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)


def replay_table(rows) -> str:
    head = "<tr><th>protection</th><th>latched at [s]</th><th>max MW lost</th><th>MW lost at end</th>"
    head += "<th>back to the recovery share after the last dip [s]</th><th>counter allowed</th></tr>"
    body = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td>{'-' if math.isnan(r.latch_s) else f'{r.latch_s:.3f}'}</td>"
        f"<td>{r.max_lost_mw:.1f}</td><td>{r.end_lost_mw:.1f}</td>"
        f"<td>{'never' if math.isinf(r.recovery_s) else f'{r.recovery_s:.2f}'}</td><td>{r.counter_allowed}</td></tr>"
        for r in rows
    )
    return f"<table>{head}{body}</table>"


def write_grid_report(
    path: Path, ds, best, baseline, chosen, reqs, event, replay, site_mw: float, currency: str
) -> Path:
    """Write the report atomically (temporary file, then rename)."""
    figs = figures(baseline, chosen, reqs, replay, site_mw)
    divs = [pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figs)]
    verdicts = []
    for name, c in (("unmitigated", baseline), ("chosen", chosen)):
        if c is None:
            continue
        _, p, dt = _series(c)
        for q in reqs:
            for v in compliance(list(q.rules), p, dt):
                verdicts.append(
                    f"<tr><td>{name}</td><td>{html.escape(q.name)}</td><td>{html.escape(v.rule.name)}</td>"
                    f"<td>{v.value:.4g} {v.rule.units}</td><td>{v.rule.limit:g}</td>"
                    f"<td>{'pass' if v.ok else 'FAIL'}</td>"
                    f"<td>{html.escape(v.rule.source)}</td></tr>"
                )
    head = "<tr><th>case</th><th>set</th><th>rule</th><th>value</th><th>limit</th><th>verdict</th><th>source</th></tr>"
    best_txt = (
        ", ".join(f"{k} = {v:g}" for k, v in best.items())
        if best
        else "NONE: no mix in the sweep meets every rule (see the table)"
    )
    run = baseline["_run"].dataset
    title = html.escape(f"Grid study: {ds.attrs.get('facility', '')} vs {ds.attrs.get('requirements', '')}")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}.scroll{{overflow-x:auto;max-width:100%}}</style></head><body>
<h1>{title}</h1>
<p>Jobs: {html.escape(str(run.attrs["jobs"]))}; window {run.attrs["duration_s"]:g} s
at {run.attrs["step_s"] * 1e3:g} ms.
Cost = energy overhead (floor burn + storage losses) x price
+ value of tokens not produced; storage capital cost is not priced.</p>
<h2>Cheapest compliant mix</h2><p><b>{html.escape(best_txt)}</b></p>
<h2>Compliance</h2><div class="scroll"><table>{head}{"".join(verdicts)}</table></div>
{"".join(divs)}
<h2>Voltage-event replay: {html.escape(event.name)}</h2><p>{html.escape(event.description)}; site load
{site_mw:.1f} MW.</p><div class="scroll">{replay_table(replay[2])}</div>
<h2>Every mitigation mix</h2><div class="scroll" id="mixes">{case_table(ds, best, currency)}</div>
</body></html>"""
    return write_atomic(path, lambda f: f.write(page.encode("utf-8")))
