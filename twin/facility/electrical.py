"""Electrical catalogs of the facility: converter efficiency curves (``data/converters.toml``) and conductor
materials and sizing rules (``data/conductors.toml``), each with its sources in the file.

A converter of the one-line diagram takes the three-term loss of :func:`models.power.ups_loss_w` with its
coefficients fitted to the curve's points (:func:`models.power.fit_loss_coefficients`); a curve the form cannot
follow within :data:`CURVE_TOLERANCE` is refused. A rack converter (a hall's ``psu_curve``) interpolates the
points (:func:`models.power.psu_input_w`).
"""

from __future__ import annotations

import tomllib
from functools import cache
from itertools import pairwise
from typing import Annotated, Literal

import numpy as np
from factory_twin.models.power import converter_efficiency, fit_loss_coefficients
from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory_twin import data

CURVE_TOLERANCE = 0.01  # fitted efficiency within 1 % (relative) of every cited point
Frac = Annotated[float, Field(gt=0, le=1)]


class ConverterCurve(BaseModel):
    """One entry of ``data/converters.toml``: efficiency at load fractions of the rating, the current on each side."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    input: Literal["ac", "dc"]
    output: Literal["ac", "dc"]
    load: list[Frac] = Field(min_length=2)
    efficiency: list[Frac] = Field(min_length=2)
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _points(self) -> ConverterCurve:
        if len(self.load) != len(self.efficiency) or any(b <= a for a, b in pairwise(self.load)):
            raise ValueError("load and efficiency: same length, load strictly increasing")
        return self


@cache
def converter_curves() -> dict[str, ConverterCurve]:
    """The converter curves of ``data/converters.toml`` by name."""
    with data.path("converters.toml").open("rb") as f:
        raw = tomllib.load(f)
    return {name: ConverterCurve.model_validate(v) for name, v in raw.items()}


def converter_curve(name: str) -> ConverterCurve:
    """The curve ``name``; ``ValueError`` listing the known ones."""
    curves = converter_curves()
    if name not in curves:
        raise ValueError(f"unknown converter curve {name!r}; known: {sorted(curves)}")
    return curves[name]


@cache
def loss_coefficients(name: str) -> tuple[float, float, float]:
    """``(c0, c1, c2)`` of curve ``name`` for :func:`models.power.ups_loss_w`; ``ValueError`` when the fitted form
    misses a point by more than :data:`CURVE_TOLERANCE` (the curve is not a three-term converter curve)."""
    c = converter_curve(name)
    coef = fit_loss_coefficients(c.load, c.efficiency)
    err = np.abs(converter_efficiency(c.load, *coef) / np.asarray(c.efficiency) - 1.0)
    if err.max() > CURVE_TOLERANCE:
        k = int(np.argmax(err))
        raise ValueError(
            f"curve {name!r} does not follow the three-term loss within {CURVE_TOLERANCE:.0%}: "
            f"{err[k]:.2%} off at {c.load[k]:.0%} load"
        )
    return coef


@cache
def conductor_data() -> dict:
    """``data/conductors.toml``: copper (IEC 60028), the busbar current-density rule, NEC cable ampacities."""
    with data.path("conductors.toml").open("rb") as f:
        return tomllib.load(f)


def conductor_resistance_ohm(length_m, area_mm2):
    """Resistance of one copper conductor [ohm] at the catalog's conductor temperature (IEC 60028)."""
    from factory_twin.models.conductors import resistance_ohm

    cu = conductor_data()["copper"]
    return resistance_ohm(
        length_m, area_mm2, cu["resistivity_ohm_mm2_m"], cu["temp_coefficient_per_k"], cu["conductor_temp_c"]
    )
