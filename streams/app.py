"""The worker: one Faust app with Whistle's topics, tables, agents and HTTP views.

    >>> whistle = build(Settings())
    >>> whistle.app            # a faust.App, ready for faust.Worker(whistle.app).execute...()

Nothing here reads the environment: `Settings` is read once by the CLI and passed in.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, Iterable

import faust
from pydantic import BaseModel

from agents import (dispatch, escalation, incident_updates, site_events, task_updates, timers,
                    triage)
from agents.deadlines import OpenTaskIndex, rules_for
from agents.feedback import feedback_entry, feedback_for
from agents.health import DueIndex
from agents.incidents import IncidentStep
from agents.locate import Registry, Resolved, resolve
from agents.timelines import append
from playbooks import PlaybookError
from playbooks.departments import load_departments
from schemas import (Config, DeadLetter, Department, Incident, PlaybookRef, Site, Task,
                     TimelineEntry, utc_now)

from . import api, console, feed, http_errors, lookahead, openapi, webhooks
from .routing import Routing
from .auth import Auth
from .limits import RateLimits
from . import topics as names
from .codec import Rejected, decode, dump
from .library import PlaybookLibrary
from .metrics import Metrics
from .registry import RegistryReader
from .settings import Settings
from .store import store_url
from .transport import Transport

__all__ = ["Tables", "Topics", "Whistle", "WhistleApp", "build"]


class WhistleApp(faust.App):
    """faust.App with the low-latency consumer (see `streams.transport`)."""

    fetch_wait_ms: int = 10
    first_topics: frozenset[str] = frozenset({names.ALARMS_URGENT, names.TRIAGED_URGENT})

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


@dataclass
class Topics:
    alarms: faust.TopicT
    dlq: faust.TopicT
    triaged: faust.TopicT
    alarms_urgent: faust.TopicT
    triaged_urgent: faust.TopicT
    incidents: faust.TopicT
    task_updates: faust.TopicT
    incident_updates: faust.TopicT
    timeline: faust.TopicT
    site_events: faust.TopicT
    escalations: faust.TopicT
    deliveries: faust.TopicT
    feedback: faust.TopicT
    registry: faust.TopicT
    tasks: dict[str, faust.TopicT]

    def all(self) -> list[faust.TopicT]:
        return [self.alarms, self.dlq, self.triaged, self.alarms_urgent, self.triaged_urgent,
                self.incidents, self.task_updates,
                self.incident_updates, self.timeline, self.site_events, self.escalations,
                self.deliveries, self.feedback, self.registry,
                *self.tasks.values()]


@dataclass
class Tables:
    alarms_seen: faust.Table   # alarm_id -> [incident, position, action, merges]  (like alarms)
    sites: faust.Table         # site_id -> SiteState JSON         (partitioned like whistle.alarms)
    devices: faust.Table       # device_id -> DeviceState list     (partitioned like whistle.alarms)
    incidents: faust.Table     # incident_id -> Incident JSON      (partitioned by incident_id)
    tasks: faust.Table         # task_id -> Task JSON              (partitioned by incident_id)
    timelines: faust.Table     # incident_id -> [TimelineEntry JSON]
    playbooks: faust.GlobalTable  # "id@content_hash" -> Playbook JSON, every version matched


@dataclass
class Whistle:
    """Everything one worker holds. Agents and views receive it; nothing is global."""

    settings: Settings
    app: WhistleApp
    topics: Topics
    tables: Tables
    library: PlaybookLibrary
    registry: Registry
    departments: dict[str, Department]
    metrics: Metrics
    access: Config = field(default_factory=Config)
    auth: Auth = field(default_factory=lambda: Auth([]))
    clock: Callable[[], datetime] = utc_now
    waiters: dict[str, asyncio.Future] = field(default_factory=dict)
    due: DueIndex = field(default_factory=DueIndex)           # devices by offline due time
    verifications: dict[str, datetime] = field(default_factory=dict)  # incident -> PAS due
    deadlines: DueIndex = field(default_factory=lambda: DueIndex(resolution=1))  # tasks
    open_tasks: OpenTaskIndex = field(default_factory=OpenTaskIndex)  # for /metrics
    escalating: dict[str, datetime] = field(default_factory=dict)  # sent, not yet applied
    consuming: bool = False
    topics_declared: bool = False
    registry_reader: RegistryReader | None = None
    feed: Any = None  # streams.feed.TaskFeed, once registered
    lookahead: Any = None  # streams.lookahead.Lookahead, once registered
    routing: Any = None    # streams.routing.Routing: requests to the worker holding the incident
    limits: Any = None     # streams.limits.RateLimits per token (None in open mode)
    strangers: Any = None  # ... per address, for requests without a valid token

    async def send(self, topic: str, key: str, value: bytes,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future:
        """Hand a message to the producer without waiting for the broker's ack.

        Faust flushes the producer before it commits offsets, so an input is only marked done
        once what it produced is on the broker (at-least-once)."""
        return await self.app.producer.send(topic, key.encode("utf-8"), value, partition=None,
                                            timestamp=None, headers=headers)

    def stage(self, topic: faust.TopicT, name: str, model: type[BaseModel],
              handle: Callable[["Whistle", Any, Any], Awaitable[None]],
              context: Callable[[Any], dict] | None = None) -> None:
        """Run `handle(whistle, value, message)` as the agent `name` for every message of
        `topic` that decodes to `model` (validated with `context(message)` when given).

        A message that does not decode, or on which `handle` raises, goes to the dead-letter
        topic with the reason; the agent goes on."""

        async def agent(stream: Any) -> None:
            async for event in stream.events():
                message = event.message
                try:
                    value = decode(model, message.value, context(message) if context else None)
                    if isinstance(value, Rejected):
                        await self.dead_letter(message, value.reason)
                    else:
                        await handle(self, value, message)
                except asyncio.CancelledError:
                    # Stopped mid-message (SIGTERM). Faust acks the event when the stream
                    # closes, and its last commit would then skip a message whose table writes
                    # may be flushed but whose sends are not: the alarm would be lost. Marked
                    # done without the consumer's ack, its offset stays uncommitted and the
                    # partition's next owner processes it again (a replay, see triage).
                    message.acked = True
                    raise
                except Exception as exc:
                    self.app.log.exception("%s failed on %s[%s]@%s", name, message.topic,
                                           message.partition, message.offset)
                    await self.dead_letter(message, f"{name} failed: {exc!r}")

        self.app.agent(topic, name=name)(agent)

    async def dead_letter(self, message: Any, reason: str) -> None:
        """Park a message that cannot be processed on the dead-letter topic, with why."""
        letter = DeadLetter.of(message.value, message.key, reason, message.topic,
                               message.partition, message.offset, self.clock())
        self.metrics.dead_letters.labels(topic=message.topic).inc()
        self.app.log.warning("dead letter from %s[%s]@%s: %s", message.topic, message.partition,
                             message.offset, reason)
        await self.send(names.DLQ, message.topic, dump(letter))

    async def publish(self, incident: Incident | None = None, tasks: Iterable[Task] = (),
                      entries: Iterable[TimelineEntry] = ()) -> None:
        """Record and send what changed: the incident's snapshot, each task's on its
        department's topic, and the timeline entries.

        Every table write comes before the first await, so no other agent working on the same
        incident (the urgent lane, task updates) sees half of a change."""
        tasks = list(tasks)
        out: list[tuple[str, str, bytes]] = []
        if incident is not None:
            self.tables.incidents[incident.incident_id] = incident.model_dump(mode="json")
            out.append((names.INCIDENTS, incident.incident_id, dump(incident)))
        timers.track_verification(self, incident, tasks)
        timers.track_deadlines(self, tasks)
        for task in tasks:
            self.tables.tasks[task.task_id] = task.model_dump(mode="json")
            self.open_tasks.note(task.task_id, task.department, task.status)
            out.append((names.task_topic(task.department), task.incident_id, dump(task)))
        out += self.keep(entries)
        for topic, key, value in out:
            await self.send(topic, key, value)

    async def record(self, entries: Iterable[TimelineEntry]) -> None:
        """Keep timeline entries and send them on `whistle.timeline`."""
        for topic, key, value in self.keep(entries):
            await self.send(topic, key, value)

    def keep(self, entries: Iterable[TimelineEntry]) -> list[tuple[str, str, bytes]]:
        """Keep timeline entries (once each, one table write per incident); returns the
        messages for `whistle.timeline`. Called from the agents whose input is keyed by
        incident id, so the timelines table's partition is the incident's, like the incidents
        and tasks tables."""
        by_incident: dict[str, list[TimelineEntry]] = {}
        for e in entries:
            by_incident.setdefault(e.incident_id, []).append(e)
        out = []
        for incident_id, new in by_incident.items():
            kept = self.tables.timelines.get(incident_id) or []
            updated = kept
            for e in new:
                updated = append(updated, e)
            if updated is not kept:
                self.tables.timelines[incident_id] = updated
            out += [(names.TIMELINE, incident_id, dump(e)) for e in new]
        return out

    async def apply(self, step: IncidentStep) -> None:
        """Publish an incident step, and send what it asks of other incidents and of triage."""
        await self.publish(step.incident, step.new_tasks, step.entries)
        for task in step.new_tasks if step.changed else ():
            self.metrics.tasks.labels(department=task.department).inc()
        for update in step.updates:
            await self.send(names.INCIDENT_UPDATES, update.incident_id, dump(update))
        for event in step.site_events:
            await self.send(names.SITE_EVENTS, event.site_id, dump(event))
        if any(e.type == "incident_closed" for e in step.entries):
            await self.give_feedback(step.incident)

    async def give_feedback(self, incident: Incident) -> None:
        """Tell the people who reported a closed incident what was done (if anyone did)."""
        given = feedback_for(incident, self.tasks_of(incident), self.site(incident.site_id),
                             {d: dept.name for d, dept in self.departments.items()})
        if given is not None:
            await self.send(names.FEEDBACK, incident.incident_id, dump(given))
            await self.record([feedback_entry(given)])

    def tasks_of(self, incident: Incident | None) -> list[Task]:
        if incident is None:
            return []
        return [Task.model_validate(self.tables.tasks[t]) for t in incident.task_ids
                if self.tables.tasks.get(t) is not None]

    def rules_of(self, task: Task | None) -> list:
        """The escalation rules of the task's playbook step (none for a notice)."""
        if task is None or task.notice_of is not None:
            return []
        stored = self.tables.incidents.get(task.incident_id)
        loaded = self.library.version(PlaybookRef(**stored["playbook"])) if stored else None
        return rules_for(loaded.playbook if loaded else None, task.step)

    def locate(self, alarm: Any) -> Resolved:
        return resolve(alarm, self.registry)

    async def registry_read(self) -> None:
        """Wait until the registry holds what was on its topic when the worker started."""
        reader = self.registry_reader
        if reader is not None and not reader.caught_up.is_set():
            await reader.caught_up.wait()

    def answer(self, update_id: str, outcome: str, value: object) -> None:
        """Tell a waiting HTTP request (on this worker) how its update went: "ok" with the new
        state, "conflict" with why, or "unknown"."""
        waiter = self.waiters.pop(update_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result((outcome, value))

    def site(self, site_id: str) -> Site:
        """The registered site, or an ad-hoc one of type unknown."""
        return self.registry.site(site_id) or Site.ad_hoc(site_id)

    async def send_and_wait(self, topic: str, key: str, value: bytes) -> Any:
        return await self.app.producer.send_and_wait(topic, key.encode("utf-8"), value,
                                                     partition=None, timestamp=None,
                                                     headers=None)


def _new_app(settings: Settings) -> WhistleApp:
    app = WhistleApp(
        settings.app_id,
        broker=settings.broker,
        store=store_url(settings.store),
        datadir=str(settings.data),
        autodiscover=False,
        web_host=settings.host,
        web_bind=settings.host,
        web_port=settings.port,
        canonical_url=settings.canonical_url or None,
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_disable_leader=True,
        producer_acks=-1,
        producer_max_batch_size=settings.producer_batch_bytes,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=settings.poll_records,
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=settings.rebalance_timeout,
        broker_heartbeat_interval=min(1.0, settings.rebalance_timeout / 3),
        table_standby_replicas=0,
        web_application_options={"middlewares": [http_errors.json_errors]},
    )
    app.fetch_wait_ms = settings.fetch_wait_ms
    http_errors.install()
    return app


def store_options(settings: Settings) -> dict[str, int]:
    """RocksDB's sizes for one table partition (a fresh dict: Faust's store pops from it).

    Faust's defaults (a 64 MiB write buffer, up to 3 of them, and a 2 GiB block cache, per
    table partition, 7 tables x the partitions a worker holds) let the memtables keep nearly
    everything a worker wrote. Measured with `whistle bench --memory 100000` (4 partitions):
    RSS past 548 MiB and growing with Faust's defaults, 344 MiB with 4 MiB buffers and an
    8 MiB cache, 282 MiB with 2 MiB and 4 MiB, the defaults here (deploy/README.md, sizing)."""
    memtable, cache = settings.rocksdb_memtable_mb * 2**20, settings.rocksdb_cache_mb * 2**20
    return {"write_buffer_size": memtable, "max_write_buffer_number": 2,
            "target_file_size_base": memtable, "block_cache_size": cache,
            "block_cache_compressed_size": cache}


def build(settings: Settings, clock: Callable[[], datetime] = utc_now) -> Whistle:
    """Assemble a worker from settings: load playbooks, sites and departments, declare topics
    and tables, register the agents and the HTTP views."""
    departments = load_departments(settings.departments).by_id()
    access = settings.access(departments)
    library = PlaybookLibrary(settings.playbooks, departments)
    app = _new_app(settings)

    def topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw",
                         partitions=settings.partitions, internal=True, **kw)

    topics = Topics(
        alarms=topic(names.ALARMS), dlq=topic(names.DLQ), triaged=topic(names.TRIAGED),
        alarms_urgent=topic(names.ALARMS_URGENT), triaged_urgent=topic(names.TRIAGED_URGENT),
        incidents=topic(names.INCIDENTS), task_updates=topic(names.TASK_UPDATES),
        incident_updates=topic(names.INCIDENT_UPDATES),
        timeline=topic(names.TIMELINE), site_events=topic(names.SITE_EVENTS),
        escalations=topic(names.ESCALATIONS), deliveries=topic(names.DELIVERIES),
        feedback=topic(names.FEEDBACK),
        registry=topic(names.REGISTRY, compacting=True),
        tasks={d: topic(names.task_topic(d)) for d in departments},
    )

    def table(name: str) -> faust.Table:
        return app.Table(name, default=None, partitions=settings.partitions,
                         options=store_options(settings))

    registry = Registry()
    tables = Tables(alarms_seen=table("alarms-seen"), sites=table("sites"),
                    devices=table("devices"), incidents=table("incidents"), tasks=table("tasks"),
                    timelines=table("timelines"),
                    playbooks=app.GlobalTable("playbook-versions", default=None,
                                              partitions=settings.partitions,
                                              options=store_options(settings)))
    library.versions = tables.playbooks
    whistle = Whistle(settings=settings, app=app, topics=topics, tables=tables,
                      library=library, registry=registry,
                      departments=departments, metrics=Metrics(), access=access,
                      auth=Auth(access.tokens), clock=clock)

    whistle.metrics.open_tasks.count = lambda: whistle.open_tasks.counts(departments)
    whistle.registry_reader = RegistryReader(settings.broker, registry)
    if not whistle.auth.open:
        whistle.limits = RateLimits(settings.rate_limit, settings.rate_burst)
        whistle.strangers = RateLimits(settings.rate_limit, settings.rate_burst)

    @app.task
    async def declare_topics() -> None:
        for t in topics.all():
            await t.declare()
        whistle.topics_declared = True

    @app.task
    async def read_registry() -> None:
        await whistle.registry_reader.run()

    if settings.playbooks_watch > 0:
        @app.timer(settings.playbooks_watch)
        async def watch_playbooks() -> None:
            if whistle.library.changed_on_disk():
                try:
                    api.reload_playbooks(whistle)
                except PlaybookError:
                    pass  # logged and counted; the running set stays

    @app.on_rebalance_complete.connect
    async def on_rebalanced(sender: Any, **kwargs: Any) -> None:
        whistle.consuming = True

    @app.task
    async def freeze_startup_heap() -> None:
        """Move what the worker holds once it is up (modules, models, playbooks, the registry,
        recovered tables) out of the cyclic collector's sight. A full collection walks every
        tracked object and stops the worker meanwhile: measured in `whistle bench` at 200
        alarms/s, 52-159 ms each, the p99 alarm-to-task latency's tail (153 ms; 81 ms with
        this, 77 ms with no collector at all). Objects made later are collected as before."""
        await whistle.registry_read()
        while not whistle.consuming:
            await asyncio.sleep(0.1)
        gc.collect()
        gc.freeze()

    for stage in (triage, dispatch, task_updates, incident_updates, escalation, site_events,
                  timers):
        stage.register(whistle)
    api.register(whistle)
    whistle.feed = feed.register(whistle, clock)
    whistle.lookahead = lookahead.register(whistle)
    whistle.routing = Routing(whistle)
    webhooks.register(whistle)
    console.register(whistle)
    openapi.register(whistle)
    return whistle
