"""A consumer polls long while it asks for every partition, briefly only when it leaves one out.

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

    adapt(consumer._fetcher, short_ms=10)
"""

from __future__ import annotations

from typing import Any

__all__ = ["IDLE_WAIT_MS", "adapt", "asks_for_all"]

IDLE_WAIT_MS = 250


def adapt(fetcher: Any, short_ms: int, idle_ms: int = IDLE_WAIT_MS) -> None:
    """Have aiokafka's `fetcher` wait `idle_ms` in a fetch that asks for every partition it
    can read, `short_ms` in any other."""
    build = fetcher._get_actions_per_node  # where aiokafka makes its fetch requests

    def actions(assignment: Any) -> Any:
        fetcher._fetch_max_wait_ms = idle_ms if asks_for_all(fetcher, assignment) else short_ms
        return build(assignment)

    fetcher._get_actions_per_node = actions


def asks_for_all(fetcher: Any, assignment: Any) -> bool:
    """Whether a fetch made now asks for every partition of `assignment` that is not paused:
    none has records still held, or is waiting for its offset."""
    held = fetcher._records
    for tp in assignment.tps:
        state = assignment.state_value(tp)
        if not state.paused and (tp in held or not state.has_valid_position):
            return False
    return True
