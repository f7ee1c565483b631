"""Departments: who reports for duty when the street blows the whistle."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from schemas.common import DepartmentId, Duration

__all__ = ["TIERS", "Department", "DepartmentRegistry", "Tier"]

Tier = Literal["街道", "区"]
TIERS: tuple[str, ...] = ("街道", "区")
"""Where a department sits: the subdistrict's own (街道) or the district's (区), which the
street calls in by blowing the whistle (吹哨) and which must report for duty (报到)."""


class Department(BaseModel):
    """A department id (it names the topic `whistle.tasks.<id>`) and its names."""

    model_config = ConfigDict(extra="forbid")

    id: DepartmentId
    name: str = Field(min_length=1, max_length=100)
    name_en: str = Field(default="", max_length=100)
    tier: Tier = Field(default="街道", description="街道 (the subdistrict's) or 区 (the "
                                                   "district's, called in by a whistle)")
    report_within: Duration = Field(
        default=timedelta(minutes=30),
        description="when the whistle calls it in: report for duty (报到) within this")
    lead: bool = Field(default=False, description="leads (统一指挥): hears of every rejected "
                                                  "task and re-assigns it")


class DepartmentRegistry(RootModel[list[Department]]):
    """The departments file: a list with unique ids."""

    @model_validator(mode="after")
    def _unique(self) -> DepartmentRegistry:
        ids = [d.id for d in self.root]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"department ids appear twice: {', '.join(dupes)}")
        if sum(d.lead for d in self.root) > 1:
            raise ValueError("at most one department leads (lead: true)")
        return self

    def by_id(self) -> dict[str, Department]:
        return {d.id: d for d in self.root}
