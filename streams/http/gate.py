"""What every view checks before it answers, one per worker: who the caller is (`auth`), how
often they may ask (`limits` per token, `strangers` per address), where a request about an
incident is answered (`routing`), and whether the broker answers (`probe`, for /readyz).

    >>> gate = Gate(Auth(tokens), Routing(app), BrokerProbe(app))
    >>> mount(app, routes, whistle, gate)      # streams.http.views
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import cast

import faust
from faust.transport.drivers.aiokafka import Producer

from streams.http.auth import Auth
from streams.http.limits import RateLimits
from streams.http.routing import Routing

__all__ = ["BrokerProbe", "Gate"]


class BrokerProbe:
    """Whether the broker answers a metadata request now (asked at most once a second)."""

    def __init__(self, app: faust.App) -> None:
        self.app, self.checked_at, self.ok = app, 0.0, False

    async def reachable(self) -> bool:
        if time.monotonic() - self.checked_at < 1.0:
            return self.ok
        try:
            # the aiokafka driver's producer; Faust's ProducerT does not declare its client
            client = cast(Producer, self.app.producer)._ensure_producer().client
            self.ok = bool(await asyncio.wait_for(client.fetch_all_metadata(), 1.0))
        except Exception:
            self.ok = False
        self.checked_at = time.monotonic()
        return self.ok


@dataclass
class Gate:
    auth: Auth
    routing: Routing
    probe: BrokerProbe
    limits: RateLimits | None = None     # per token (None in open mode)
    strangers: RateLimits | None = None  # ... per address, for requests without a valid token
