"""Shared field types: timestamps, identifiers, levels and durations.

Every wire timestamp is RFC 3339 with an explicit offset; every duration in a file is a short
human form ("3s", "15m", "1h30m", "1d") or ISO 8601 ("PT15M").

    >>> from pydantic import TypeAdapter
    >>> TypeAdapter(Duration).validate_python("1h30m")
    datetime.timedelta(seconds=5400)
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "DepartmentId",
    "plain_json",
    "Duration",
    "Identifier",
    "LEVELS",
    "Level",
    "Timestamp",
    "field_error",
    "format_duration",
    "no_control_characters",
    "parse_duration",
    "parse_timestamp",
    "person_field",
    "utc_now",
]

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def field_error(field: str | tuple, kind: str, message: str) -> ValidationError:
    """A validation error that names `field` (or a path to it), for rules that involve more
    than one field."""
    loc = field if isinstance(field, tuple) else (field,)
    return ValidationError.from_exception_data(
        "validation", [InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc,
                                        input=None)]
    )


def utc_now() -> datetime:
    """The wall clock, timezone-aware. Pass it (or a fixed clock) to anything that needs time."""
    return datetime.now(UTC)


def parse_timestamp(value: Any) -> datetime:
    """Accept an aware datetime or an RFC 3339 string with an offset; refuse anything else."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a UTC offset")
        return value
    matched = _RFC3339.match(value) if isinstance(value, str) else None
    if matched is None:
        raise ValueError(
            "must be an RFC 3339 timestamp with an offset, e.g. 2023-05-16T14:03:07+08:00"
        )
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    fraction = matched.group(1)  # ".123456789"
    if fraction and len(fraction) > 7:  # Python keeps microseconds only
        text = text.replace(fraction, fraction[:7], 1)
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not a valid date or time: {exc}") from None


Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]

_DURATION_PART = re.compile(r"(\d+)\s*(ms|d|h|m|s)")
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def plain_json(value: Any, max_depth: int = 16) -> Any:
    """`value` if it is plain JSON (objects, arrays, text, finite numbers, true/false/null)
    nested at most `max_depth` deep, with text that is valid Unicode; else ValueError. For
    free-form fields that travel on topics, so what is accepted can always be written."""
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if depth > max_depth:
            raise ValueError(f"nested deeper than {max_depth} levels")
        if isinstance(item, dict):
            for key, inner in item.items():
                _text(key)
                todo.append((inner, depth + 1))
        elif isinstance(item, list):
            todo.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            _text(item)
        elif isinstance(item, float) and item != item or item in (float("inf"), float("-inf")):
            raise ValueError("numbers must be finite")
        elif item is not None and not isinstance(item, (bool, int, float)):
            raise ValueError(f"not JSON: {type(item).__name__}")
    return value


def _text(text: Any) -> None:
    if not isinstance(text, str):
        raise ValueError("object keys must be text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (a lone surrogate)") from None


MAX_DURATION = timedelta(days=3650)
"""Longer than any deadline, silence or retention a subdistrict sets (ten years)."""


def parse_duration(value: Any) -> timedelta:
    """Parse "15s", "5m", "1h30m", "1d", "PT1H" or a number of seconds into a timedelta
    of at most MAX_DURATION."""
    try:
        parsed = _parse_duration(value)
    except OverflowError:
        parsed = MAX_DURATION * 2
    if parsed > MAX_DURATION:
        raise ValueError(f"duration longer than {MAX_DURATION.days} days")
    return parsed


def _parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("duration must not be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError('duration must be text like "30s", "15m", "1h30m" or "1d"')
    text = value.strip()
    iso = _ISO_DURATION.match(text)
    if iso and text != "P":
        d, h, m, s = iso.groups()
        return timedelta(days=int(d or 0), hours=int(h or 0), minutes=int(m or 0),
                         seconds=float(s or 0))
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        raise ValueError(f'"{value}" is not a duration; write e.g. "30s", "15m", "1h30m", "1d"')
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts))


def format_duration(value: timedelta) -> str:
    """The short human form of a duration: timedelta(seconds=5400) -> "1h30m"."""
    seconds = int(value.total_seconds())
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"anyOf": [
        {"type": "string", "pattern": r"^(\s*\d+\s*(ms|d|h|m|s))+\s*$|^P",
         "examples": ["30s", "15m", "1h30m", "1d", "PT15M"]},
        {"type": "number", "minimum": 0, "description": "seconds"}]}),
]

def no_control_characters(text: str) -> str:
    """`text`, if it holds no control character (Unicode Cc: C0, DEL, C1) and no lone
    surrogate (Cs, which JSON's `\\ud800` makes and UTF-8 cannot write); else ValueError
    naming the first. An id goes into topic keys, CSV, XML (CAP) and logs, where a NUL, CR/LF
    or ESC breaks the format or forges a line."""
    found = _CONTROL_OR_SURROGATE.search(text)
    if found is None:
        return text
    i, ch = found.start(), found.group()
    if unicodedata.category(ch) == "Cc":
        raise ValueError(f"must not hold control characters (U+{ord(ch):04X} at {i})")
    raise ValueError(f"must not hold a lone surrogate (U+{ord(ch):04X} at {i})")


_CONTROL_OR_SURROGATE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Unicode's Cc (C0, DEL, C1) and Cs: one search instead of a category per character (every
string field of every message passes here)."""


NO_CONTROL = r"^[^\u0000-\u001f\u007f-\u009f]*$"  # the same, for JSON Schema (OpenAPI)

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128),
                       AfterValidator(no_control_characters),
                       Field(json_schema_extra={"pattern": NO_CONTROL})]
"""An id chosen by someone else (a gateway, a registry): 1-128 characters, none of them a
control character."""

DepartmentId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$"),
    Field(description="department id: lower-case letters, digits and _ (it names a topic)"),
]

Level = Literal["I", "II", "III", "IV"]
LEVELS: tuple[Level, ...] = ("I", "II", "III", "IV")
"""Incident levels, most severe first (国家突发事件分级: I 特别重大 ... IV 一般)."""


def person_field() -> Any:
    """A request body's `by`: needed only when the token names no person (open mode, a token
    without a name); a token's person is what is recorded, whatever `by` says."""
    return Field(default="", max_length=200,
                 description="who does it, when the token names nobody")
