"""What the stages and views receive: `Whistle`, one worker's topics, tables, indexes and
helpers to publish what changed, and `WhistleApp`, the Faust app it runs in.

    >>> whistle.publish(incident, tasks, entries)   # tables written, messages sent

`streams.app.build()` assembles one; nothing here registers agents or views.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

import faust
from faust.exceptions import NotReady
from faust.transport.drivers import aiokafka as driver
from faust.types import RecordMetadata
from faust.types.tables import GlobalTableT, TableT
from pydantic import BaseModel

from agents.logic.command import called_in
from agents.logic.confirmation import pas_due
from agents.logic.deadlines import OpenTaskIndex, next_due, rules_for, summons_rules
from agents.logic.feedback import feedback_entry, feedback_for
from agents.logic.health import DueIndex
from agents.logic.incidents import IncidentStep
from agents.logic.locate import Registry, Resolved, resolve
from agents.logic.timelines import append
from playbooks.campaigns import LoadedCampaign
from playbooks.coordinator import PlaybookLibrary
from schemas import (
    Config,
    DeadLetter,
    Department,
    Incident,
    PlaybookRef,
    Site,
    Task,
    TimelineEntry,
    utc_now,
)
from schemas import topics as names
from schemas.codec import Rejected, decode, dump
from schemas.silence import Silence
from streams.metrics import Metrics
from streams.runtime.changelog import changes, in_stage, until_taken
from streams.runtime.creation import CreatesFirst
from streams.runtime.lookahead import Lookahead
from streams.runtime.produce import partitions, produce
from streams.runtime.registry import RegistryReader
from streams.runtime.transport import Transport, watched
from streams.settings import Settings

__all__ = ["Tables", "Topics", "Whistle", "WhistleApp"]


class WhistleApp(CreatesFirst, faust.App):
    """faust.App with the low-latency consumer (see `streams.runtime.transport`)."""

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
    silences: faust.TopicT
    campaigns: faust.TopicT
    tasks: dict[str, faust.TopicT]

    def all(self) -> list[faust.TopicT]:
        return [self.alarms, self.dlq, self.triaged, self.alarms_urgent, self.triaged_urgent,
                self.incidents, self.task_updates, self.incident_updates, self.timeline,
                self.site_events, self.escalations, self.deliveries, self.feedback,
                self.registry, self.silences, self.campaigns, *self.tasks.values()]


@dataclass
class Tables:
    alarms_seen: TableT        # alarm_id -> [incident, position, action, merges]  (like alarms)
    sites: TableT              # site_id -> SiteState JSON         (partitioned like whistle.alarms)
    devices: TableT            # device_id -> DeviceState list     (partitioned like whistle.alarms)
    incidents: TableT          # incident_id -> Incident JSON      (partitioned by incident_id)
    tasks: TableT              # task_id -> Task JSON              (partitioned by incident_id)
    timelines: TableT          # incident_id -> [TimelineEntry JSON]
    playbooks: GlobalTableT  # "id@content_hash" -> Playbook JSON, every version matched
    campaigns: TableT          # campaign_id -> Campaign JSON     (partitioned by campaign_id)
    campaign_sites: TableT     # "<campaign_id>/<site_id>" -> CampaignSite JSON (the same)


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
    lookahead: Lookahead | None = None  # the urgent lane's read-ahead (build() sets it)
    silences: dict[str, Silence] = field(default_factory=dict)  # whistle.silences, read whole
    campaign_playbooks: dict[str, LoadedCampaign] = field(default_factory=dict)  # by id, at start
    stages: dict[str, Callable[[Whistle, Any, Any], Awaitable[None]]] = field(
        default_factory=dict)  # topic -> the handle of its stage in this worker (`pass_on`)
    offers: dict[str, Callable[[Task, int | None], None]] = field(
        default_factory=dict)  # department -> its webhook sender's `offer`, if it has one

    async def send(self, topic: str, key: str, value: bytes,
                   headers: list[tuple[str, bytes]] | None = None) -> Awaitable[RecordMetadata]:
        """Hand a message to the producer (`produce`) without waiting for the broker's ack.
        Faust flushes the producer before it commits offsets, so an input is marked done once
        what it produced is on the broker (at-least-once); a full buffer waits (until_taken);
        in a stage, a record the client gives up stops the commits (transport.watched)."""
        sent = await until_taken(partial(produce, self.app, topic, key.encode(), value,
                                         headers), topic)
        if in_stage():
            watched(self.app, sent, topic)
        return sent

    def partition_of(self, topic: str, key: str) -> int | None:
        """The partition the producer sends `key` to on `topic`; None while the producer has
        not started or does not know the topic yet."""
        where = self.lands(topic)
        return where(key) if where is not None else None

    def lands(self, topic: str) -> Callable[[str], int] | None:
        """The producer's choice of partition for a key of `topic`, as a function (None:
        not known here); `lands(topic)(key) == partition`, for many keys at little cost."""
        try:
            producer = cast(driver.Producer, self.app.producer)._ensure_producer()
        except NotReady:
            return None
        known = partitions(producer, topic)
        if known is None:
            return None
        return lambda key: producer._partitioner(key.encode("utf-8"), *known)

    async def pass_on(self, topic: str, key: str, value: BaseModel, message: Any) -> None:
        """Send `value` on `topic`, or, where this worker runs that topic's stage and `key`
        goes to the partition `message` came from, run the stage on it now, in this step.

        The stage's tables are partitioned like its topic, and Faust writes a table on the
        partition of the message at hand: the same partition. Triage chooses new incident
        ids that land there (`incident_id_for`), so an alarm's incident is opened in the
        step that triaged it, with no record on `whistle.triaged` between the two. If the
        stage raises, the record is sent after all, and fails (to the dead-letter topic)
        where it would have failed before."""
        handle = self.stages.get(topic)
        if handle is not None and self.partition_of(topic, key) == message.partition:
            try:
                await handle(self, value, message)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.app.log.exception("%s's stage failed in the step of %s[%s]@%s; sent on",
                                       topic, message.topic, message.partition, message.offset)
        await self.send(topic, key, dump(value))

    def stage(self, topic: faust.TopicT, name: str, model: type[BaseModel],
              handle: Callable[[Whistle, Any, Any], Awaitable[None]],
              context: Callable[[Any], dict] | None = None) -> None:
        """Run `handle(whistle, value, message)` as the agent `name` for every message of
        `topic` that decodes to `model` (validated with `context(message)` when given).

        A message that does not decode, or on which `handle` raises, goes to the dead-letter
        topic with the reason; the agent goes on."""

        async def agent(stream: Any) -> None:
            async for event in stream.events():
                message = event.message
                with changes() as written:  # and what it sends is watched (self.send)
                    try:
                        value = decode(model, message.value,
                                       context(message) if context else None)
                        if isinstance(value, Rejected):
                            await self.dead_letter(message, value.reason)
                        else:
                            await handle(self, value, message)
                            await written.send(self.app)
                    except asyncio.CancelledError:
                        # Stopped mid-message (SIGTERM). Faust acks the event when the stream
                        # closes, and its last commit would then skip a message whose table
                        # writes may be flushed but whose sends are not: the alarm would be
                        # lost. Marked done without the consumer's ack, its offset stays
                        # uncommitted and the partition's next owner processes it again.
                        written.hand_back()
                        message.acked = True
                        raise
                    except Exception as exc:
                        self.app.log.exception("%s failed on %s[%s]@%s", name, message.topic,
                                               message.partition, message.offset)
                        await written.send(self.app)  # what it wrote before it failed is kept
                        await self.dead_letter(message, f"{name} failed: {exc!r}")

        self.app.agent(topic, name=name)(agent)
        self.stages[topic.get_topic_name()] = handle

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
        out: list[tuple[str, str, bytes, Task | None]] = []
        if incident is not None:
            self.tables.incidents[incident.incident_id] = incident.model_dump(mode="json")
            out.append((names.INCIDENTS, incident.incident_id, dump(incident), None))
        self.track_verification(incident, tasks)
        self.track_deadlines(tasks, incident)
        for task in tasks:
            self.tables.tasks[task.task_id] = task.model_dump(mode="json")
            self.open_tasks.note(task.task_id, task.department, task.status)
            out.append((names.task_topic(task.department), task.incident_id, dump(task), task))
        out += [(*m, None) for m in self.keep(entries)]
        for topic, key, value, carried in out:
            await self.send(topic, key, value)
            if carried is not None and (offer := self.offers.get(carried.department)):
                offer(carried, self.partition_of(topic, key))  # on its way: a webhook may POST it

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

    @property
    def lead(self) -> str:
        """The department that leads (统一指挥): told of rejections and unanswered whistles."""
        return next((d.id for d in self.departments.values() if d.lead), "safety_office")

    @property
    def report_within(self) -> dict[str, timedelta]:
        """Each department's 报到 deadline when the whistle calls it in."""
        return {d: dept.report_within for d, dept in self.departments.items()}

    def call_in(self, step: IncidentStep) -> None:
        """Add to the step the summons its playbook's whistle rules call for now (吹哨)."""
        loaded = self.library.version(step.incident.playbook)
        if loaded is None or not loaded.playbook.whistle or step.incident.status == "closed":
            return
        changed = {t.task_id: t for t in step.changed_tasks}
        tasks = [changed.get(t.task_id, t) for t in self.tasks_of(step.incident)]
        called_in(step, loaded.playbook, tasks, self.report_within, self.clock())

    async def apply(self, step: IncidentStep) -> None:
        """Publish an incident step (with the summons its playbook's whistle rules call for),
        and send what it asks of other incidents and of triage."""
        if step.changed:
            self.call_in(step)
        await self.publish(step.incident, [*step.new_tasks, *step.changed_tasks], step.entries)
        for task in step.new_tasks if step.changed else ():
            self.metrics.tasks.labels(department=task.department).inc()
        for update in step.updates:
            await self.send(names.INCIDENT_UPDATES, update.incident_id, dump(update))
        for event in step.site_events:
            await self.send(names.SITE_EVENTS, self.site(event.site_id).triage_key, dump(event))
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

    def track_verification(self, incident: Incident | None, tasks: Iterable[Task]) -> None:
        """Keep the PAS index (`verifications`) current with what was just published."""
        for task in tasks:
            if task.verification:
                due = pas_due(task)
                if due is None:
                    self.verifications.pop(task.incident_id, None)
                else:
                    self.verifications[task.incident_id] = due
        if incident is not None and incident.confirmation != "unconfirmed":
            self.verifications.pop(incident.incident_id, None)

    def track_deadlines(self, tasks: Iterable[Task], incident: Incident | None = None) -> None:
        """Keep the deadline index (`deadlines`) current with what was just published (with
        `incident`, the tasks' own: its playbook is not read back from the table)."""
        for task in tasks:
            due = next_due(task, self.rules_of(task, incident))
            if due is None:
                self.deadlines.cancel(task.task_id)
            else:
                self.deadlines.schedule(task.task_id, int(due.timestamp()))

    def playbook_reloads(self, outcome: str) -> None:
        """Count a playbook reload by outcome ("loaded" or "refused")."""
        self.metrics.playbook_reloads.labels(result=outcome).inc()

    def rules_of(self, task: Task | None, incident: Incident | None = None) -> list:
        """The escalation rules of the task's playbook step (none for a notice); `incident`
        is the task's, if the caller has it at hand."""
        if task is None or task.notice_of is not None:
            return []
        if task.summons:
            return summons_rules(self.lead)
        if incident is not None and incident.incident_id == task.incident_id:
            loaded = self.library.version(incident.playbook)
        else:
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
        state, "conflict" with why, "refused" with (field, why), or "unknown"."""
        waiter = self.waiters.pop(update_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result((outcome, value))

    def site(self, site_id: str) -> Site:
        """The registered site, or an ad-hoc one of type unknown."""
        return self.registry.site(site_id) or Site.ad_hoc(site_id)

    async def send_and_wait(self, topic: str, key: str, value: bytes) -> Any:
        return await self.app.producer.send_and_wait(
            topic, key.encode("utf-8"), value, partition=None, timestamp=None, headers=None)
