"""The probes: `GET /healthz` (the process answers), `GET /readyz` (topics declared, partitions
assigned, the registry read, the broker answering) and `GET /metrics` (Prometheus).

    >>> httpx.get(f"{url}/readyz").json()
    {'ready': True, 'topics': True, 'consuming': True, 'registry': True, 'broker': True}
"""

from __future__ import annotations

from aiohttp.web import Request
from faust.web import Response

from streams.http.views import ApiView, Route

__all__ = ["ROUTES"]


class Health(ApiView):
    async def get(self, request: Request) -> Response:
        return self.reply({"status": "ok"})


class Ready(ApiView):
    async def get(self, request: Request) -> Response:
        w = self.whistle
        reader = w.registry_reader
        checks = {"topics": w.topics_declared, "consuming": w.consuming,
                  "registry": reader is not None and reader.caught_up.is_set(),
                  "broker": await self.gate.probe.reachable()}
        ok = all(checks.values())
        return self.reply({"ready": ok, **checks}, status=200 if ok else 503)


class Metrics(ApiView):
    async def get(self, request: Request) -> Response:
        w = self.whistle
        return self.raw(w.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")


ROUTES: list[Route] = [
    Route("/healthz", Health),
    Route("/readyz", Ready),
    Route("/metrics", Metrics),
]
