"""What every view checks before it answers, one per worker: who the caller is (`auth`), how
often they may ask (`limits` per token, `strangers` per address), where a request about an
incident is answered (`routing`), and whether the brokers answer (`probe`, for /readyz).

    >>> gate = Gate(Auth(tokens), Routing(app), BrokerProbe(app))
    >>> mount(app, routes, whistle, gate)      # streams.http.views
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.transport.drivers.aiokafka import Producer

from streams.http.auth import Auth
from streams.http.limits import RateLimits
from streams.http.routing import Routing

__all__ = ["BrokerProbe", "Gate"]


class BrokerProbe:
    """Whether the brokers answer now, asked at most once a second: a metadata request
    (`ok`), and how many of the brokers it lists answer a request of their own within a
    second (`answering` of `known`). Writes (acks=all) need `min_insync` brokers in sync:
    with fewer answering, nothing can be acknowledged, and /readyz says so (`why`).

    The second matters on a cluster that has lost its majority: the broker still up keeps
    answering metadata requests from a picture that nobody can update any more. The third
    check is the alarms' own: a write refused in the last `REFUSAL_HELD` seconds (`writes`)."""

    REFUSAL_HELD = 5.0

    def __init__(self, app: faust.App, min_insync: int = 1) -> None:
        self.app, self.min_insync = app, min_insync
        self.checked_at, self.ok = 0.0, False
        self.answering: list[int] = []
        self.silent: list[str] = []   # "node at host:port" of each broker that did not answer
        self._asking: asyncio.Lock | None = None
        self.refusal: tuple[float, str] | None = None  # (monotonic, why) of the last refused

    def refused(self, why: str) -> None:
        """An alarm write that the broker did not acknowledge."""
        self.refusal = (time.monotonic(), why)

    def taken(self) -> None:
        """An alarm write acknowledged: the writes check is clear again."""
        self.refusal = None

    def writes_refused(self) -> str | None:
        """Why the last alarm write was refused, if it was within REFUSAL_HELD seconds."""
        if self.refusal is None or time.monotonic() - self.refusal[0] > self.REFUSAL_HELD:
            return None
        return self.refusal[1]

    async def reachable(self) -> bool:
        """Whether the broker answers a metadata request (the `broker` check)."""
        await self.check()
        return self.ok

    @property
    def enough(self) -> bool:
        """Whether enough brokers answer to acknowledge a write (the `brokers` check)."""
        return len(self.answering) >= self.min_insync

    def why(self) -> list[str]:
        """What the last check found wrong, in words for the operator."""
        why = [] if self.ok else ["broker: no broker answered a metadata request within 1 s"]
        if len(self.answering) < self.min_insync:
            why.append(f"brokers: {len(self.answering)} answer(s) "
                       f"({', '.join(map(str, self.answering)) or 'none'}), "
                       f"{len(self.silent)} known do not "
                       f"({', '.join(self.silent) or 'none'}); a write needs "
                       f"{self.min_insync} in sync (min.insync.replicas), so alarms are "
                       f"refused with 503 until enough answer")
        return why

    async def check(self) -> None:
        if self._asking is None:
            self._asking = asyncio.Lock()
        async with self._asking:
            if time.monotonic() - self.checked_at >= 1.0:
                await self._ask()
                self.checked_at = time.monotonic()

    async def _ask(self) -> None:
        try:
            # the aiokafka driver's producer; Faust's ProducerT does not declare its client
            client = cast(Producer, self.app.producer)._ensure_producer().client
        except Exception:
            self.ok, self.answering, self.silent = False, [], []
            return
        try:
            fresh = await asyncio.wait_for(client.fetch_all_metadata(), 1.0)
        except Exception:
            fresh = None
        self.ok = bool(fresh)
        # the brokers this answer listed, or else those the producer knows from an earlier one
        brokers = sorted((fresh or client.cluster).brokers(), key=lambda b: b.nodeId)
        answers = await asyncio.gather(*(_answers(client, b.nodeId) for b in brokers))
        self.answering = [b.nodeId for b, ok in zip(brokers, answers, strict=True) if ok]
        self.silent = [f"{b.nodeId} at {b.host}:{b.port}"
                       for b, ok in zip(brokers, answers, strict=True) if not ok]


async def _answers(client: Any, node_id: int) -> bool:
    """Whether one broker answers an ApiVersions request within a second. It is asked on a
    connection of its own: a broker answers a connection's requests in order, and on the
    producer's a write waiting for its replicas would hold the question up."""
    from aiokafka.client import ConnectionGroup
    from aiokafka.protocol.admin import ApiVersionRequest

    try:
        await asyncio.wait_for(client.send(node_id, ApiVersionRequest(),
                                           group=ConnectionGroup.COORDINATION), 1.0)
    except Exception:
        return False
    return True


@dataclass
class Gate:
    auth: Auth
    routing: Routing
    probe: BrokerProbe
    limits: RateLimits | None = None     # per token (None in open mode)
    strangers: RateLimits | None = None  # ... per address, for requests without a valid token
