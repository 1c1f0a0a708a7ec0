"""The ``[topology]`` table of a facility file: the site's one-line diagram (pydantic schema).

Engineering units at this edge (kW, kVA, s). Elements name their ``parents`` (a DAG from the feeds down:
an element or rack with two parents is fed on two paths, A and B) and the racks they feed directly
(``racks``, selectors ``"HALL"``, ``"HALL:I"`` or ``"HALL:FIRST-LAST"`` with rack indices from 0 within
the hall). ``count = n`` repeats an element whose ``name`` holds ``{i}`` (copies 1..n, zero-padded); a
parent reference with ``{i}`` means the copy of that repeated element in the same block (copy ``i`` of
``n`` takes parent copy ``ceil(i m / n)`` of ``m``), and the racks of a repeated element are split
into ``n`` equal contiguous runs. :mod:`twin.facility.topology` resolves the names, checks the graph
and compiles it into arrays. Field meanings and sources: docs/power-topology.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from factory_twin.models.protection import CHARACTERISTICS, IEC_CURVES
from pydantic import BaseModel, ConfigDict, Field, model_validator

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
PosInt = Annotated[int, Field(gt=0)]

#: Element kinds and the loss model of :mod:`models.power` each uses. The 800 VDC chain (NVIDIA, "800 VDC
#: Architecture for Next-Generation AI Infrastructure", OCP 2025): ``rectifier`` (an SST or rectifier, AC in, DC out),
#: ``dc-switchboard``, ``dc-busway`` and ``dcdc`` (a sidecar DC-DC); racks under them convert with their hall's
#: ``psu_curve`` (a DC-input converter, e.g. the 800 V -> 50 V DC-DC).
AC_KINDS = ("feed", "transformer", "switchboard", "ups", "busway", "pdu")
KINDS = (*AC_KINDS, "rectifier", "dc-switchboard", "dc-busway", "dcdc")
CONVERTER_KINDS = ("ups", "rectifier", "dcdc")  # three-term loss (models.power.ups_loss_w): c0..c2 or a curve
LOSS_PARAMS = {
    "transformer": ("no_load_loss_kw", "load_loss_kw"),
    **{k: ("c0", "c1", "c2") for k in CONVERTER_KINDS},
}
QUADRATIC_KINDS = ("feed", "switchboard", "busway", "pdu", "dc-switchboard", "dc-busway")  # loss_fraction_at_rating
CONDUCTOR_KINDS = ("busway", "dc-busway")  # or the I^2 R of their conductors (models.conductors)
CONDUCTOR_FIELDS = ("voltage_v", "conductor_mm2", "length_m")
#: Current on each side of an element: a parent must deliver what its child takes.
OUTPUT_CURRENT = {k: "dc" if k in ("rectifier", "dc-switchboard", "dc-busway", "dcdc") else "ac" for k in KINDS}
INPUT_CURRENT = {**OUTPUT_CURRENT, "rectifier": "ac"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TripDevice(_Strict):
    """A protective device (see :mod:`models.protection`); multiples are of the device's current setting
    ``setting x`` the element's rating."""

    characteristic: Literal[tuple(c for c in CHARACTERISTICS if c != "none")]  # type: ignore[valid-type]
    setting: Pos = Field(1.0, description="current setting I_r over the element's rating")
    pickup: Pos = Field(1.1, description="multiple of I_r where timing starts (thermal: trip threshold k)")
    tr_s: Pos | None = Field(None, description="i2t and thermal: trip time at 6 x I_r from cold [s]")
    curve: Literal[tuple(IEC_CURVES)] = "standard"  # type: ignore[valid-type]
    tms: Pos = Field(0.1, description="iec: time multiplier setting")
    loads: list[Pos] = Field(default_factory=list, description="table: load multiples, increasing")
    seconds: list[Pos] = Field(default_factory=list, description="table: allowed time at each load [s]")
    isd: Pos | None = Field(None, description="short-time pickup multiple of I_r (none: no short-time element)")
    tsd_s: NonNeg = Field(0.0, description="short-time delay [s]")
    ii: Pos | None = Field(None, description="instantaneous pickup multiple of I_r (none: none)")
    memory_s: NonNeg = Field(1200.0, description="decay time of the operate integral below pickup [s] (0: reset)")
    interrupt_s: NonNeg = Field(0.0, description="time from the instantaneous pickup to interruption [s]")
    source: str = ""

    @model_validator(mode="after")
    def _parameters(self) -> TripDevice:
        c = self.characteristic
        if c in ("i2t", "thermal") and self.tr_s is None:
            raise ValueError(f"characteristic {c!r} needs tr_s (trip time at 6 x I_r)")
        if c == "thermal" and not self.pickup < 6.0:
            raise ValueError(f"thermal: pickup (k) must be < 6 so that tr_s at 6 x I_r exists, got {self.pickup:g}")
        if c == "table":
            if len(self.loads) < 2 or len(self.loads) != len(self.seconds):
                raise ValueError("table: loads and seconds must have the same length (>= 2)")
            if any(b <= a for a, b in zip(self.loads, self.loads[1:], strict=False)):
                raise ValueError(f"table: loads must increase, got {self.loads}")
            if any(b >= a for a, b in zip(self.seconds, self.seconds[1:], strict=False)):
                raise ValueError(f"table: seconds must decrease, got {self.seconds}")
        return self


class Element(_Strict):
    """One element of the one-line diagram (or ``count`` identical ones)."""

    name: str = Field(min_length=1)
    kind: Literal[KINDS]  # type: ignore[valid-type]
    count: PosInt = 1
    parents: list[str] = Field(default_factory=list, description="feeding elements; none for a feed")
    rating_kw: Pos | None = None
    rating_kva: Pos | None = None
    power_factor: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="with rating_kva: kW = kVA x power_factor (default grid.power_factor)"
    )
    continuous_derate: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="continuous limit over the rating (0.8 for breakers not rated for 100 % continuous load)"
    )
    units: PosInt = Field(1, description="identical parallel units sharing the load and the rating (modules)")
    redundancy: str | None = Field(None, description="redundancy group: partners that back each other up")
    path: str | None = Field(None, description="role in the redundancy group (A, B, ...)")
    protection: str | TripDevice | None = Field(None, description="a device of topology.devices or data/protection")
    racks: list[str] = Field(default_factory=list, description="racks fed directly")
    no_load_loss_kw: NonNeg | None = None
    load_loss_kw: NonNeg | None = None
    c0: NonNeg | None = None
    c1: NonNeg | None = None
    c2: NonNeg | None = None
    loss_fraction_at_rating: Annotated[float, Field(ge=0, lt=0.2)] | None = None
    curve: str | None = Field(None, description="converters: efficiency curve of data/converters.toml (or c0..c2)")
    voltage_v: Pos | None = Field(None, description="busways: nominal voltage (line-to-line for AC) [V]")
    conductor_mm2: Pos | None = Field(None, description="busways: cross-section of each conductor [mm2]")
    length_m: Pos | None = Field(None, description="busways: length [m] (the I^2 R from the conductor)")
    dps_model: str | None = Field(None, description="DPS device-registry model for topology export")

    @model_validator(mode="after")
    def _shape(self) -> Element:
        if self.count > 1 and "{i}" not in self.name:
            raise ValueError(f"count = {self.count} needs '{{i}}' in the name, got {self.name!r}")
        if self.rating_kw is not None and self.rating_kva is not None:
            raise ValueError("give rating_kw or rating_kva, not both")
        if self.power_factor is not None and self.rating_kva is None:
            raise ValueError("power_factor goes with rating_kva")
        allowed = (
            set(LOSS_PARAMS.get(self.kind, ()))
            | ({"loss_fraction_at_rating"} if self.kind in QUADRATIC_KINDS else set())
            | ({"curve"} if self.kind in CONVERTER_KINDS else set())
            | (set(CONDUCTOR_FIELDS) if self.kind in CONDUCTOR_KINDS else set())
        )
        given = {k for k in ("no_load_loss_kw", "load_loss_kw", "c0", "c1", "c2", "loss_fraction_at_rating", "curve",
                             *CONDUCTOR_FIELDS) if getattr(self, k) is not None}  # fmt: skip
        if given - allowed:
            extra = sorted(given - allowed)
            raise ValueError(f"kind {self.kind!r} takes no {extra} (its loss model: {sorted(allowed)})")
        if self.curve is not None:
            if given & {"c0", "c1", "c2"}:
                raise ValueError("give a curve or c0, c1, c2, not both")
            return self
        missing = [k for k in LOSS_PARAMS.get(self.kind, ()) if getattr(self, k) is None]
        if missing:
            alt = " (or a curve)" if self.kind in CONVERTER_KINDS else ""
            raise ValueError(f"kind {self.kind!r} needs its loss parameters {missing}{alt}")
        conductor = given & set(CONDUCTOR_FIELDS)
        if conductor and conductor != set(CONDUCTOR_FIELDS):
            raise ValueError(f"the conductor's I^2 R needs all of {list(CONDUCTOR_FIELDS)}, got {sorted(conductor)}")
        if conductor and self.loss_fraction_at_rating is not None:
            raise ValueError("give loss_fraction_at_rating or the conductor (voltage_v, conductor_mm2, length_m)")
        return self


class MechanicalLoad(_Strict):
    """A share of the site's mechanical (cooling) load, fed by its parents (split evenly among those live)."""

    name: str = Field(min_length=1)
    share: Annotated[float, Field(gt=0, le=1)]
    parents: list[str] = Field(min_length=1)


class NodePolicy(_Strict):
    """A DPS node power policy (watts per element type on one node)."""

    name: str = Field(min_length=1)
    node_w: Pos | None = None
    gpu_w: Pos | None = None
    cpu_w: Pos | None = None
    memory_w: Pos | None = None

    @model_validator(mode="after")
    def _some(self) -> NodePolicy:
        if all(getattr(self, k) is None for k in ("node_w", "gpu_w", "cpu_w", "memory_w")):
            raise ValueError("give at least one of node_w, gpu_w, cpu_w, memory_w")
        return self


class TopologySpec(_Strict):
    """The one-line diagram: elements, mechanical loads, protective devices by name, node policies.

    Without ``mechanical`` entries the whole mechanical load hangs on the first feed."""

    name: str = Field("", description="name of the diagram (DPS Topology.Name)")
    elements: list[Element] = Field(min_length=1)
    mechanical: list[MechanicalLoad] = Field(default_factory=list)
    devices: dict[str, TripDevice] = Field(default_factory=dict)
    policies: list[NodePolicy] = Field(default_factory=list)
