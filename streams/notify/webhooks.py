"""Webhooks: each task on `whistle.tasks.<department>`, and each feedback on `whistle.feedback`,
POSTed and signed to the system a department (or the 12345 hotline) runs itself.

One `WebhookSender` per target reads its topic in a consumer group of its own, delivers up to
`max_in_flight` records at once, retries what may succeed later, records every attempt on
`whistle.deliveries` and escalates a delivery that failed. Delivery is at least once: a
receiver checks the signature and drops repeats by `X-Whistle-Delivery`. What a sender puts
on the broker (attempts, escalations, dead letters) is not waited for one by one: its offsets
are committed only once the broker has taken all of it (`_commit`).

A stage's task is offered to its department's sender in the same worker as it is published
(`offer`, by `Whistle.publish`) and POSTed at once, not a broker round and a fetch later; the
consumer, reading the record, waits for that delivery instead of making another. One offer at
a time, on a partition the sender holds: a burst goes by the consumer in batches (an offer for
every task cost 12% of the webhooks a second in `whistle bench --peer`), and no other
worker's sender POSTs it too. A worker that dies before the record is on the broker has not
committed its input: its successor makes the same task (id, revision) again, which receivers
drop by `X-Whistle-Delivery`.

How one record is delivered (signing, retries, backoff) is `streams.notify.delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from pydantic import ValidationError

from schemas import FEEDBACK_TARGET, DeadLetter, DeliveryAttempt, Escalation, Task, Webhook, topics
from schemas.codec import Rejected, dump
from streams.kafka.broker import bootstrap_servers
from streams.metrics import Metrics
from streams.notify.delivery import Delivery, Recent, deliver
from streams.runtime import longpoll
from streams.runtime.eager import eager

if TYPE_CHECKING:
    from streams.worker import Whistle

__all__ = ["WebhookSender", "register"]

log = logging.getLogger(__name__)

Send = Callable[[str, str, bytes], Awaitable[Any]]
_REMEMBERED = 100_000  # delivered subjects a sender keeps, to drop replays

# How long a fetch waits that leaves a partition out (Kafka answers at once when a record
# comes; aiokafka sends no new fetch for a partition just handed out while one waits, so its
# next record may wait this long); one that asks for every partition waits longer
# (`longpoll`): an idle target's consumer polls 4 times a second (50 until issue 21).
FETCH_WAIT_MS = 100

COMMIT_EVERY = 0.5
"""Seconds between a sender's offset commits while it delivers (and at every rebalance and
stop). It committed after every batch, often a record or two: a broker round each. A crash
redelivers at most this much more, which receivers drop by `X-Whistle-Delivery`."""


class _Flight:
    """The records one consumer has started, per partition in offset order. What may be
    committed is each partition's finished prefix, so a crash redelivers whatever was not
    finished (and perhaps some that were)."""

    def __init__(self) -> None:
        self.parts: dict[TopicPartition, dict[int, asyncio.Task]] = {}
        self.active = 0
        self.failure: BaseException | None = None
        self.room = asyncio.Event()  # set whenever a record finishes

    def start(self, tp: TopicPartition, offset: int, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.parts.setdefault(tp, {})[offset] = task
        self.active += 1
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.active -= 1
        self.room.set()
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()

    def committable(self) -> dict[TopicPartition, int]:
        """Per partition whose finished prefix grew: the offset to commit (the next to read)."""
        out: dict[TopicPartition, int] = {}
        for tp, started in self.parts.items():
            while started:
                offset, task = next(iter(started.items()))
                if not task.done() or task.cancelled() or task.exception() is not None:
                    break
                del started[offset]
                out[tp] = offset + 1
        return out

    def forget(self, tps: Any) -> None:
        """Give up partitions (revoked, or the consumer is going): cancel what is under way."""
        for tp in list(tps):
            for task in self.parts.pop(tp, {}).values():
                task.cancel()

    async def cancel(self) -> None:
        """Stop everything under way and wait until it has stopped; the finished prefix stays
        committable."""
        tasks = [t for started in self.parts.values() for t in started.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class _Offer:
    subject: str
    partition: int
    work: asyncio.Future


class WebhookSender:
    """Delivers one target's topic (`whistle.tasks.<department>`, or `whistle.feedback` for
    the feedback target) to its webhook. It reads in the consumer group
    `<app_id>-webhooks-<target>`, so with several workers each record is delivered by one of
    them, and with its own consumer and HTTP client, so a slow endpoint delays no other target.

        sender = WebhookSender(settings.broker, settings.app_id, "police", hook,
                               send=producer_send, metrics=Metrics(), clock=utc_now)
        await sender.run()   # until cancelled

    `send(topic, key, value)` puts a record on the broker (DeliveryAttempt, Escalation): it
    returns the broker's answer to come (a future, awaited before the next commit), or
    anything else once answered. `ready` is set while the sender owns partitions of its
    topic."""

    def __init__(self, broker: str, app_id: str, target: str, hook: Webhook, send: Send,
                 metrics: Metrics, clock: Callable[[], datetime]) -> None:
        self.servers = bootstrap_servers(broker)
        self.target = target
        self.hook = hook
        self.send = send
        self.metrics = metrics
        self.clock = clock
        self.topic = topics.FEEDBACK if target == FEEDBACK_TARGET else topics.task_topic(target)
        self.group = f"{app_id}-webhooks-{target}"
        self.delivered = Recent(_REMEMBERED)
        self.under_way: dict[str, asyncio.Future] = {}
        self.unanswered: list[asyncio.Future] = []  # what `send` put, the broker's answers
        self.ready = asyncio.Event()
        self.held: set[int] = set()  # partitions of the topic the consumer holds now
        self.offered: _Offer | None = None  # the offered delivery whose record is not read yet
        self.client: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Deliver until cancelled; if the broker goes away, read again a second later. The
        consumer and the HTTP client are closed on the way out."""
        connector = aiohttp.TCPConnector(limit=self.hook.max_in_flight)
        timeout = aiohttp.ClientTimeout(total=None)  # each attempt has its own (`deliver`)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
            self.client = client
            while True:
                try:
                    await self._consume(client)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("webhooks %s: %r; reading again in 1 s", self.target, exc)
                    await asyncio.sleep(1.0)

    def _consumer(self) -> AIOKafkaConsumer:
        # 6 s is Kafka's smallest session timeout (group.min.session.timeout.ms): a sender that
        # dies is replaced that soon, and a rebalance waits no longer for a slow member.
        return AIOKafkaConsumer(bootstrap_servers=self.servers, group_id=self.group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                session_timeout_ms=6000, rebalance_timeout_ms=6000,
                                heartbeat_interval_ms=1000, fetch_max_wait_ms=FETCH_WAIT_MS,
                                metadata_max_age_ms=5000)

    async def _consume(self, client: aiohttp.ClientSession) -> None:
        consumer = self._consumer()
        flight = _Flight()
        self.unanswered = []  # a last consumer's: redelivered from its last commit, put again
        try:
            await consumer.start()
            longpoll.adapt(consumer._fetcher, short_ms=FETCH_WAIT_MS)
            await self._topic_exists(consumer)
            consumer.subscribe([self.topic], listener=_Rebalance(self, consumer, flight))
            loop, next_commit = asyncio.get_running_loop(), 0.0
            while True:
                if flight.failure is not None:
                    raise flight.failure
                room = self.hook.max_in_flight - flight.active
                # Paused, the consumer still polls, so the group does not think it hung; but
                # it goes on the moment a record finishes, not when a poll times out.
                (consumer.resume if room > 0 else consumer.pause)(*consumer.assignment())
                if room <= 0:
                    flight.room.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(flight.room.wait(), 0.2)
                batch = await consumer.getmany(timeout_ms=200 if room > 0 else 0,
                                               max_records=max(room, 1))
                for tp, records in batch.items():
                    for record in records:
                        flight.start(tp, record.offset, self._handle(client, record))
                now = loop.time()
                if now >= next_commit:
                    next_commit = now + COMMIT_EVERY
                    await self._commit(consumer, flight.committable())
        finally:
            self.ready.clear()
            if self.offered is not None:  # the next consumer delivers it
                self.offered.work.cancel()
            self.held, self.offered = set(), None
            await self._commit_on_exit(consumer, flight)
            await consumer.stop()

    async def _commit_on_exit(self, consumer: AIOKafkaConsumer, flight: _Flight) -> None:
        """Stop what is under way and commit what finished, if the broker still answers."""
        await flight.cancel()
        try:
            async with asyncio.timeout(2.0):
                await self._commit(consumer, flight.committable())
        except Exception as exc:  # going anyway; the next owner redelivers from the last commit
            log.info("webhooks %s: no commit on the way out: %r", self.target, exc)

    async def _topic_exists(self, consumer: AIOKafkaConsumer) -> None:
        """Wait for the topic: on a broker that creates topics on demand, subscribing to a
        missing one would create it with the broker's partition count, not the worker's."""
        waited = False
        while self.topic not in await consumer.topics():
            if not waited:
                log.info("webhooks %s: waiting for topic %s", self.target, self.topic)
            waited = True
            await asyncio.sleep(1.0)

    async def _put(self, topic: str, key: str, value: bytes) -> None:
        """`send`, its answer awaited before the next commit."""
        answer = await self.send(topic, key, value)
        if isinstance(answer, asyncio.Future):
            self.unanswered.append(answer)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict) -> None:
        """Commit `offsets` once the broker has taken what the sender put. If it refused
        some, raise, and so does every later commit of this consumer (nothing more is
        committed; the next consumer redelivers from the last commit)."""
        if not offsets:
            return
        n = len(self.unanswered)
        try:
            await asyncio.gather(*self.unanswered[:n])
        except Exception:  # redelivered by the next consumer: POSTed and recorded again
            self.delivered = Recent(_REMEMBERED)
            raise
        del self.unanswered[:n]
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # a rebalance took the partitions; their new owner delivers from the last commit
            log.warning("webhooks %s: commit refused: %r", self.target, exc)

    def offer(self, task: Task, partition: int | None) -> None:
        """Deliver `task`, just put on `partition` of the topic by a stage, now (module text)."""
        client, subject = self.client, f"{task.task_id}:{task.revision}"
        if (client is None or client.closed or partition not in self.held or self.offered
                or subject in self.under_way or subject in self.delivered):
            return
        try:  # run in the stage's step until it waits: the POST is sent before the stage goes on
            work = eager(self._deliver_once(client, Delivery.of_task(self.target, task)))
        except Exception as exc:  # not the stage's failure; the consumer delivers the record
            log.warning("webhooks %s: an offered delivery failed: %r", self.target, exc)
            return
        if work is not None:
            self.offered = _Offer(subject, partition, work)
            work.add_done_callback(self._offer_done)

    def _offer_done(self, work: asyncio.Future) -> None:  # its record fails too, when read
        if not work.cancelled() and (exc := work.exception()) is not None:
            log.warning("webhooks %s: an offered delivery failed: %r", self.target, exc)

    async def _handle(self, client: aiohttp.ClientSession, record: ConsumerRecord) -> None:
        """Deliver one record, or say why not; either way the record is done."""
        offered = self.offered
        if offered is not None and offered.subject == Delivery.subject_of(record.value):
            self.offered = None  # delivered, or being delivered, since it was published
            return await offered.work
        delivery = Delivery.of(self.target, record.value)
        if isinstance(delivery, Rejected):
            log.warning("webhooks %s: skipped %s[%d]@%d: %s", self.target, record.topic,
                        record.partition, record.offset, delivery.reason)
            letter = DeadLetter.of(record.value, record.key, f"webhooks {self.target}: "
                                   f"{delivery.reason}", record.topic, record.partition,
                                   record.offset, self.clock())
            await self._put(topics.DLQ, record.topic, dump(letter))
            return
        await self._deliver_once(client, delivery)

    async def _deliver_once(self, client: aiohttp.ClientSession, delivery: Delivery) -> None:
        """Deliver, unless the same subject has been delivered or is being delivered (then
        see how that went)."""
        subject = delivery.subject
        while (earlier := self.under_way.get(subject)) is not None:
            await asyncio.wait([earlier])  # the same record again: see how the first one went
        if subject in self.delivered:
            return  # a replay (a restart, a rebalance): the receiver already has it
        self.under_way[subject] = done = asyncio.get_running_loop().create_future()
        try:
            await self._deliver(client, delivery)
        finally:
            del self.under_way[subject]
            done.set_result(None)

    async def _deliver(self, client: aiohttp.ClientSession, delivery: Delivery) -> None:
        last = await deliver(client, self.target, self.hook, delivery.delivery_id,
                             delivery.incident_id, delivery.task_id, delivery.body,
                             self._record, self.clock)
        if last.result == "delivered":
            self.delivered.add(delivery.subject)
        else:
            await self._escalate(delivery, last)

    async def _record(self, attempt: DeliveryAttempt) -> None:
        self.metrics.webhook_attempts.labels(target=self.target, result=attempt.result).inc()
        self.metrics.webhook_seconds.labels(target=self.target).observe(
            attempt.duration_ms / 1000)
        await self._put(topics.DELIVERIES, self.target, dump(attempt))

    async def _escalate(self, delivery: Delivery, last: DeliveryAttempt) -> None:
        """Ask for the task (or the feedback) to be escalated: its target never took it."""
        detail = {"target": self.target, "url": str(self.hook.url), "attempts": last.attempt,
                  "error": last.error or f"HTTP {last.status_code}"}
        try:
            escalation = Escalation(
                escalation_id=Escalation.delivery_id(self.target, delivery.subject),
                incident_id=delivery.incident_id, task_id=delivery.task_id,
                cause="delivery_failed", at=self.clock(), detail=detail)
        except ValidationError as exc:  # an id too long for one: say so, do not loop on it
            log.error("webhooks %s: cannot escalate %s: %s", self.target, delivery.delivery_id,
                      exc)
            return
        log.warning("webhooks %s: %s failed after %d attempts (%s)", self.target,
                    delivery.delivery_id, last.attempt, detail["error"])
        await self._put(topics.ESCALATIONS, delivery.incident_id, dump(escalation))


class _Rebalance(ConsumerRebalanceListener):
    """Before partitions go: commit what is finished and stop what is under way (their new
    owner delivers from the commit)."""

    def __init__(self, sender: WebhookSender, consumer: AIOKafkaConsumer,
                 flight: _Flight) -> None:
        self.sender = sender
        self.consumer = consumer
        self.flight = flight

    async def on_partitions_revoked(self, revoked: Any) -> None:
        sender = self.sender
        sender.ready.clear()
        gone = {tp.partition for tp in revoked}
        sender.held -= gone  # their new owner delivers them again; an offer here finishes
        if sender.offered is not None and sender.offered.partition in gone:
            sender.offered = None
        await sender._commit(self.consumer, self.flight.committable())
        self.flight.forget(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.sender.held = {tp.partition for tp in self.consumer.assignment()}
        if assigned:
            self.sender.ready.set()


def register(w: Whistle) -> None:
    """Run a WebhookSender for every webhook in `w.access` while the app runs."""
    for target, hook in w.access.webhooks.items():
        sender = WebhookSender(w.settings.broker, w.settings.app_id, target, hook,
                               send=w.send,
                               metrics=w.metrics, clock=w.clock)
        if target != FEEDBACK_TARGET:
            w.offers[target] = sender.offer
        w.app.task(_runner(sender))


def _runner(sender: WebhookSender) -> Callable[[], Awaitable[None]]:
    async def deliver_webhooks() -> None:
        await sender.run()  # Faust cancels it when the app stops; run() closes what it opened

    deliver_webhooks.__name__ = deliver_webhooks.__qualname__ = f"webhooks_{sender.target}"
    return deliver_webhooks
