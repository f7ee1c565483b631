"""Webhooks: signing and backoff, the delivery core against a real HTTP receiver on 127.0.0.1,
and WebhookSender end to end on the real embedded broker."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import time
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaTimeoutError

from schemas import Config, DeliveryAttempt, Escalation, Feedback, Task, Webhook, topics
from schemas.codec import Rejected, dump
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.metrics import Metrics
from streams.notify.delivery import (
    Delivery,
    backoff,
    deliver,
    retry_after,
    sign,
    task_body,
    verdict,
    verify,
)
from streams.notify.webhooks import WebhookSender, register
from tests.conftest import T0, FixedClock
from tests.integration.kafka import read_topic

SECRET = "police-webhook-secret"
NOTE = "请立即到场处置，注意实验室危化品"


def make_task(n: int = 1, department: str = "police", revision: int = 1) -> Task:
    return Task(task_id=f"inc-{n}.{department}", incident_id=f"inc-{n}", department=department,
                step="respond", action="到场核查", ack_due=T0 + timedelta(minutes=5),
                complete_due=T0 + timedelta(minutes=30), created_at=T0, updated_at=T0,
                revision=revision, site_id="jyh-yinfeng-lab-3", level="III",
                site_name="银峰实验楼3层", note=NOTE)


def make_hook(url: str, **over: object) -> Webhook:
    data = {"url": url, "secret": SECRET, "timeout": 1.0, "attempts": 3, "backoff": 0.05,
            "max_backoff": 1.0, **over}
    return Webhook.model_validate(data)


# -- pure --------------------------------------------------------------------------------------

def test_sign_is_hmac_sha256_of_timestamp_dot_body_and_verify_checks_it():
    body = '{"type":"task","note":"到场"}'.encode()
    expected = hmac.new(SECRET.encode(), b"1684217000." + body, hashlib.sha256).hexdigest()
    signature = sign(SECRET, 1684217000, body)
    assert signature == "sha256=" + expected
    assert verify(SECRET, "1684217000", body, signature)
    assert not verify("another-secret-value", 1684217000, body, signature)
    assert not verify(SECRET, 1684217001, body, signature)
    assert not verify(SECRET, 1684217000, body + b" ", signature)
    assert not verify(SECRET, 1684217000, body, "sha256=é")  # no TypeError on non-ASCII


def test_backoff_doubles_up_to_max_backoff_and_honours_retry_after_within_it():
    hook = make_hook("http://x.test/", backoff="1s", max_backoff="5s")
    assert [backoff(hook, n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert backoff(hook, 1, retry_after=3) == 3
    assert backoff(hook, 4, retry_after=0) == 0
    assert backoff(hook, 1, retry_after=120) == 5


def test_retry_after_is_read_from_429_and_503_only():
    assert retry_after(429, {"Retry-After": "7"}) == 7.0
    assert retry_after(503, {"Retry-After": "2"}) == 2.0
    assert retry_after(500, {"Retry-After": "7"}) is None
    assert retry_after(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after(429, {"Retry-After": "-1"}) is None
    assert retry_after(429, {}) is None


@pytest.mark.parametrize("status, result", [
    (200, "delivered"), (202, "delivered"), (204, "delivered"),
    (500, "retry"), (502, "retry"), (503, "retry"), (408, "retry"), (429, "retry"),
    (400, "failed"), (401, "failed"), (403, "failed"), (404, "failed"), (422, "failed"),
    (301, "failed"),
])
def test_verdict(status, result):
    assert verdict(status) == result


def test_deliveries_are_made_from_tasks_and_feedback_with_chinese_as_is():
    delivery = Delivery.of("police", dump(make_task(revision=2)))
    assert delivery.delivery_id == "police:inc-1.police:2"
    assert (delivery.subject, delivery.incident_id, delivery.task_id) == (
        "inc-1.police:2", "inc-1", "inc-1.police")
    assert NOTE.encode() in delivery.body
    body = json.loads(delivery.body)
    assert body["type"] == "task" and Task.model_validate(body["task"]) == make_task(revision=2)

    feedback = Feedback(feedback_id="fb-1", incident_id="inc-1", site_id="s", reporters=[],
                        alarm_ids=["a-1"], closed_at=T0, close_reason="处置完毕", done=[],
                        message="已处置完毕，感谢您的反映")
    delivery = Delivery.of("feedback", dump(feedback))
    assert (delivery.delivery_id, delivery.subject, delivery.task_id) == (
        "feedback:fb-1", "fb-1", None)
    assert json.loads(delivery.body) == {"type": "feedback",
                                         "feedback": feedback.model_dump(mode="json")}
    assert "感谢您的反映".encode() in delivery.body
    assert isinstance(Delivery.of("police", b"not json"), Rejected)
    assert isinstance(Delivery.of("feedback", dump(make_task())), Rejected)


def test_register_runs_one_sender_task_per_webhook():
    tasks = []
    w = SimpleNamespace(
        access=Config(webhooks={"police": make_hook("http://p.test/"),
                                "feedback": make_hook("http://f.test/")}),
        settings=SimpleNamespace(broker="kafka://127.0.0.1:1", app_id="whistle"),
        app=SimpleNamespace(task=tasks.append), metrics=Metrics(), clock=FixedClock(),
        send=None, offers={})
    register(w)
    assert sorted(t.__name__ for t in tasks) == ["webhooks_feedback", "webhooks_police"]
    assert all(inspect.iscoroutinefunction(t) for t in tasks)
    assert list(w.offers) == ["police"]  # tasks are offered; feedback is not a stage's task


# -- the delivery core against a real receiver ------------------------------------------------

@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A department's own system on 127.0.0.1: records every POST and answers as its path's
    script says (the script's last answer repeats)."""

    def __init__(self) -> None:
        self.port = 0
        self.seen: list[Seen] = []
        self.scripts: dict[str, list[Answer]] = {}
        self.answered: dict[str, int] = {}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.path, dict(request.headers), await request.read(),
                              time.monotonic()))
        script = self.scripts.get(request.path, [Answer()])
        answer = script[min(len(self.at(request.path)), len(script)) - 1]
        await asyncio.sleep(answer.delay)
        self.answered[request.path] = self.answered.get(request.path, 0) + 1
        return web.Response(status=answer.status, headers=answer.headers)


@pytest.fixture
async def receiver():
    r = Receiver()
    app = web.Application()
    app.router.add_post("/{target}", r.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    r.port = runner.addresses[0][1]
    yield r
    await runner.cleanup()


class Attempts(list):
    """A `record` callback that keeps what it is given."""

    async def __call__(self, attempt: DeliveryAttempt) -> None:
        self.append(attempt)


class Sleeps(list):
    """A `sleep` that keeps the waits asked for, and waits them."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await asyncio.sleep(seconds)


async def deliver_one(hook: Webhook, body: bytes = b'{"type":"task"}'):
    attempts, sleeps = Attempts(), Sleeps()
    async with aiohttp.ClientSession() as client:
        last = await deliver(client, "police", hook, "police:inc-1.police:1", "inc-1",
                             "inc-1.police", body, attempts, FixedClock(), sleep=sleeps)
    assert attempts[-1] == last
    return attempts, sleeps


async def test_the_receiver_verifies_the_signature_with_the_secret_and_timestamp(receiver):
    body = Delivery.of("police", dump(make_task())).body
    attempts, _ = await deliver_one(make_hook(receiver.url("/police")), body)
    [seen] = receiver.seen
    headers = seen.headers
    assert seen.body == body and json.loads(seen.body.decode("utf-8"))["task"]["note"] == NOTE
    assert headers["X-Whistle-Timestamp"] == str(int(T0.timestamp()))
    assert verify(SECRET, headers["X-Whistle-Timestamp"], seen.body,
                  headers["X-Whistle-Signature"])
    assert not verify("not-the-police-secret", headers["X-Whistle-Timestamp"], seen.body,
                      headers["X-Whistle-Signature"])
    assert headers["X-Whistle-Delivery"] == "police:inc-1.police:1"
    assert headers["X-Whistle-Attempt"] == "1"
    assert headers["User-Agent"] == "whistle-webhooks"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    [attempt] = attempts
    assert (attempt.result, attempt.status_code, attempt.attempt) == ("delivered", 200, 1)
    assert attempt.url == receiver.url("/police") and attempt.at == T0


async def test_failing_twice_then_succeeding_takes_three_attempts_with_doubling_waits(receiver):
    receiver.scripts["/police"] = [Answer(500), Answer(503), Answer(200)]
    attempts, sleeps = await deliver_one(make_hook(receiver.url("/police"), attempts=5))
    assert [(a.attempt, a.status_code, a.result) for a in attempts] == [
        (1, 500, "retry"), (2, 503, "retry"), (3, 200, "delivered")]
    assert sleeps == [0.05, 0.1]
    seen = receiver.at("/police")
    assert [s.headers["X-Whistle-Attempt"] for s in seen] == ["1", "2", "3"]
    first, second = seen[1].at - seen[0].at, seen[2].at - seen[1].at
    assert 0.05 <= first < 0.3 and 0.1 <= second < 0.35 and second > first


async def test_a_receiver_slower_than_the_timeout_counts_as_a_retry(receiver):
    receiver.scripts["/slow-once"] = [Answer(delay=1.0), Answer()]
    attempts, _ = await deliver_one(make_hook(receiver.url("/slow-once"), timeout="200ms"))
    assert [(a.result, a.status_code, a.error) for a in attempts] == [
        ("retry", None, "timeout after 0.2 s"), ("delivered", 200, None)]
    assert 190 <= attempts[0].duration_ms < 900

    receiver.scripts["/slow"] = [Answer(delay=1.0)]
    attempts, _ = await deliver_one(make_hook(receiver.url("/slow"), timeout="200ms",
                                              attempts=2))
    assert [(a.result, a.error) for a in attempts] == [
        ("retry", "timeout after 0.2 s"), ("failed", "timeout after 0.2 s")]


async def test_a_400_fails_at_once(receiver):
    receiver.scripts["/police"] = [Answer(400), Answer(200)]
    attempts, sleeps = await deliver_one(make_hook(receiver.url("/police"), attempts=5))
    assert [(a.attempt, a.status_code, a.result) for a in attempts] == [(1, 400, "failed")]
    assert len(receiver.seen) == 1 and sleeps == []


async def test_retry_after_is_honoured_up_to_max_backoff(receiver):
    receiver.scripts["/busy"] = [Answer(429, headers={"Retry-After": "30"}), Answer()]
    receiver.scripts["/down"] = [Answer(503, headers={"Retry-After": "0"}), Answer()]
    attempts, sleeps = await deliver_one(make_hook(receiver.url("/busy"), max_backoff="300ms"))
    assert [a.result for a in attempts] == ["retry", "delivered"] and sleeps == [0.3]
    attempts, sleeps = await deliver_one(make_hook(receiver.url("/down"), backoff="200ms"))
    assert [a.result for a in attempts] == ["retry", "delivered"] and sleeps == [0.0]


async def test_when_every_attempt_fails_the_delivery_fails(receiver):
    receiver.scripts["/police"] = [Answer(500)]
    attempts, sleeps = await deliver_one(make_hook(receiver.url("/police"), attempts=3))
    assert [(a.status_code, a.result) for a in attempts] == [
        (500, "retry"), (500, "retry"), (500, "failed")]
    assert len(receiver.seen) == 3 and sleeps == [0.05, 0.1]

    attempts, _ = await deliver_one(make_hook(f"http://127.0.0.1:{free_port()}/", attempts=2))
    assert [a.result for a in attempts] == ["retry", "failed"]
    assert all(a.status_code is None and a.error.startswith("ClientConnectorError")
               for a in attempts)


# -- WebhookSender on the real embedded broker ------------------------------------------------

@pytest.fixture
def broker(tmp_path):
    with EmbeddedBroker(tmp_path / "broker") as b:
        yield b.url


@asynccontextmanager
async def kafka(broker: str, *departments: str):
    """Create the topics (4 partitions) and yield a `send(topic, key, value)` on a producer."""
    servers = broker.removeprefix("kafka://")
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        names = [*map(topics.task_topic, departments), topics.DELIVERIES, topics.ESCALATIONS,
                 topics.DLQ]  # as the worker declares them: the broker creates none itself
        await admin.create_topics([NewTopic(n, num_partitions=4, replication_factor=1)
                                   for n in names])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        yield lambda topic, key, value: producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


@asynccontextmanager
async def running(*senders: WebhookSender):
    """Run the senders until the block ends; fail unless each joins its group in 20 s."""
    tasks = [asyncio.create_task(s.run()) for s in senders]
    try:
        async with asyncio.timeout(20):
            await asyncio.gather(*(s.ready.wait() for s in senders))
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task


def sender(broker: str, target: str, hook: Webhook, send, metrics: Metrics) -> WebhookSender:
    return WebhookSender(broker, "test", target, hook, send=send, metrics=metrics,
                         clock=FixedClock())


async def until(probe, timeout: float, what: str, ok=bool):
    """Poll `probe()` (awaited if it returns an awaitable) until `ok` says yes; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        value = await value if inspect.isawaitable(value) else value
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"no {what} in {timeout} s; last {value!r}"
        await asyncio.sleep(0.05)


async def test_sender_delivers_each_task_once_signed_and_records_every_attempt(broker, receiver):
    metrics = Metrics()
    tasks = [make_task(1), make_task(2), make_task(1), make_task(1, revision=2)]
    async with kafka(broker, "police") as send:
        police = sender(broker, "police", make_hook(receiver.url("/police"), max_in_flight=4),
                        send, metrics)
        async with running(police):
            for task in tasks[:2]:
                await send(topics.task_topic("police"), task.incident_id, dump(task))
            await send(topics.task_topic("police"), "inc-x", b"not a task")
            for task in tasks[2:]:
                await send(topics.task_topic("police"), task.incident_id, dump(task))
            await until(lambda: len(receiver.seen) >= 3, 10, "three deliveries")
            # the duplicate and the record that is no task are done (committed) too
            await until(lambda: committed_total(broker, police.group), 10,
                        "commit of all five records", ok=lambda n: n == 5)
            await asyncio.sleep(0.5)  # long enough for a fourth delivery to show up
    ids = [s.headers["X-Whistle-Delivery"] for s in receiver.seen]
    assert sorted(ids) == ["police:inc-1.police:1", "police:inc-1.police:2",
                           "police:inc-2.police:1"]
    for seen in receiver.seen:
        assert verify(SECRET, seen.headers["X-Whistle-Timestamp"], seen.body,
                      seen.headers["X-Whistle-Signature"])
        assert json.loads(seen.body.decode("utf-8"))["task"]["site_name"] == "银峰实验楼3层"
        assert NOTE.encode("utf-8") in seen.body
    records = await read_topic(broker.removeprefix("kafka://"), topics.DELIVERIES, settle=0.3)
    attempts = [DeliveryAttempt.model_validate_json(r.value) for r in records]
    assert {r.key for r in records} == {b"police"}
    assert sorted(a.delivery_id for a in attempts) == sorted(ids)
    assert {(a.result, a.status_code, a.attempt) for a in attempts} == {("delivered", 200, 1)}
    assert metrics.registry.get_sample_value(
        "whistle_webhook_attempts_total", {"target": "police", "result": "delivered"}) == 3


async def test_offsets_are_committed_only_once_the_broker_took_the_attempts(broker, receiver):
    """The sender does not wait for each attempt's record; it commits only what the broker
    took. A refused record stops its commits: the next consumer redelivers."""
    loop = asyncio.get_running_loop()
    answers: list[asyncio.Future] = []
    async with kafka(broker, "police") as put:
        async def send(topic: str, key: str, value: bytes) -> asyncio.Future:
            answers.append(loop.create_future())  # the broker's answer, given by hand below
            return answers[-1]

        police = sender(broker, "police", make_hook(receiver.url("/police")), send, Metrics())
        async with running(police):
            await put(topics.task_topic("police"), "inc-1", dump(make_task(1)))
            await until(lambda: answers, 10, "the attempt's record put")
            await asyncio.sleep(1.2)  # two commit intervals: nothing committed unanswered
            assert await committed_total(broker, police.group) == 0
            answers[0].set_exception(KafkaTimeoutError())  # refused: still nothing committed
            await asyncio.sleep(1.2)
            assert await committed_total(broker, police.group) == 0
            await until(lambda: len(answers) > 1, 10, "the delivery made again")
            for answer in answers[1:]:
                answer.set_result(None)
            await until(lambda: committed_total(broker, police.group), 10, "the commit",
                        ok=lambda n: n == 1)
    assert [s.headers["X-Whistle-Delivery"] for s in receiver.seen] == [
        "police:inc-1.police:1"] * 2  # the receiver drops the repeat by this id


async def test_an_offered_task_is_posted_at_once_and_its_record_waits_for_that_delivery(
        broker, receiver):
    """A stage's task offered as it is published is POSTed once, before the consumer reads
    its record; the record is committed only once that delivery has ended. An offer while
    that record is unread, or on a partition the sender does not hold, is declined, and the
    consumer delivers it."""
    receiver.scripts["/police"] = [Answer(delay=1.0)]
    first, second = make_task(1), make_task(2)
    topic = topics.task_topic("police")
    async with kafka(broker, "police") as send:
        police = sender(broker, "police", make_hook(receiver.url("/police"), timeout=5.0),
                        send, Metrics())
        async with running(police):
            await until(lambda: police.held, 10, "the partitions held",
                        ok=lambda held: held == {0, 1, 2, 3})
            police.offer(first, 0)  # as Whistle.publish does, once the record is enqueued
            police.offer(second, 0)  # one offer at a time: declined while the first is unread
            assert police.offered is not None and police.offered.subject == "inc-1.police:1"
            [seen] = await until(lambda: receiver.at("/police"), 2, "the offered POST")
            await send(topic, first.incident_id, dump(first))
            await asyncio.sleep(0.6)  # read, and a commit interval: the POST is not answered
            assert receiver.answered.get("/police", 0) == 0
            assert await committed_total(broker, police.group) == 0
            await until(lambda: committed_total(broker, police.group), 10, "the commit",
                        ok=lambda n: n == 1)
            assert receiver.answered["/police"] == 1
            assert police.offered is None  # the consumer took the offer over when it read it

            police.offer(second, 4)  # no such partition here: declined
            assert police.offered is None
            await send(topic, second.incident_id, dump(second))
            await until(lambda: committed_total(broker, police.group), 10, "the second commit",
                        ok=lambda n: n == 2)
    assert seen.headers["X-Whistle-Delivery"] == "police:inc-1.police:1"
    assert [s.headers["X-Whistle-Delivery"] for s in receiver.seen] == [
        "police:inc-1.police:1", "police:inc-2.police:1"]  # each once


async def committed_total(broker: str, group: str) -> int:
    """The offsets `group` committed on the police topic, summed (0 until it commits)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.removeprefix("kafka://"),
                                group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topics.task_topic("police"), p) for p in range(4)]
        return sum([await consumer.committed(tp) or 0 for tp in tps])
    finally:
        await consumer.stop()


async def test_sender_escalates_a_delivery_that_failed(broker, receiver):
    receiver.scripts["/fire"] = [Answer(500)]
    metrics = Metrics()
    task = make_task(7, department="fire")
    async with kafka(broker, "fire") as send:
        fire = sender(broker, "fire", make_hook(receiver.url("/fire"), attempts=2), send,
                      metrics)
        async with running(fire):
            await send(topics.task_topic("fire"), task.incident_id, dump(task))
            servers = broker.removeprefix("kafka://")
            [record] = await until(lambda: read_topic(servers, topics.ESCALATIONS, settle=0.2),
                                   10, "an escalation")
    escalation = Escalation.model_validate_json(record.value)
    assert record.key == b"inc-7"
    assert escalation == Escalation(
        escalation_id="inc-7.fire:1:delivery:fire", incident_id="inc-7", task_id="inc-7.fire",
        cause="delivery_failed", at=T0,
        detail={"target": "fire", "url": receiver.url("/fire"), "attempts": 2,
                "error": "HTTP 500"})
    assert escalation.escalation_id == Escalation.delivery_id("fire", "inc-7.fire:1")
    attempts = [DeliveryAttempt.model_validate_json(r.value)
                for r in await read_topic(servers, topics.DELIVERIES, settle=0.3)]
    assert [(a.attempt, a.result) for a in sorted(attempts, key=lambda a: a.attempt)] == [
        (1, "retry"), (2, "failed")]
    assert metrics.registry.get_sample_value(
        "whistle_webhook_attempts_total", {"target": "fire", "result": "failed"}) == 1


async def test_a_slow_endpoint_does_not_delay_another_target(broker, receiver):
    receiver.scripts["/police"] = [Answer(delay=3.0)]
    async with kafka(broker, "police", "power_supply") as send:
        police = sender(broker, "police", make_hook(receiver.url("/police"), timeout="10s",
                                                    max_in_flight=1), send, Metrics())
        power = sender(broker, "power_supply", make_hook(receiver.url("/power_supply")), send,
                       Metrics())
        async with running(police, power):
            for n in (1, 2):
                task = make_task(n)
                await send(topics.task_topic("police"), task.incident_id, dump(task))
            await until(lambda: receiver.at("/police"), 5, "police to be stuck")
            started = time.monotonic()
            task = make_task(3, department="power_supply")
            await send(topics.task_topic("power_supply"), task.incident_id, dump(task))
            [seen] = await until(lambda: receiver.at("/power_supply"), 5, "power_supply")
            took = seen.at - started
            police_answered = receiver.answered.get("/police", 0)
            police_started = len(receiver.at("/police"))
    assert took < 1.0, f"power_supply took {took:.2f} s"
    assert police_answered == 0 and police_started == 1  # police still on its first record
    assert seen.headers["X-Whistle-Delivery"] == "power_supply:inc-3.power_supply:1"


def test_a_drills_task_says_so_on_top_of_the_body():
    drill = make_task().model_copy(update={"drill": True})
    assert json.loads(task_body(drill))["drill"] is True
    assert json.loads(task_body(drill))["task"]["drill"] is True
    assert "drill" not in json.loads(task_body(make_task()))
