"""`creation.create_missing` on the embedded Kafka: a worker's topics, created at once on a new
broker, are what Faust's own declarations create (partitions, cleanup policy, retention) for
copies of them (`Topic.derive`: another name, the rest the same), and all that deploy/k8s
creates; the ones already there are left alone, and a broker that does not answer leaves the
creating to Faust."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.app import build
from streams.kafka.broker import EmbeddedBroker, bootstrap_servers, free_port
from streams.runtime.creation import create_missing
from streams.settings import Settings
from tests.deploy.files import k8s_topics

pytestmark = pytest.mark.integration

KEYS = ("cleanup.policy", "retention.ms")


async def described(broker: str, names: list[str]) -> dict[str, dict]:
    """Each topic's partitions and the configs in KEYS, as the broker says once it lists them
    all (its metadata follows the controller's a moment after a creation is answered)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker))
    await admin.start()
    try:
        for _ in range(100):
            meta = await admin.describe_topics(names)
            if all(t["error_code"] == 0 and t["partitions"] for t in meta):
                break
            await asyncio.sleep(0.1)
        answers = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n, dict.fromkeys(KEYS)) for n in names])
    finally:
        await admin.close()
    found = {t["topic"]: {"partitions": len(t["partitions"]), "config": {}} for t in meta}
    for answer in answers:
        for _e, _m, _k, name, entries in answer.resources:
            found[name]["config"] = {key: value for key, value, *_ in entries if key in KEYS}
    return found


def channels_of(whistle) -> list:
    return [*whistle.topics.all(), *(t.changelog_topic for t in whistle.app.tables.values())]


async def declared_by_faust(whistle, names: dict[str, str]) -> None:
    """A copy of each topic (`names`: topic -> the copy's) declared as Faust declares topics,
    one request each, by the app's producer."""
    await whistle.app.producer.start()
    try:
        for channel in channels_of(whistle):
            for name in channel.topics:
                await channel.derive(topics=[names[name]]).declare()
    finally:
        await whistle.app.producer.stop()


def test_a_workers_topics_are_created_at_once_as_faust_would_create_them(tmp_path):
    with EmbeddedBroker(tmp_path / "broker") as broker:
        whistle = build(Settings(broker=broker.url, partitions=12, data=tmp_path / "w"))
        app, channels = whistle.app, channels_of(whistle)
        made = asyncio.run(create_missing(app, channels, broker.url))
        assert sorted(made) == sorted(k8s_topics())  # every one was missing on a new broker
        copies = {name: f"faust-{name}" for name in made}
        asyncio.run(declared_by_faust(whistle, copies))
        ours = asyncio.run(described(broker.url, made))
        faust = asyncio.run(described(broker.url, list(copies.values())))
        assert ours == {name: faust[copies[name]] for name in made}

        assert asyncio.run(create_missing(app, channels, broker.url)) == []  # all there now

    # no broker there: nothing created, nothing raised (Faust declares each itself)
    gone = f"kafka://127.0.0.1:{free_port()}"
    assert asyncio.run(create_missing(app, channels, gone, timeout=2.0)) == []
