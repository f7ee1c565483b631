"""Finding incidents and tasks: the filters `GET /api/v1/incidents` and `GET /api/v1/tasks` take,
and paging with a cursor when asked (`limit`); without `limit` a list is whole, as it always was.

    >>> found = Found.parse({"level": "I", "since": "2026-12-06T08:00:00+08:00", "limit": "50"})
    >>> page, cursor = found.page(items, key=incident_key, newest_first=True)

Every filter is optional and they all hold at once. A task is filtered by its incident's level,
kind, site and grid. `q` is a piece of text looked for, case-folded, in ids, the site's name and
address, the kind, and a task's action. A cursor is opaque to the caller: the sort key of the
last item answered, so the next page starts after it whichever worker holds what.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas import LEVELS, Site
from streams.http.errors import Refusal

__all__ = ["MAX_LIMIT", "Found", "Key", "decode_cursor", "encode_cursor", "incident_key",
           "task_key"]

MAX_LIMIT = 1000
"""The most items one page holds."""

Key = tuple[str, str]


def incident_key(incident: Mapping[str, Any]) -> Key:
    return incident["opened_at"], incident["incident_id"]


def task_key(task: Mapping[str, Any]) -> Key:
    return task["created_at"], task["task_id"]


def encode_cursor(key: Key) -> str:
    """The cursor after an item with this sort key.

    >>> decode_cursor(encode_cursor(("2026-12-06T00:00:00Z", "inc-1")))
    ('2026-12-06T00:00:00Z', 'inc-1')
    """
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode("utf-8")).decode("ascii")


def decode_cursor(text: str) -> Key:
    """The sort key a cursor carries; 422 naming `cursor` if it is not one of ours."""
    try:
        value = json.loads(base64.urlsafe_b64decode(text.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        value = None
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, str) for v in value)):
        raise _bad("cursor", "not a cursor this API gave (take next_cursor from a page)")
    return value[0], value[1]


def _bad(name: str, msg: str) -> Refusal:
    return Refusal(422, f"bad {name}", [{"loc": ["query", name], "msg": msg}])


def _time(query: Mapping[str, str], name: str) -> datetime | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(name, "an ISO 8601 time with its offset, e.g. "
                         "2026-12-06T08:00:00+08:00") from None
    if at.tzinfo is None:
        raise _bad(name, "needs an offset (+08:00 or Z): a time without one is ambiguous")
    return at


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass(frozen=True)
class Found:
    """The filters and the page asked for, parsed and checked (422 naming the parameter)."""

    level: str | None = None
    kind: str | None = None
    site_id: str | None = None
    grid: str | None = None
    department: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    drill: bool | None = None
    limit: int | None = None
    cursor: Key | None = None

    @property
    def filters(self) -> bool:
        """Whether any filter is set: without one every item fits, and nothing about it need
        be looked up."""
        return any(v is not None for v in (self.level, self.kind, self.site_id, self.grid,
                                           self.department, self.since, self.until, self.text,
                                           self.drill))

    @property
    def needs_site(self) -> bool:
        """Whether fitting reads the registry's site (its grid, name or address)."""
        return self.grid is not None or self.text is not None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Found:
        level = query.get("level")
        if level is not None and level not in LEVELS:
            raise _bad("level", f"must be one of {', '.join(LEVELS)}")
        limit = query.get("limit")
        if limit is not None and not (limit.isascii() and limit.isdigit()
                                      and 1 <= int(limit) <= MAX_LIMIT):
            raise _bad("limit", f"a whole number from 1 to {MAX_LIMIT}")
        since, until = _time(query, "since"), _time(query, "until")
        if since is not None and until is not None and until < since:
            raise _bad("until", "is before since")
        cursor = query.get("cursor")
        if cursor is not None and limit is None:
            raise _bad("cursor", "pages need a limit (the cursor comes with one)")
        q = query.get("q")
        drill = query.get("drill")
        if drill is not None and drill not in ("true", "false"):
            raise _bad("drill", "true (only drills, 演练) or false (only real incidents)")
        return cls(level=level, kind=query.get("kind"), site_id=query.get("site_id"),
                   grid=query.get("grid"), department=query.get("department"), since=since,
                   until=until, text=q.casefold() if q else None,
                   drill=None if drill is None else drill == "true",
                   limit=int(limit) if limit is not None else None,
                   cursor=decode_cursor(cursor) if cursor is not None else None)

    def incident_fits(self, incident: Mapping[str, Any], site: Site | None,
                      departments: Iterable[str], at: str | None = None,
                      also: Iterable[str] = ()) -> bool:
        """Whether an incident (its site, the departments it has tasks for) is one asked for;
        `at` is the time the range is about (the incident's opening by default), `also` more
        text to look in (a task's action and department)."""
        if self.level is not None and incident.get("level") != self.level:
            return False
        if self.kind is not None and incident.get("kind") != self.kind:
            return False
        if self.drill is not None and bool(incident.get("drill")) != self.drill:
            return False
        if self.site_id is not None and incident.get("site_id") != self.site_id and (
                self.site_id not in (incident.get("sites") or ())):  # a unit of its building
            return False
        if self.grid is not None and (site is None or site.grid != self.grid):
            return False
        if self.department is not None and self.department not in departments:
            return False
        if self.since is not None or self.until is not None:
            when = _when(at or incident["opened_at"])
            if self.since is not None and when < self.since:
                return False
            if self.until is not None and when > self.until:
                return False
        if self.text is not None:
            words = [incident.get("incident_id", ""), incident.get("site_id", ""),
                     incident.get("kind", ""), *(also or ())]
            if site is not None:
                words += [site.name, site.address]
            if not any(self.text in str(w).casefold() for w in words):
                return False
        return True

    def page(self, items: list[dict], key: Callable[[Mapping[str, Any]], Key],
             newest_first: bool, more_elsewhere: bool = False) -> tuple[list[dict], str | None]:
        """The items in order, after the cursor, at most `limit` of them, and the cursor of the
        next page (None: this is the last). `more_elsewhere`: another worker said it has more."""
        items = sorted(items, key=key, reverse=newest_first)
        if self.limit is None:
            return items, None
        if self.cursor is not None:
            after = self.cursor
            items = [i for i in items if (key(i) < after if newest_first else key(i) > after)]
        shown = items[:self.limit]
        more = len(items) > self.limit or (more_elsewhere and len(shown) == self.limit)
        return shown, encode_cursor(key(shown[-1])) if more and shown else None
