"""The Alarm: what a detector, a gateway or a person sends in.

    >>> Alarm.model_validate({"alarm_id": "gw-1:0001", "kind": "smoke", "site_id": "lab-3",
    ...                       "occurred_at": "2023-05-16T14:03:07+08:00"}).signal
    'alarm'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.common import (
    NO_CONTROL,
    Identifier,
    Timestamp,
    field_error,
    no_control_characters,
    plain_json,
    utc_now,
)

__all__ = ["Alarm", "KINDS", "Location", "Reporter", "SIGNALS", "Signal", "MAX_FUTURE_SKEW"]

Signal = Literal["alarm", "supervisory", "trouble", "restore", "test"]
SIGNALS: tuple[Signal, ...] = ("alarm", "supervisory", "trouble", "restore", "test")

KINDS: tuple[str, ...] = (
    "smoke", "heat", "flame", "gas", "electrical", "manual_call_point", "fire_report",
    "power_trip", "hazmat", "water_leak", "structural", "other",
)
"""Kinds the contract names. Any other kind is accepted and goes to the fallback playbook."""

MAX_FUTURE_SKEW = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""No alarm occurred before this: an earlier time is a gateway's clock fault."""

READINGS: dict[str, tuple[float, float, str]] = {
    "battery": (0, 100, "the battery in percent, from 0 to 100"),
    "signal": (-150, 0, "the signal strength (RSSI) in dBm, from -150 to 0"),
}
"""The attributes a device's fleet view reads: numbers in these ranges, or refused."""


class Location(BaseModel):
    """Where a person says the fire is, when there is no site id (or in addition to it)."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(default=None, max_length=500)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    @field_validator("lat", "lon", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float, type(None))):
            raise ValueError("must be a number (degrees)")
        return value

    @model_validator(mode="after")
    def _something_given(self) -> Location:
        if self.address is None and (self.lat is None or self.lon is None):
            raise ValueError("location needs an address, or both lat and lon")
        return self


class Reporter(BaseModel):
    """Who reported it (a person calling 119/12345, a duty officer)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)


class Alarm(BaseModel):
    """One alarm as the contract defines it.

    `occurred_at` may not lie more than five minutes after the validation clock, which is
    `context={"now": datetime}` when given (the ingest time, or a Kafka message's timestamp),
    else the wall clock. `received_at` is stamped by the ingest, never trusted from a gateway.
    """

    model_config = ConfigDict(extra="forbid")

    alarm_id: Identifier
    kind: Annotated[str, AfterValidator(no_control_characters)] = Field(
        min_length=1, max_length=64, json_schema_extra={"pattern": NO_CONTROL})
    signal: Signal = "alarm"
    site_id: Identifier | None = None
    device_id: Identifier | None = None
    occurred_at: Timestamp
    location: Location | None = None
    description: str | None = Field(default=None, max_length=4000)
    reporter: Reporter | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    received_at: Timestamp | None = None
    drill: bool | None = Field(
        default=None, description="演练: an exercise, not a real event. It runs the real "
                                  "pipeline, never joins a real incident, and its incident and "
                                  "tasks carry the mark")

    @field_validator("attributes")
    @classmethod
    def _plain(cls, value: dict[str, Any]) -> dict[str, Any]:
        return plain_json(value)

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        if value < EARLIEST:
            raise ValueError(f"lies before {EARLIEST.date().isoformat()}")
        context = info.context or {}
        now = context.get("now") or utc_now()
        if value - now > MAX_FUTURE_SKEW:
            raise ValueError(
                f"lies more than 5 minutes in the future (server time {now.isoformat()})"
            )
        return value

    @model_validator(mode="after")
    def _site_or_location(self) -> Alarm:
        if self.site_id is None and self.location is None and self.device_id is None:
            raise field_error("site_id", "missing",
                              "Field required unless location or device_id is given")
        return self

    @model_validator(mode="after")
    def _readings(self) -> Alarm:
        for name, (low, high, what) in READINGS.items():
            value = self.attributes.get(name)
            if name in self.attributes and (isinstance(value, bool)
                                            or not isinstance(value, (int, float))
                                            or not low <= value <= high):
                raise field_error(("attributes", name), "reading", f"must be a number: {what}")
        return self

    @property
    def known_kind(self) -> bool:
        return self.kind in KINDS
