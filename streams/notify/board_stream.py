"""Every department's tasks in one stream, for the duty officer's board: `GET /api/v1/stream`
(SSE, admin only). A browser opens about six connections per host, so the board cannot hold
one department stream each; this one serves them all from the logs the department streams
read (`streams.notify.feed`), holding nothing more.

The events are the department streams' (`task`, `reset`, `ready`, `: ping`). The cursor covers
every department's topic: the departments in their file's order, each its partitions' next
offsets, joined by `-` (17 departments of 4 partitions: 68 numbers). A reconnection with
`Last-Event-ID` gets exactly what came after it, from any worker; a cursor older than what
some department's log holds, or ahead of it, gets `reset` and the snapshot, as there.

    >>> board = BoardLog([police_log, fire_log])      # 4 partitions each
    >>> board.head.text(board.partitions)
    '3-0-1-0-0-0-2-0'
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from streams.notify.feed import Cursor, DepartmentLog, Event, StreamView

__all__ = ["PATH", "BoardLog", "BoardStream"]

PATH = "/api/v1/stream"


class _AtSlot:
    """One board stream's listener on one department's log: hands the stream each event at
    its place in the board's cursor (the slot: the department's first slot + its partition)."""

    __slots__ = ("base", "queue")

    def __init__(self, queue: Any, base: int) -> None:
        self.queue, self.base = queue, base

    def put_nowait(self, event: Event | None) -> None:
        self.queue.put_nowait(None if event is None
                              else replace(event, partition=self.base + event.partition))


class _Listeners:
    """The board streams listening: each one listens to every department's log."""

    def __init__(self, board: BoardLog) -> None:
        self.board = board
        self.held: dict[Any, list[_AtSlot]] = {}

    def add(self, queue: Any) -> None:
        tags = [_AtSlot(queue, base) for base in self.board.bases]
        for log, tag in zip(self.board.logs, tags, strict=True):
            log.listeners.add(tag)
        self.held[queue] = tags

    def discard(self, queue: Any) -> None:
        for log, tag in zip(self.board.logs, self.held.pop(queue, ()), strict=False):
            log.listeners.discard(tag)

    def __len__(self) -> int:
        return len(self.held)


class BoardLog:
    """The department logs seen as one (a `feed.TaskLog`): slot `base[i] + p` is partition
    `p` of department `i`."""

    def __init__(self, logs: list[DepartmentLog]) -> None:
        self.logs = logs
        self.bases = [sum(log.partitions for log in logs[:i]) for i in range(len(logs))]
        self.partitions = sum(log.partitions for log in logs)
        self.listeners = _Listeners(self)

    @property
    def head(self) -> Cursor:
        return self._joined([log.head for log in self.logs])

    def after(self, cursor: Cursor) -> list[Event] | None:
        """What a client at `cursor` has not seen, department after department (each in its
        log's order), at their slots; None when any department's part is no longer held."""
        missed = []
        for log, base in zip(self.logs, self.bases, strict=True):
            part = Cursor({p: cursor.get(base + p, 0) for p in range(log.partitions)})
            events = log.after(part)
            if events is None:
                return None
            missed += [replace(e, partition=base + e.partition) for e in events]
        return missed

    def snapshot(self, now: datetime) -> list[Event]:
        """Every department's snapshot, oldest task first."""
        tasks = [e for log in self.logs for e in log.snapshot(now)]
        return sorted(tasks, key=lambda e: (e.created, e.task_id))

    def _joined(self, parts: list[Cursor]) -> Cursor:
        return Cursor({base + p: offset for base, part in zip(self.bases, parts, strict=True)
                       for p, offset in part.items()})


class BoardStream(StreamView):
    """`GET /api/v1/stream`: every department's tasks as SSE (admin only)."""

    rights = {"get": "stream_all"}

    async def get(self, request: Any) -> Any:
        return await self.serve(request, BoardLog(list(self.feed.logs.values())), "all")
