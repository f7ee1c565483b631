"""A worker's place in the consumer group survives its crash (static membership, KIP-345).

With dynamic membership a worker killed and started again joins as a stranger: the broker
holds the group's rebalance until the dead member's session times out (the rebalance timeout,
6 s), and the worker was ready again 5.9-6.2 s after its start on an idle machine, 9.0-9.4 s
in the crash chaos test. A static member names itself (Kafka's group.instance.id); started
again under the same name it takes its place back at once, with the assignment it had, and the
other workers carry on without a rebalance: ready again after 1.5-2.0 s on the same machine
(a worker on the demo registry killed three times; tests/integration/test_restart.py).

The name is the worker's canonical URL. Faust hands each member an assignment carrying the URL
it joined with, and refuses one with another URL (an assertion in its assignor, which left a
worker restarted on another port under the same name hanging, never ready): same name, same
URL. A worker whose URL is a wildcard address (WHISTLE_HOST=0.0.0.0 and no
WHISTLE_CANONICAL_URL) stays dynamic. A stopping worker leaves the group as a dynamic one does
(aiokafka does not, for a static member), so its partitions move at once instead of after the
session timeout: one stopped for good, or started again on another port, costs nothing.

    instance_id("http://whistle-0.whistle-workers:6066")   # 'whistle-0.whistle-workers_6066'
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

__all__ = ["WILDCARDS", "Leaving", "instance_id"]

WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_MOST = 249  # the longest group.instance.id the Java client accepts, in [a-zA-Z0-9._-]


def instance_id(canonical_url: str) -> str | None:
    """The group.instance.id of the worker reached at `canonical_url`: its host and port,
    in the characters Kafka allows (a long one shortened with a hash of the whole). None
    (dynamic membership) for a URL on a wildcard address (0.0.0.0, ::), which names no one
    worker: two such workers would fence each other out of the group."""
    where = canonical_url.split("://", 1)[-1].rstrip("/")
    if where.rsplit(":", 1)[0].strip("[]") in WILDCARDS:
        return None
    name = re.sub(r"[^a-zA-Z0-9._-]", "_", where)
    if len(name) > _MOST:
        name = f"{name[:200]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return name


class Leaving:
    """A mixin before Faust's aiokafka consumer thread: the consumer, about to stop, leaves
    its group although it is static (aiokafka sends LeaveGroup only for a dynamic member)."""

    _consumer: Any  # aiokafka's, once started

    async def on_thread_stop(self) -> None:
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is not None:
            coordinator._group_instance_id = None  # what aiokafka looks at as it leaves
        await super().on_thread_stop()  # type: ignore[misc]
