"""The ``[steering]`` table of a facility file: the power policy bundle and the resource groups (pydantic schema).

Engineering units at this edge (W per GPU). A resource group is a job or tenant: the racks it runs on (selectors
``"HALL"``, ``"HALL:I"``, ``"HALL:FIRST-LAST"`` as in ``[topology]``, or every rack of a workload class), its
priority (NVIDIA DPS: an integer, a lower number is a higher priority, 0 the default), the power it is guaranteed
per GPU and the most a GPU of it may draw. Racks in no group form one group per workload class with the defaults.
Policy bundles are presets of ``data/power_policies.toml`` (:mod:`twin.facility.resource_groups`); docs/maxlps.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

POLICIES = ("MaxP", "MaxQ", "MaxLPS")
PRIORITY_MAX = 2_147_483_647  # DPS resource-group priority range 0..2^31-1 (dpsctl resource-group create)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResourceGroupSpec(_Strict):
    """One job or tenant sharing a power budget, a priority and per-GPU bounds."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    priority: Annotated[int, Field(ge=0, le=PRIORITY_MAX)] = Field(0, description="lower = higher priority (DPS)")
    guarantee_w: Annotated[float, Field(ge=0)] | None = Field(
        None, description="power guaranteed per GPU when it asks for it [W] (default: the rack type's minimum cap)"
    )
    max_w: Annotated[float, Field(gt=0)] | None = Field(None, description="most a GPU may draw [W] (default: TDP)")
    racks: list[str] = Field(default_factory=list, description="rack selectors HALL, HALL:I or HALL:FIRST-LAST")
    workload: str | None = Field(None, description="or: every rack of this workload class not in another group")

    @model_validator(mode="after")
    def _members(self) -> ResourceGroupSpec:
        if bool(self.racks) == (self.workload is not None):
            raise ValueError("give either racks (selectors) or workload (a class name)")
        if self.guarantee_w is not None and self.max_w is not None and self.guarantee_w > self.max_w:
            raise ValueError(f"guarantee_w {self.guarantee_w:g} W is above max_w {self.max_w:g} W")
        return self


class SteeringSpec(_Strict):
    """``[steering]``: the policy bundle in force and the resource groups."""

    policy: Literal[POLICIES] = Field("MaxP", description="power policy bundle: MaxP, MaxQ or MaxLPS")  # type: ignore[valid-type]
    groups: list[ResourceGroupSpec] = Field(default_factory=list)
