"""Departments: who reports for duty when the street blows the whistle."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from schemas.common import DepartmentId

__all__ = ["Department", "DepartmentRegistry"]


class Department(BaseModel):
    """A department id (it names the topic `whistle.tasks.<id>`) and its names."""

    model_config = ConfigDict(extra="forbid")

    id: DepartmentId
    name: str = Field(min_length=1, max_length=100)
    name_en: str = Field(default="", max_length=100)


class DepartmentRegistry(RootModel[list[Department]]):
    """The departments file: a list with unique ids."""

    @model_validator(mode="after")
    def _unique(self) -> DepartmentRegistry:
        ids = [d.id for d in self.root]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"department ids appear twice: {', '.join(dupes)}")
        return self

    def by_id(self) -> dict[str, Department]:
        return {d.id: d for d in self.root}
