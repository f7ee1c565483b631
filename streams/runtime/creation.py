"""A worker creates the topics it lacks in one request as it starts, not one request each.

Faust declares a table's changelog as the table starts, an agent's topic as its stream is
indexed, one after another: a CreateTopics request each, then a metadata request. A new KRaft
broker takes ~40 ms a request, the controller committing each on its own: 50 topics took
2.0 s as 50 requests, at once or not, and 0.1 s as one request (measured on the embedded
broker). A worker on a new broker (`whistle up` on a new data directory, every test stack)
spent ~1.2 s in Faust's declarations and ~1 s in its own (`streams.app`, `declare_topics`).

So before any of it, `create_missing` lists the broker's topics and creates every missing one
of `channels` in one request, each with what Faust's own declaration would give it
(partitions, replicas, cleanup policy, retention, config). Faust's declarations then find them
in the metadata and send nothing. Anything that goes wrong here is logged and left to Faust,
which creates them one by one as before.

    await create_missing(app, [*topics.all(), *(t.changelog_topic for t in tables)])
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from faust.types import TopicT

from streams.kafka.broker import bootstrap_servers

__all__ = ["CreatesFirst", "create_missing", "spec"]

log = logging.getLogger(__name__)


def spec(app: Any, channel: TopicT) -> tuple[int, int, dict[str, str]]:
    """Partitions, replicas and topic config, as Faust's `Topic.declare` would create the
    channel's topics (faust.topics and the aiokafka driver's `_topic_config`)."""
    topic: Any = channel
    partitions = topic.partitions or app.conf.topic_partitions
    replicas = topic.replicas or app.conf.topic_replication_factor or 1
    config: dict[str, str] = {}
    policy = [flag for flag, on in (("compact", topic.compacting), ("delete", topic.deleting))
              if on]
    if policy:
        config["cleanup.policy"] = ",".join(policy)
    if topic.retention:
        config["retention.ms"] = str(int(topic.retention * 1000))
    config.update({k: str(v) for k, v in (topic.config or {}).items()})
    return partitions, replicas, config


async def create_missing(app: Any, channels: Iterable[TopicT], broker: str,
                         timeout: float = 30.0) -> list[str]:
    """Create, in one request, each topic of `channels` the broker at `broker` lacks; returns
    their names ([] when none was missing, or the request failed: Faust's turn then)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    wanted = {name: spec(app, channel) for channel in channels for name in channel.topics}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker),
                                request_timeout_ms=int(timeout * 1000))
    try:
        await admin.start()  # in the try: a broker not there yet is Faust's to wait for
        there = set(await admin.list_topics())
        missing = [NewTopic(name, num_partitions=partitions, replication_factor=replicas,
                            topic_configs=config)
                   for name, (partitions, replicas, config) in sorted(wanted.items())
                   if name not in there]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    except (KafkaError, OSError) as exc:  # Faust declares each topic itself, as before
        log.info("creating the missing topics at once failed (%r); Faust creates them", exc)
        return []
    finally:
        await admin.close()


class CreatesFirst:
    """A mixin before faust.App: `create_first` (`create_missing` with its arguments), if set,
    runs as the app first starts, before its producer, consumer and tables do."""

    create_first: Callable[[], Awaitable[Any]] | None = None

    async def on_first_start(self) -> None:
        await super().on_first_start()  # type: ignore[misc]
        if self.create_first is not None:
            await self.create_first()
