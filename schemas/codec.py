"""Bytes <-> models. Values on topics are UTF-8 JSON validated by the schemas' models; whatever
does not decode becomes a `Rejected` carrying the reason, for the dead-letter topic.

    >>> decode(Alarm, b"not json")
    Rejected(reason='not JSON: Expecting value: line 1 column 1 (char 0)')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

__all__ = ["Rejected", "decode", "dump", "error_details", "json_bytes", "summarize"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Rejected:
    reason: str


def dump(model: BaseModel) -> bytes:
    """Compact UTF-8 JSON (Chinese stays Chinese), without empty optional fields."""
    return model.model_dump_json(exclude_none=True).encode("utf-8")


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_details(exc: ValidationError, prefix: tuple = ()) -> list[dict[str, Any]]:
    """The contract's `details`: one `{"loc": [...], "msg": str}` per problem."""
    return [{"loc": [*prefix, *err["loc"]] or ["body"], "msg": err["msg"]}
            for err in exc.errors()]


def summarize(details: list[dict[str, Any]]) -> str:
    return "; ".join(f"{'.'.join(map(str, d['loc'])) or 'value'}: {d['msg']}" for d in details)


def decode(model: type[M], raw: bytes | None,
           context: dict[str, Any] | None = None) -> M | Rejected:
    """Parse and validate one message value."""
    if raw is None:
        return Rejected("empty value (a tombstone?)")
    try:
        data = orjson.loads(raw)  # the same values as json's, several times faster
    except orjson.JSONDecodeError:  # json decides what is wrong, and what it still takes
        data = _slow_loads(raw)
        if isinstance(data, Rejected):
            return data
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        return Rejected(f"{model.__name__} invalid: {summarize(error_details(exc))}")
    except RecursionError:
        return Rejected(f"{model.__name__} invalid: nested too deeply")


def _slow_loads(raw: bytes) -> Any:
    """The standard library's reading of what orjson refused: its reason, or the value (it
    takes a lone surrogate escape, NaN and integers past 64 bits, which the models judge)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Rejected(f"not UTF-8: {exc}")
    except ValueError as exc:
        return Rejected(f"not JSON: {exc}")
    except RecursionError:
        return Rejected("not JSON: nested too deeply")
