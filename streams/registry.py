"""The site and device registry on Kafka: a compacted topic every worker reads whole.

`whistle sites import FILE` (and `whistle up --sites FILE`) writes one record per site and per
device onto `whistle.registry` (key `site:<id>` or `device:<id>`, value the Site or Device as
JSON). Every worker reads the whole topic into a Faust GlobalTable and keeps `agents.locate`'s
`Registry` (with its address, name and spatial indexes) in step with it, record by record.

    >>> records(read_registry("sites.yaml"))[0]
    (b'site:jyh-yinfeng-lab-3', b'{"site_id": ...}')
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import faust
from pydantic import ValidationError

from agents.locate import Registry
from schemas import Device, Site
from schemas.registry import RegistryFile

from . import topics

__all__ = ["RegistryTable", "apply_record", "publish", "records"]

log = logging.getLogger(__name__)


def records(file: RegistryFile) -> list[tuple[bytes, bytes]]:
    """The topic records for a registry file: sites first, then devices."""
    out = [(f"site:{s.site_id}".encode(), s.model_dump_json(exclude_defaults=True).encode())
           for s in file.sites]
    out += [(f"device:{d.device_id}".encode(), d.model_dump_json().encode())
            for d in file.devices]
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
        else:
            return f"key {name!r}: neither site:<id> nor device:<id>"
    except ValidationError as exc:
        return f"key {name!r}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
    return None


async def publish(broker: str, file: RegistryFile, *, partitions: int = 4, replication: int = 1,
                  timeout: float = 30.0) -> int:
    """Write a registry file onto `whistle.registry`; returns the number of records. Every
    record is acknowledged by the broker before this returns."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    servers = [b.removeprefix("kafka://") for b in broker.split(";")]
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
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all",
                                request_timeout_ms=int(timeout * 1000))
    await producer.start()
    try:
        batch = records(file)
        futures = [await producer.send(topics.REGISTRY, value=v, key=k) for k, v in batch]
        for f in futures:
            await f
        return len(batch)
    finally:
        await producer.stop()


class RegistryTable(faust.GlobalTable):
    """A GlobalTable over `whistle.registry` that keeps a `Registry` current as records
    arrive (at startup and while running)."""

    registry: Registry

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        batch = list(batch)
        super().apply_changelog_batch(batch)
        for event in batch:
            problem = apply_record(self.registry, event.key, event.value)
            if problem is not None:
                log.warning("registry record refused: %s", problem)
