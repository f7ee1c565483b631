"""The departments' live task streams: `GET /api/v1/departments/{department}/stream` (SSE).

Every worker reads every `whistle.tasks.<department>` topic whole (no consumer group) into
an in-memory log per department, so any worker can serve any department's stream and a
restarted worker has it all again. An event's id is a cursor: the next offset of each of the
topic's partitions once the client has that event (`"12-0-7-3"`). A client that reconnects
with `Last-Event-ID` gets exactly what came after it, from whichever worker it reaches; a
client without one (or with a cursor older than what is held) gets `reset`, then the
department's open tasks and those finished in the last day, then `ready`.

    event: task            one per task created or changed (data: the Task)
    event: reset           forget what you hold: a snapshot follows
    event: ready           you are up to date (id: the cursor; data: {"tasks": n})
    : ping                 every `stream_ping` seconds, so proxies keep the line open
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import faust
from aiohttp import web
from pydantic import ValidationError

from schemas import FINAL_STATUSES, Task, topics
from streams.http.errors import Refusal, problem
from streams.http.views import ApiView
from streams.kafka.broker import bootstrap_servers

__all__ = ["PATH", "Cursor", "DepartmentLog", "DepartmentStream", "Event", "StreamView", "TaskFeed",
           "TaskLog", "sse", "start"]

log = logging.getLogger(__name__)

RECENT = timedelta(days=1)

FETCH_WAIT_MS = 500
"""How long a fetch of the task topics waits for a record: the broker answers as soon as one
comes, so this only sets how often an idle worker asks (it asked every 20 ms: 45 fetches a
second of 68 partitions, pure-Python protocol work for nothing)."""

GATHER = 0.05
"""Seconds the feed waits after records came before it fetches again. A fetch costs the
same for one record as for a hundred (every partition of every task topic is in it): at
280 alarms/s the feed fetched 99 times a second, one or two records each (issue 21's
profile). A stream's event comes this much later at most."""


class Cursor(dict):
    """partition -> the next offset a client has not seen. Text form: offsets joined by -."""

    @classmethod
    def parse(cls, text: str, partitions: int) -> Cursor:
        parts = text.strip().split("-")
        if len(parts) != partitions or not all(p.isdigit() for p in parts):
            raise ValueError(f"expected {partitions} offsets joined by '-', got {text!r}")
        return cls(enumerate(int(p) for p in parts))

    def text(self, partitions: int) -> str:
        return "-".join(str(self.get(p, 0)) for p in range(partitions))


@dataclass(slots=True)
class Event:
    """One task snapshot as held: what the log looks at, and the task as the one line of JSON
    a stream sends, in UTF-8, deflated. A full log is 10,000 of these per department, so the
    task is not kept as a dict (1.3 KiB and three objects for the cyclic collector to walk,
    measured for a task of 532 bytes), and its JSON is kept deflated (a 669-byte task in 407;
    tracemalloc put 33 MB of a worker after 100,000 alarms in this history; 8 us to deflate,
    3 to inflate for a send; held like this, `STREAM_EVENT` in deploy/sizing.py)."""

    partition: int
    offset: int
    task_id: str
    revision: int
    status: str
    created: float  # POSIX seconds
    updated: float
    packed: bytes  # `body`, deflated

    @property
    def body(self) -> bytes:
        """The task as a stream sends it: one line of UTF-8 JSON."""
        return zlib.decompress(self.packed)

    @classmethod
    def of(cls, partition: int, offset: int, task: Task, raw: bytes | None = None) -> Event:
        """`raw`: the record `task` was read from, sent as it is when it is one line (a
        task as Whistle produces it: its empty optional fields left out); the record is
        not made again (5 us), and it deflates in less (12 -> 8 us, 438 -> 363 bytes for
        a 557-byte task)."""
        if raw is None or b"\n" in raw or b"\r" in raw:
            raw = task.model_dump_json().encode("utf-8")
        return cls(partition, offset, task.task_id, task.revision, task.status,
                   task.created_at.timestamp(), task.updated_at.timestamp(),
                   zlib.compress(raw, 1))


@dataclass
class DepartmentLog:
    """What one department's topic held, in the order this worker read it (each partition in
    offset order), at most `limit` events; and who is listening."""

    partitions: int
    limit: int
    events: deque = field(default_factory=deque)
    head: Cursor = field(default_factory=Cursor)    # next offset to read, per partition
    floor: Cursor = field(default_factory=Cursor)   # oldest offset still held, per partition
    seen: set = field(default_factory=set)          # (task_id, revision) held
    listeners: set = field(default_factory=set)     # asyncio.Queue per open stream

    def add(self, partition: int, offset: int, task: Task | None,
            raw: bytes | None = None) -> None:
        """Record one record of the topic (None: it did not decode; only the cursor moves);
        `raw`, the record's value, is what a stream sends of it (`Event.of`)."""
        self.head[partition] = offset + 1
        if task is None:
            return
        key = (task.task_id, task.revision)
        if key in self.seen:  # the same snapshot twice (at-least-once): once is enough
            return
        event = Event.of(partition, offset, task, raw)
        self.events.append(event)
        self.seen.add(key)
        while len(self.events) > self.limit:
            old = self.events.popleft()
            self.seen.discard((old.task_id, old.revision))
            self.floor[old.partition] = old.offset + 1
        for queue in self.listeners:
            queue.put_nowait(event)

    def after(self, cursor: Cursor) -> list[Event] | None:
        """The events a client at `cursor` has not seen, or None if some are no longer held,
        or if the cursor is ahead of what was read (a broker that lost its topics, an old tab:
        what it holds may be gone)."""
        if any(not self.floor.get(p, 0) <= cursor.get(p, 0) <= self.head.get(p, 0)
               for p in range(self.partitions)):
            return None
        return [e for e in self.events if e.offset >= cursor.get(e.partition, 0)]

    def snapshot(self, now: datetime) -> list[Event]:
        """The latest of each task: open ones, and finished ones updated within a day."""
        latest: dict[str, Event] = {}
        for e in self.events:
            held = latest.get(e.task_id)
            if held is None or held.revision < e.revision:
                latest[e.task_id] = e
        since = (now - RECENT).timestamp()
        return sorted((e for e in latest.values()
                       if e.status not in FINAL_STATUSES or e.updated >= since),
                      key=lambda e: (e.created, e.task_id))


class TaskLog(Protocol):
    """What a stream reads: a `DepartmentLog`, or the board's view of all of them
    (`streams.notify.board_stream.BoardLog`); `partitions` is the length of its cursor."""

    partitions: int

    @property
    def head(self) -> Cursor: ...

    @property
    def listeners(self) -> Any: ...  # add(queue), discard(queue)

    def after(self, cursor: Cursor) -> list[Event] | None: ...

    def snapshot(self, now: datetime) -> list[Event]: ...


class TaskFeed:
    """Reads every department's task topic into its `DepartmentLog`."""

    def __init__(self, broker: str, departments: list[str], partitions: int,
                 limit: int = 10_000) -> None:
        self.servers = bootstrap_servers(broker)
        self.logs = {d: DepartmentLog(partitions, limit) for d in departments}
        self.closing = asyncio.Event()  # set when the worker stops

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._read()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # broker gone: read on from where we were
                    log.warning("task feed: %r; reading again in 1 s", exc)
                    await asyncio.sleep(1.0)
        finally:  # the worker stops: end every open stream
            self.close()

    def close(self) -> None:
        """End every open stream (their clients reconnect, to another worker if there is one):
        the web server waits for them before it stops."""
        self.closing.set()
        for dept_log in self.logs.values():
            for queue in dept_log.listeners:
                queue.put_nowait(None)

    async def _read(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, enable_auto_commit=False,
                                    auto_offset_reset="earliest",
                                    fetch_max_wait_ms=FETCH_WAIT_MS)
        await consumer.start()
        try:
            names = {topics.task_topic(d): d for d in self.logs}
            tps = await _partitions(consumer, list(names))
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, self.logs[names[tp.topic]].head.get(tp.partition, 0))
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=500)
                for tp, records in batch.items():
                    dept_log = self.logs[names[tp.topic]]
                    for r in records:
                        dept_log.add(tp.partition, r.offset, _task(r.value, tp.topic), r.value)
                if batch:  # let the next records gather: one fetch for many (see GATHER)
                    await asyncio.sleep(GATHER)
        finally:
            await consumer.stop()


async def _partitions(consumer: Any, names: list[str]) -> list:
    from aiokafka import TopicPartition

    while True:
        await consumer._client.force_metadata_update()
        found = {n: consumer.partitions_for_topic(n) for n in names}
        if all(found.values()):
            return [TopicPartition(n, p) for n, parts in found.items() for p in sorted(parts)]
        await asyncio.sleep(0.2)


def _task(value: bytes | None, topic: str) -> Task | None:
    try:
        return Task.model_validate_json(value or b"")
    except ValidationError as exc:
        first = exc.errors()[0]
        log.warning("task feed: a record on %s is not a Task: %s: %s", topic,
                    ".".join(map(str, first["loc"])) or "value", first["msg"])
        return None
    except RecursionError:
        log.warning("task feed: a record on %s is not a Task: nested too deeply", topic)
        return None


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One Server-Sent Event (data as one line of JSON; bytes are taken as that line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    if isinstance(data, bytes):
        return f"{head}event: {event}\ndata: ".encode() + data + b"\n\n"
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


async def stream(dept_log: TaskLog, last_event_id: str | None, now: datetime,
                 closing: asyncio.Event, ping: float) -> AsyncIterator[bytes]:
    """What one client receives, from its `Last-Event-ID` on, until it or the worker goes."""
    queue: asyncio.Queue = asyncio.Queue()
    dept_log.listeners.add(queue)  # from here on nothing is missed: same loop, no await since
    try:
        n = dept_log.partitions
        cursor = Cursor.parse(last_event_id, n) if last_event_id else None
        missed = dept_log.after(cursor) if cursor is not None else None
        yield b"retry: 1000\n\n"
        if cursor is None or missed is None:
            tasks = dept_log.snapshot(now)
            cursor = Cursor(dept_log.head)
            yield sse("reset", {"reason": "stale cursor" if last_event_id else "snapshot"})
            for e in tasks:
                yield sse("task", e.body)
            yield sse("ready", {"tasks": len(tasks)}, cursor.text(n))
        else:
            for e in missed:
                cursor[e.partition] = e.offset + 1
                yield sse("task", e.body, cursor.text(n))
            yield sse("ready", {"tasks": len(missed)}, cursor.text(n))
        while not closing.is_set():
            try:
                e = await asyncio.wait_for(queue.get(), ping)
            except TimeoutError:
                yield b": ping\n\n"
                continue
            if e is None:
                break
            if e.offset < cursor.get(e.partition, 0):
                continue  # sent already, in the replay or the snapshot
            cursor[e.partition] = e.offset + 1
            yield sse("task", e.body, cursor.text(n))
    finally:
        dept_log.listeners.discard(queue)


def start(app: faust.App, broker: str, departments: list[str], partitions: int,
          history: int) -> TaskFeed:
    """The worker's feed, read from the task topics while the worker runs and closed before
    its web server stops."""
    feed = TaskFeed(broker, departments, partitions, history)

    @app.task
    async def read_task_topics() -> None:
        await feed.run()

    @app.on_before_shutdown.connect
    async def end_streams(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        # before the web server stops: it would wait for each open stream, and a console is
        # always connected (SIGTERM took 6.5 s, until `whistle up` killed its worker)
        feed.close()

    return feed


PATH = "/api/v1/departments/{department}/stream"


class StreamView(ApiView):
    """A view that streams a `TaskLog` as SSE, from the request's `Last-Event-ID` on."""

    feed: TaskFeed  # the worker's, set by `mount`
    has_head = False

    async def serve(self, request: Any, log: TaskLog, label: str) -> Any:
        """Stream `log` until the client or the worker goes; `label` is the metric's."""
        w, feed = self.whistle, self.feed
        last = (request.headers.get("Last-Event-ID")
                or request.query.get("last_event_id") or None)
        if last is not None:
            try:
                Cursor.parse(last, log.partitions)
            except ValueError as exc:
                raise Refusal(400, "bad Last-Event-ID", problem("Last-Event-ID",
                                                                str(exc))) from None
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        gauge = w.metrics.stream_clients.labels(department=label)
        gauge.inc()
        try:
            async for chunk in stream(log, last, w.clock(), feed.closing,
                                      w.settings.stream_ping):
                await response.write(chunk)
        except ConnectionResetError:
            pass  # the client went away
        finally:
            gauge.dec()
        return response


class DepartmentStream(StreamView):
    """`GET /api/v1/departments/{department}/stream`: the department's tasks as SSE."""

    rights = {"get": "stream_tasks"}

    async def get(self, request: Any, department: str) -> Any:
        if department not in self.whistle.departments:
            raise Refusal(404, f"no department {department}", problem("department",
                                                                       "unknown"))
        if not request["caller"].may_see(department):
            raise Refusal(403, f"a {request['caller'].department} token streams only its "
                               f"own tasks", problem("department", "not yours"))
        return await self.serve(request, self.feed.logs[department], department)
