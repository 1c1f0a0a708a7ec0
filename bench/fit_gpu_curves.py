"""Fit the power -> throughput curves and print ``data/gpu_curves.toml``.

Usage: ``python bench/fit_gpu_curves.py [path/to/a100_power_cap_sweep.csv] > data/gpu_curves.toml``

The A100 sweep CSV is not shipped with the project. Default location: ``$FACTORY_TWIN_SHARED`` or
``../shared/data`` next to the repository. The Zeus V100/A40 figures are quoted below, with source.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
from factory_twin.models.gpu import DrawnPower, ThroughputCurve
from scipy.optimize import least_squares

A100_TDP_W = 400.0  # A100 SXM board power (sweep maximum cap), physics.md 2.1
A100_MIN_CAP_W = 200.0  # lowest cap used: the 100-200 W interval is unsampled and holds the convex knee
A100_SOURCE = (
    "Colangelo et al., arXiv 2507.00909 (Emerald AI field demonstration, 256 x A100); "
    "software artifact ai-emerald/emerald-ai-demo-may-2025 (Apache-2.0), DVFS power-cap sweep"
)
ZEUS_SOURCE = "ml-energy/zeus:examples/research_reproducibility/zeus_nsdi23/trace/summary_power_{}.csv"

# Zeus traces (physics.md 2.5): power cap [W] -> throughput = t_epoch(max cap) / t_epoch(cap).
ZEUS = {
    "v100-bert": dict(  # V100, 250 W, BERT/SQuAD batch 24; concave over the whole measured range
        gpu="v100",
        tdp_w=250.0,
        min_cap_w=100.0,
        cap_w=[100, 125, 150, 175, 200, 225, 250],
        y=[0.500, 0.667, 0.804, 0.889, 0.937, 0.976, 1.000],
    ),
    "a40-bert": dict(  # A40, 300 W, BERT/SQuAD batch 32; convex below about 0.58 of TDP
        gpu="a40",
        tdp_w=300.0,
        min_cap_w=175.0,
        cap_w=[100, 125, 150, 175, 200, 225, 250, 275, 300],
        y=[0.246, 0.382, 0.573, 0.786, 0.885, 0.940, 0.973, 0.996, 1.000],
    ),
}
A100_IDLE_W = 50.0  # data/racks.toml [a100] [estimate]
# Curves for GPUs without a sweep, moved from an A100 curve by the idle share (models.gpu.ThroughputCurve.rescaled):
# name -> (A100 curve, GPU, idle / TDP of data/racks.toml: Vera Rubin 300 W of 2,300 W [vr-idle])
SCALED = {
    "training-rubin": ("training", "Rubin", 300.0 / 2300.0),
    "inference-rubin": ("inference", "Rubin", 300.0 / 2300.0),
}
A100_CLASSES = {
    "training": ("pt_mpt_13b_lg", "pt_mpt_7b_fast"),
    "fine-tuning": ("ft_llama_8b_dolly",),
    "inference": ("infer_llama_8b_48g",),
}


def read_sweep(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per workload: (cap [W], drawn power per GPU [W], normalized throughput [-]) by cap."""
    rows: dict[str, list[tuple[float, float, float]]] = {}
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            rows.setdefault(r["Workload"], []).append(
                (
                    float(r["GPU power cap"]),
                    float(r["power per GPU"]),
                    float(r["normalized throughput"]),
                )
            )
    return {k: tuple(np.array(c) for c in zip(*sorted(v), strict=True)) for k, v in rows.items()}


def fit_a100(sweep: dict, jobs: tuple[str, ...]) -> tuple[ThroughputCurve, np.ndarray, np.ndarray]:
    """Envelope of the per-cap mean over ``jobs`` (caps >= the minimum) and the raw points used."""
    caps = sweep[jobs[0]][0]
    if any(not np.array_equal(sweep[j][0], caps) for j in jobs):
        raise ValueError(f"jobs {jobs} were not swept at the same caps")
    x = np.mean([sweep[j][1] for j in jobs], axis=0) / A100_TDP_W
    y = np.mean([sweep[j][2] for j in jobs], axis=0)
    curve = ThroughputCurve.from_points(x, y, x_min=float(x[caps == A100_MIN_CAP_W][0]))
    raw_x = np.concatenate([sweep[j][1][caps >= A100_MIN_CAP_W] for j in jobs]) / A100_TDP_W
    raw_y = np.concatenate([sweep[j][2][caps >= A100_MIN_CAP_W] for j in jobs])
    return curve, raw_x, raw_y


def fit_drawn(sweep: dict, jobs: tuple[str, ...], x_demand: float) -> tuple[DrawnPower, np.ndarray]:
    """Clipped-normal drawn power vs cap (:class:`models.gpu.DrawnPower`) over every point of ``jobs``.

    Least squares in W over all caps; the fit is then scaled (mu, sigma and eta by one factor, which
    stays in the model family) so that the draw at TDP equals the throughput curve's uncapped draw
    ``x_demand`` exactly: drawn power and throughput curve agree at full power. Returns the model and the
    residuals [W] (measured minus model) at every measured point.
    """
    cap = np.concatenate([sweep[j][0] for j in jobs]) / A100_TDP_W
    drawn = np.concatenate([sweep[j][1] for j in jobs]) / A100_TDP_W

    def resid(p: np.ndarray) -> np.ndarray:
        return DrawnPower(*p).drawn(cap) - drawn

    p = least_squares(resid, [0.9, 0.1, 0.98], bounds=([0.1, 1e-3, 0.5], [3.0, 2.0, 1.0])).x
    scale = x_demand / float(DrawnPower(*p).drawn(1.0))
    model = DrawnPower(*(p * scale))
    return model, (drawn - model.drawn(cap)) * A100_TDP_W


def drawn_entry(name: str, model: DrawnPower, res_w: np.ndarray, jobs: tuple[str, ...]) -> str:
    method = (
        f"A100 sweep, jobs {', '.join(jobs)}, every cap 100-{A100_TDP_W:g} W: clipped-normal mean draw "
        "(models.gpu.DrawnPower) by least squares, then scaled so the draw at TDP equals x[-1]; "
        "mu, sigma, eta as fractions of TDP; residuals measured minus model [W]"
    )
    return "\n".join(
        [
            f"[{name}.drawn]",
            f"method = {method!r}",
            f"source = {A100_SOURCE!r}",
            f"mu = {float(model.mu)!r}",
            f"sigma = {float(model.sigma)!r}",
            f"eta = {float(model.eta)!r}",
            f"residual_points = {res_w.size}",
            f"residual_max_abs_w = {float(np.max(np.abs(res_w))):.4g}",
            f"residual_rms_w = {float(np.sqrt(np.mean(res_w**2))):.4g}",
            "",
        ]
    )


def toml_entry(name: str, curve: ThroughputCurve, raw_x, raw_y, source: str, method: str) -> str:
    res = raw_y - curve.throughput(raw_x)
    return "\n".join(
        [
            f"[{name}]",
            f"source = {source!r}",
            f"method = {method!r}",
            f"x = [{', '.join(repr(float(v)) for v in curve.x)}]",
            f"y = [{', '.join(repr(float(v)) for v in curve.y)}]",
            f"residual_points = {res.size}",
            *(
                [
                    f"residual_max_abs = {float(np.max(np.abs(res))):.6g}",
                    f"residual_rms = {float(np.sqrt(np.mean(res**2))):.6g}",
                ]
                if res.size
                else []
            ),
            "",
        ]
    )


def main(argv: list[str]) -> None:
    shared = Path(os.environ.get("FACTORY_TWIN_SHARED", Path(__file__).parents[2] / "shared" / "data"))
    sweep = read_sweep(Path(argv[1]) if len(argv) > 1 else shared / "a100_power_cap_sweep.csv")
    out = [
        "# GPU power -> throughput curves, concave piecewise-linear (twin.facility.curves.load_curve).",
        "# x: power drawn per GPU / TDP; y: throughput normalized to 1 at the uncapped draw.",
        "# x[0]: minimum usable draw (knee / minimum cap); x[-1]: uncapped draw (flat above).",
        "# Residuals: measured y minus curve at measured x, points at or above the minimum cap.",
        "# [<curve>.drawn]: mean drawn power vs cap (models.gpu.DrawnPower), A100 classes only.",
        "# Generated by bench/fit_gpu_curves.py; do not edit by hand.",
        "",
    ]
    for name, jobs in A100_CLASSES.items():
        curve, rx, ry = fit_a100(sweep, jobs)
        method = (
            f"A100 sweep, jobs {', '.join(jobs)}: x = measured power per GPU / {A100_TDP_W:g} W, "
            f"y = normalized throughput{', both averaged per cap' if len(jobs) > 1 else ''}; "
            f"upper concave envelope of the caps >= {A100_MIN_CAP_W:g} W (100 W samples "
            "excluded: the unsampled 100-200 W interval holds the convex knee)"
        )
        out.append(toml_entry(name, curve, rx, ry, A100_SOURCE, method))
        model, res_w = fit_drawn(sweep, jobs, curve.x_demand)
        out.append(drawn_entry(name, model, res_w, jobs))
    for name, z in ZEUS.items():
        x = np.array(z["cap_w"]) / z["tdp_w"]
        curve = ThroughputCurve.from_points(x, z["y"], x_min=z["min_cap_w"] / z["tdp_w"])
        keep = x >= curve.x_min
        method = (
            f"Zeus trace, {z['gpu'].upper()} ({z['tdp_w']:g} W): x = power cap / TDP (drawn "
            "power taken equal to the cap), y = t_epoch(max) / t_epoch(cap); upper concave "
            f"envelope of the caps >= {z['min_cap_w']:g} W"
        )
        source = ZEUS_SOURCE.format(z["gpu"]) + " (figures via the project field guide, physics.md 2.5)"
        out.append(toml_entry(name, curve, x[keep], np.array(z["y"])[keep], source, method))
    for name, (base, gpu, idle_to) in SCALED.items():
        curve = load_entry(out, base).rescaled(A100_IDLE_W / A100_TDP_W, idle_to)
        method = (
            f"the {base!r} A100 curve moved to {gpu} by models.gpu.ThroughputCurve.rescaled: the same throughput at "
            f"the same share of the power range above idle (A100 idle {A100_IDLE_W / A100_TDP_W:.4g} of TDP, "
            f"{gpu} {idle_to:.4g} of TDP, data/racks.toml [a100] [vr-idle]) [estimate]; no measured sweep exists"
        )
        out.append(toml_entry(name, curve, np.zeros(0), np.zeros(0), A100_SOURCE, method))
    print("\n".join(out), end="")


def load_entry(out: list[str], name: str) -> ThroughputCurve:
    """The curve ``name`` from the entries written so far."""
    import tomllib

    entry = tomllib.loads("\n".join(out))[name]
    return ThroughputCurve(np.array(entry["x"]), np.array(entry["y"]))


if __name__ == "__main__":
    main(sys.argv)
