"""One rule against one alarm: whether a playbook's `match:` takes an alarm, how specific it is,
and whether two rules could take the same alarm.

The loader (which ranks the set and refuses ambiguous pairs) and the matcher (which picks the
winner) both stand on this module; it imports only `schemas`.

    >>> from schemas import PlaybookMatch
    >>> rule = PlaybookMatch(kinds=["smoke"], site_types=["laboratory"])
    >>> fits(rule, Facts(kind="smoke", site_type="laboratory")) is None, specificity(rule)
    (True, 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from schemas import Playbook, PlaybookMatch
from schemas.playbook import WEEKDAYS, AttributeCondition, window_minutes

__all__ = ["WEIGHTS", "Compiled", "Facts", "fits", "overlap", "rank", "specificity"]

WEIGHTS = {"kinds": 1, "signals": 1, "site_types": 1, "sites": 4, "grids": 2, "levels": 1}
"""What each list a rule gives adds to its specificity: naming a site beats naming a grid."""


@dataclass(frozen=True)
class Facts:
    """What matching looks at: the alarm, its site, and when it happened."""

    kind: str
    signal: str = "alarm"
    site_type: str = "unknown"
    site_id: str = ""
    grid: str = ""
    level: str | None = None
    at: datetime | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


class _HasPlaybook(Protocol):
    @property
    def playbook(self) -> Playbook: ...


def specificity(rule: PlaybookMatch) -> int:
    """The weighted count of what a rule gives, e.g. 2 for `kinds` and `site_types` alone."""
    score = sum(w for name, w in WEIGHTS.items() if getattr(rule, name))
    return score + bool(rule.hours) + bool(rule.weekdays) + len(rule.attributes)


def rank(lp: _HasPlaybook) -> tuple:
    """The sort key of a loaded playbook: most specific first, then the higher priority, then
    the id, so the order is total. `sorted(pset.playbooks, key=rank)`."""
    return (-specificity(lp.playbook.match), -lp.playbook.priority, lp.playbook.id)


def _holds(cond: AttributeCondition, present: bool, value: Any) -> bool:
    if cond.exists is not None and cond.exists != present:
        return False
    if not present:
        return cond.exists is False
    try:
        return ((cond.eq is None or value == cond.eq)
                and (cond.in_ is None or value in cond.in_)
                and (cond.not_in is None or value not in cond.not_in)
                and (cond.gte is None or value >= cond.gte)
                and (cond.lte is None or value <= cond.lte)
                and (cond.gt is None or value > cond.gt)
                and (cond.lt is None or value < cond.lt))
    except TypeError:  # a string compared with a number: the condition does not hold
        return False


def _in_window(minute: int, window: str) -> bool:
    start, end = window_minutes(window)
    return start <= minute < end if start < end else minute >= start or minute < end


def fits(rule: PlaybookMatch, facts: Facts) -> str | None:
    """None when the rule takes the facts, else why not (for `explain`)."""
    for name, value in (("kinds", facts.kind), ("signals", facts.signal),
                        ("site_types", facts.site_type), ("sites", facts.site_id),
                        ("grids", facts.grid), ("levels", facts.level)):
        allowed = getattr(rule, name)
        if allowed and value not in allowed:
            return f"{name[:-1]} {value or '(none)'} is not one of {', '.join(allowed)}"
    if rule.hours or rule.weekdays:
        if facts.at is None:
            return "no time given for its hours/weekdays"
        local = facts.at.astimezone(ZoneInfo(rule.timezone))
        if rule.weekdays and WEEKDAYS[local.weekday()] not in rule.weekdays:
            return f"{WEEKDAYS[local.weekday()]} is not one of {', '.join(rule.weekdays)}"
        minute = local.hour * 60 + local.minute
        if rule.hours and not any(_in_window(minute, w) for w in rule.hours):
            return f"{local:%H:%M} {rule.timezone} is outside {', '.join(rule.hours)}"
    for key, cond in rule.attributes.items():
        if not _holds(cond, key in facts.attributes, facts.attributes.get(key)):
            shown = facts.attributes.get(key, "(absent)")
            wanted = cond.model_dump(exclude_none=True, by_alias=True)
            return f"attribute {key}={shown} fails {wanted}"
    return None


class Compiled:
    """A rule prepared for the hot path: sets, minute windows and the zone resolved once.
    `accepts(facts)` is `fits(rule, facts) is None`, without building reasons."""

    __slots__ = ("lists", "zone", "weekdays", "windows", "attributes")

    def __init__(self, rule: PlaybookMatch) -> None:
        self.lists = tuple((attr, frozenset(getattr(rule, name)))
                           for name, attr in (("kinds", "kind"), ("signals", "signal"),
                                              ("site_types", "site_type"), ("sites", "site_id"),
                                              ("grids", "grid"), ("levels", "level"))
                           if getattr(rule, name))
        timed = bool(rule.hours or rule.weekdays)
        self.zone = ZoneInfo(rule.timezone) if timed else None
        self.weekdays = frozenset(WEEKDAYS.index(d) for d in rule.weekdays)
        self.windows = tuple(window_minutes(w) for w in rule.hours)
        self.attributes = tuple(rule.attributes.items())

    def accepts(self, facts: Facts) -> bool:
        for attr, allowed in self.lists:
            if getattr(facts, attr) not in allowed:
                return False
        for key, cond in self.attributes:
            if not _holds(cond, key in facts.attributes, facts.attributes.get(key)):
                return False
        if self.zone is not None:
            if facts.at is None:
                return False
            local = facts.at.astimezone(self.zone)
            if self.weekdays and local.weekday() not in self.weekdays:
                return False
            minute = local.hour * 60 + local.minute
            if self.windows and not any(
                    (s <= minute < e) if s < e else (minute >= s or minute < e)
                    for s, e in self.windows):
                return False
        return True


def _lists_meet(a: list, b: list) -> bool:
    return not a or not b or bool(set(a) & set(b))


def _conditions_meet(a: AttributeCondition, b: AttributeCondition) -> bool:
    """False only when no value can satisfy both (a conservative test)."""
    if a.eq is not None and b.eq is not None and a.eq != b.eq:
        return False
    for x, y in ((a, b), (b, a)):
        if x.eq is not None and y.in_ is not None and x.eq not in y.in_:
            return False
        if x.in_ is not None and y.in_ is not None and not set(map(repr, x.in_)) & set(
                map(repr, y.in_)):
            return False
        if x.exists is not None and y.exists is not None and x.exists != y.exists:
            return False
    return True


def _windows_meet(a: list[str], b: list[str]) -> bool:
    if not a or not b:
        return True
    minutes = lambda ws: {m for w in ws for m in range(1440) if _in_window(m, w)}  # noqa: E731
    return bool(minutes(a) & minutes(b))


def overlap(a: PlaybookMatch, b: PlaybookMatch) -> bool:
    """Whether some alarm could fit both rules."""
    if not all(_lists_meet(getattr(a, n), getattr(b, n)) for n in WEIGHTS):
        return False
    if a.timezone == b.timezone and not (_lists_meet(a.weekdays, b.weekdays)
                                         and _windows_meet(a.hours, b.hours)):
        return False
    return all(_conditions_meet(a.attributes[k], b.attributes[k])
               for k in a.attributes.keys() & b.attributes.keys())
