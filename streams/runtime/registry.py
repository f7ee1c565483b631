"""The site and device registry on Kafka: a compacted topic every worker reads whole.

`whistle sites import FILE` (and `whistle up --sites FILE`) writes one record per site, per
device and per grid outline onto `whistle.registry` (key `site:<id>`, `device:<id>` or
`grid:<id>`, value the Site, Device or Grid as JSON; compacted, so the latest record per key
stays). Every worker reads the whole topic into `agents.logic.locate`'s `Registry` (with its
address, name and spatial indexes; the grids' outlines only for the board's map), record by
record, at start and while running.

    >>> records(read_registry("sites.yaml"))[0]
    (b'site:jyh-yinfeng-lab-3', b'{"site_id": ...}')
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from functools import partial

from pydantic import ValidationError

from agents.logic.locate import Registry
from schemas import Device, Site, topics
from schemas.registry import RegistryFile
from schemas.site import Grid
from streams.kafka.broker import bootstrap_servers, wait_for_leaders

__all__ = ["RegistryReader", "apply_record", "publish", "records"]

log = logging.getLogger(__name__)

Apply = Callable[[bytes, bytes | None], str | None]
"""Applies one record (key, value; None: removed); returns what is wrong with it, or None."""


def records(file: RegistryFile) -> list[tuple[bytes, bytes]]:
    """The topic records for a registry file: sites first, then devices, then grids."""
    out = [(f"site:{s.site_id}".encode(), s.model_dump_json(exclude_defaults=True).encode())
           for s in file.sites]
    out += [(f"device:{d.device_id}".encode(), d.model_dump_json().encode())
            for d in file.devices]
    out += [(f"grid:{g.id}".encode(), g.model_dump_json().encode()) for g in file.grids]
    return out


def apply_record(registry: Registry, key: bytes | str, value: bytes | None) -> str | None:
    """Apply one record (None value: removed). Returns what is wrong with it, or None."""
    name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    kind, _, ident = name.partition(":")
    try:
        if kind == "site":
            if value is None:
                registry.remove_site(ident)
            else:
                registry.put_site(Site.model_validate_json(value))
        elif kind == "device":
            if value is None:
                registry.remove_device(ident)
            else:
                registry.put_device(Device.model_validate_json(value))
        elif kind == "grid":
            if value is None:
                registry.grids.pop(ident, None)
            else:
                grid = Grid.model_validate_json(value)
                registry.grids[grid.id] = grid
        else:
            return f"key {name!r}: neither site:<id>, device:<id> nor grid:<id>"
    except ValidationError as exc:
        return f"key {name!r}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
    except Exception as exc:  # whatever a record holds, the reader goes on (never stuck on it)
        return f"key {name!r}: {type(exc).__name__}: {str(exc)[:200]}"
    return None


async def publish(broker: str, file: RegistryFile, *, partitions: int = 4, replication: int = 1,
                  timeout: float = 30.0) -> int:
    """Write a registry file onto `whistle.registry`; returns the number of records. Every
    record is acknowledged by the broker before this returns."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    servers = bootstrap_servers(broker)
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topics.REGISTRY, num_partitions=partitions,
                                            replication_factor=replication,
                                            topic_configs={"cleanup.policy": "compact"})])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True,
                                request_timeout_ms=int(timeout * 1000))
    await producer.start()
    try:
        await wait_for_leaders(producer.client, topics.REGISTRY, timeout)
        batch = records(file)
        futures = [await producer.send(topics.REGISTRY, value=v, key=k) for k, v in batch]
        for f in futures:
            await f
        return len(batch)
    finally:
        await producer.stop()


class RegistryReader:
    """Reads `whistle.registry` whole, from the beginning and then as records arrive, into a
    `Registry`. Every worker runs one (no consumer group: each needs every record).
    `caught_up` is set once everything on the topic at start has been applied; the worker is
    not ready before, so no alarm is resolved against a half-read registry.

    A Faust GlobalTable was the first choice, but on a one-worker group its partitions are
    "active", read once at recovery and never again, so a later import would go unseen.

    `more` are other compacted topics every worker reads whole in the same way (the
    maintenance silences): each name and the function applying one record (key, value) ->
    what is wrong with it, or None. `caught_up` waits for them too."""

    def __init__(self, broker: str, registry: Registry,
                 more: Mapping[str, Apply] | None = None) -> None:
        self.servers = bootstrap_servers(broker)
        self.registry = registry
        self.appliers: dict[str, Apply] = {topics.REGISTRY: partial(apply_record, registry),
                                           **(more or {})}
        self.caught_up = asyncio.Event()
        self.applied = 0
        self.refused = 0

    async def run(self) -> None:
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: start over, records are idempotent
                log.warning("registry reader: %r; reading again in 1 s", exc)
                await asyncio.sleep(1.0)

    async def _read(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=200)
        await consumer.start()
        try:
            tps: list[TopicPartition] = []
            for topic in self.appliers:
                parts: set[int] | None = None
                while not parts:
                    await consumer._client.force_metadata_update()
                    parts = consumer.partitions_for_topic(topic)
                    if not parts:
                        await asyncio.sleep(0.2)
                tps += [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                if not self.caught_up.is_set() and all(
                        [await consumer.position(tp) >= ends[tp] for tp in tps]):
                    self.caught_up.set()
                    log.info("registry read: %d records, %d refused", self.applied, self.refused)
                batch = await consumer.getmany(*tps, timeout_ms=500)
                for record in (r for rs in batch.values() for r in rs):
                    problem = self.appliers[record.topic](record.key or b"", record.value)
                    self.applied += 1
                    if problem is not None:
                        self.refused += 1
                        log.warning("registry record refused: %s", problem)
        finally:
            await consumer.stop()
