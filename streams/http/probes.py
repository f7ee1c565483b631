"""The probes: `GET /healthz` (the process answers), `GET /readyz` (topics declared, partitions
assigned, the registry read, the broker answering, enough brokers for a write, the last alarm
writes taken) and `GET /metrics` (Prometheus).

    >>> httpx.get(f"{url}/readyz").json()
    {'ready': True, 'topics': True, 'consuming': True, 'registry': True, 'broker': True,
     'brokers': True, 'writes': True, 'why': []}
"""

from __future__ import annotations

from aiohttp.web import Request
from faust.web import Response

from streams.http.views import ApiView, Route

__all__ = ["ROUTES"]


class Health(ApiView):
    async def get(self, request: Request) -> Response:
        return self.reply({"status": "ok"})


WHY = {"topics": "the topics are not declared yet",
       "consuming": "the worker has not been given its partitions yet",
       "registry": "the site registry has not been read to where it stood at start"}


class Ready(ApiView):
    async def get(self, request: Request) -> Response:
        w = self.whistle
        reader = w.registry_reader
        probe = self.gate.probe
        refused = probe.writes_refused()
        checks = {"topics": w.topics_declared, "consuming": w.consuming,
                  "registry": reader is not None and reader.caught_up.is_set(),
                  "broker": await probe.reachable(), "brokers": probe.enough,
                  "writes": refused is None}
        why = [f"{name}: {WHY[name]}" for name in ("topics", "consuming", "registry")
               if not checks[name]] + probe.why()
        if refused is not None:
            why.append(f"writes: {refused}")
        ok = all(checks.values())
        return self.reply({"ready": ok, **checks, "why": why}, status=200 if ok else 503)


class Metrics(ApiView):
    async def get(self, request: Request) -> Response:
        w = self.whistle
        return self.raw(w.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")


ROUTES: list[Route] = [
    Route("/healthz", Health),
    Route("/readyz", Ready),
    Route("/metrics", Metrics),
]
