"""A consumer polls long while it asks for every partition, briefly only when it leaves one out;
and while records come, it asks for the partitions they come on, the others only now and then.

A Kafka broker holds a fetch until one of the partitions it asks for has a record, or the
fetch's wait is over. aiokafka has one fetch at a time in flight to a broker and leaves out
of it a partition whose records it still holds (not yet handed to the streams); that one, or
one sought or resumed meanwhile, is fetched again only once the fetch in flight is answered.
So the stages' consumer waits `WHISTLE_FETCH_WAIT_MS` (10 ms) at
most, and an idle worker sent a hundred fetches a second, each of its 36 stream partitions
encoded and decoded in pure Python: 7% of a core with nothing to do (11% with a webhook per
department, `whistle bench`'s idle figure: each webhook target's consumer, with its 100 ms,
polled ten times a second).

A fetch that asks for every partition not paused can wait long: any record answers it at
once. `adapt` makes the consumer's fetches wait `IDLE_WAIT_MS` then, and the short wait
otherwise. What it costs: a partition sought or resumed while such a fetch is in flight (a
rebalance, a table's recovery starting or ending) is fetched up to `IDLE_WAIT_MS` later, as
with the Java consumer's default `fetch.max.wait.ms` of 500 ms.

Under a steady flow the fetches are many and small: at 200 alarms/s, one fetch an alarm,
answered by the next alarm, each asking for all 36 partitions although four (the alarms
topic's) had records; aiokafka took a third of the worker's samples then (issue 21's seventh
stop). So a partition that had records within `HOT_FOR` is hot, and while any is, a
fetch asks for the hot ones only, and for all of them at most `COLD_EVERY` after it last did.
What it costs: the first record on a cold partition (a task update, a duty officer's level)
while records flow on others comes up to `COLD_EVERY` plus a short wait later.

    adapt(consumer._fetcher, short_ms=10)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["COLD_EVERY", "HOT_FOR", "IDLE_WAIT_MS", "adapt", "asks_for_all", "hot_only"]

IDLE_WAIT_MS = 250
HOT_FOR = 1.0
"""Seconds a partition counts as hot after it last had records."""
COLD_EVERY = 0.02
"""Seconds at most between two fetches that ask for every partition, while some are hot."""
_NEVER = float("-inf")


def adapt(fetcher: Any, short_ms: int, idle_ms: int = IDLE_WAIT_MS,
          clock: Callable[[], float] = time.monotonic) -> None:
    """Have aiokafka's `fetcher` wait `idle_ms` in a fetch that asks for every partition it
    can read, `short_ms` in any other; and leave the cold partitions out of a fetch while
    some are hot, but for one in every `COLD_EVERY` seconds."""
    build = fetcher._get_actions_per_node  # where aiokafka makes its fetch requests
    had_records: dict[Any, float] = {}  # partition -> when it last had records held
    asked_all = [_NEVER]  # when a fetch last asked for every partition

    def actions(assignment: Any) -> Any:
        now = clock()
        for tp in fetcher._records:
            had_records[tp] = now
        asked = assignment
        if now - asked_all[0] < COLD_EVERY:
            some = hot_only(assignment.tps, assignment.state_value, had_records, now)
            if some is not None:
                asked = _Only(assignment, some)
        whole = asked is assignment
        fetcher._fetch_max_wait_ms = (idle_ms if whole and asks_for_all(fetcher, assignment)
                                      else short_ms)
        made = build(asked)
        if whole and made[0]:  # a fetch request was made, for every partition
            asked_all[0] = now
        return made

    fetcher._get_actions_per_node = actions


def hot_only(tps: Any, state_value: Callable[[Any], Any], had_records: dict[Any, float],
             now: float) -> list | None:
    """The partitions of `tps` a fetch asks for while some are hot: those that had records
    within `HOT_FOR` of `now`, and those no fetch asks for anyway (paused, their position not
    known: aiokafka waits on them apart). None for all: none of the hot ones can be fetched
    (a fetch of them alone would ask for nothing), or none is left out."""
    some, hot = [], False
    for tp in tps:
        fetchable = _fetchable(state_value(tp))
        if now - had_records.get(tp, _NEVER) < HOT_FOR:
            some.append(tp)
            hot = hot or fetchable
        elif not fetchable:
            some.append(tp)
    return some if hot and len(some) < len(tps) else None


def _fetchable(state: Any) -> bool:
    """Whether a fetch would ask for the partition (not paused, its position known)."""
    return not state.paused and state.has_valid_position


class _Only:
    """An assignment as aiokafka's fetch requests read it, with only some of its partitions."""

    def __init__(self, assignment: Any, tps: list) -> None:
        self.assignment, self.tps = assignment, tps

    def state_value(self, tp: Any) -> Any:
        return self.assignment.state_value(tp)


def asks_for_all(fetcher: Any, assignment: Any) -> bool:
    """Whether a fetch made now asks for every partition of `assignment` that is not paused:
    none has records still held, or is waiting for its offset."""
    held = fetcher._records
    for tp in assignment.tps:
        state = assignment.state_value(tp)
        if not state.paused and (tp in held or not state.has_valid_position):
            return False
    return True
