"""Sites: the places detectors watch (a laboratory, a residential block, a lamp post).

    >>> Site.model_validate({"site_id": "lab-3", "name": "3号实验室", "type": "laboratory",
    ...                      "address": "巨野河街道", "grid": "JYH-G2"}).type
    'laboratory'
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from schemas.common import DepartmentId, Duration, Identifier

__all__ = ["SITE_TYPES", "Device", "Grid", "Site", "SiteOverride", "SiteRegistry", "SiteType"]

SiteType = Literal[
    "laboratory", "residential", "school", "hospital", "elderly_care", "small_venue",
    "warehouse", "factory", "fuel_station", "market", "office", "public_road",
    "construction_site", "village_house", "unknown",
]
SITE_TYPES: tuple[str, ...] = SiteType.__args__  # type: ignore[attr-defined]


class SiteOverride(BaseModel):
    """Which unit of a department covers this site (for example 巨野河派出所 for police)."""

    model_config = ConfigDict(extra="forbid")

    unit: str | None = Field(default=None, max_length=200)
    contact: str | None = Field(default=None, max_length=200)


class Site(BaseModel):
    """One entry of the site registry."""

    model_config = ConfigDict(extra="forbid")

    site_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    type: SiteType
    address: str = Field(default="", max_length=500)
    grid: str = Field(default="", max_length=100)
    building: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^\S+$",
        description="sites with the same building id are one building (the units of a "
                    "high-rise, shops under a residence): their alarms correlate into one "
                    "incident")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    overrides: dict[DepartmentId, SiteOverride] = Field(default_factory=dict)

    @property
    def triage_key(self) -> str:
        """The key of this site's alarms on `whistle.alarms` and of triage's state: its
        building's when it shares one (so a fire spreading upward is one incident), else its own
        id.

            >>> Site(site_id="a-301", name="3单元301", type="residential",
            ...      building="a-block").triage_key
            'building:a-block'
        """
        return f"building:{self.building}" if self.building else self.site_id

    @classmethod
    def ad_hoc(cls, site_id: str, address: str | None = None) -> Site:
        """A site nobody registered: still dispatched, by the fallback rules."""
        return cls(site_id=site_id, name=(address or site_id)[:200], type="unknown",
                   address=address or "")


class Device(BaseModel):
    """A detector of the device registry: the site it watches, and how long it may stay silent
    before it counts as offline.

        >>> Device.model_validate({"device_id": "smk-1", "site_id": "lab-3", "kind": "smoke",
        ...                        "heartbeat": "6h"}).heartbeat
        datetime.timedelta(seconds=21600)
    """

    model_config = ConfigDict(extra="forbid")

    device_id: Identifier
    site_id: Identifier
    kind: str | None = Field(default=None, min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)
    heartbeat: Duration = timedelta(hours=24)

    @field_validator("heartbeat")
    @classmethod
    def _at_least_a_minute(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("must be at least 1m: a detector is not expected to report "
                             "more often than once a minute")
        return value


Point = tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]
"""[lat, lon] in degrees (WGS 84, as the sites' coordinates)."""


class Grid(BaseModel):
    """A grid (网格) of the subdistrict's grid management: the area one grid worker covers,
    outlined for the duty officer's map. A site names its grid by this id (`Site.grid`).

        >>> Grid.model_validate({"id": "JYH-G2", "name": "巨野河第二网格",
        ...     "outline": [[36.686, 117.368], [36.686, 117.372], [36.689, 117.372]]}).name
        '巨野河第二网格'
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100, description="as sites name it in `grid`")
    name: str = Field(default="", max_length=200)
    outline: list[Point] = Field(min_length=3, max_length=10_000,
                                 description="the polygon's corners, [lat, lon] each, in order "
                                             "(closed implicitly: the last joins the first)")

    @field_validator("outline")
    @classmethod
    def _an_area(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(set(value)) < 3:
            raise ValueError("needs at least 3 different points ([lat, lon] each)")
        return value


class SiteRegistry(RootModel[list[Site]]):
    """The `--sites FILE` YAML: a list of sites with unique ids."""

    @model_validator(mode="after")
    def _unique(self) -> SiteRegistry:
        seen: set[str] = set()
        for site in self.root:
            if site.site_id in seen:
                raise ValueError(f"site_id {site.site_id!r} appears twice")
            seen.add(site.site_id)
        return self

    def by_id(self) -> dict[str, Site]:
        return {site.site_id: site for site in self.root}
