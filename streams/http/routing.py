"""Requests reach the worker that holds what they are about, wherever they land.

Each worker holds the tables of the partitions the group gave it (incidents, tasks and
timelines are partitioned by incident id). With several workers behind one address:

- a request about one incident (`/incidents/{id}`, its timeline and level) or one task
  (`/tasks/{id}/<action>`: a task id starts with its incident's) is answered
  by the worker holding the incident's partition; any other worker forwards it there, body
  and `Authorization` included, and returns the answer as it came;
- a list (`GET /incidents`, `GET /tasks`) is gathered: each worker answers with its own
  partitions and the one asked merges the others' answers.

Where a worker is reached is what it announces in the group (`WHISTLE_CANONICAL_URL`; by
default `http://<host>:<port>`). A forwarded request carries `X-Whistle-Forwarded` and is
answered where it arrives, never forwarded again. With one worker nothing is forwarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol

import aiohttp
import faust
from yarl import URL

from schemas import topics
from streams.http.errors import Refusal, problem

__all__ = ["FORWARDED", "Routing", "incident_of"]

log = logging.getLogger(__name__)

FORWARDED = "X-Whistle-Forwarded"
PASSED_ON = ("Authorization", "Content-Type", "Accept")
PASSED_BACK = ("Content-Type", "Retry-After", "WWW-Authenticate", "Content-Disposition",
               "Content-Security-Policy", "X-Content-Type-Options")
TIMEOUT = 15.0


def incident_of(key: str) -> str:
    """The incident a task or incident id belongs to.

    >>> incident_of("inc-20230516-584c84d050.cordon")
    'inc-20230516-584c84d050'
    """
    return key.split(".", 1)[0]


class View(Protocol):
    """What routing needs of the view answering (`streams.http.views.ApiView`)."""

    async def read_capped(self, request: Any) -> bytes: ...

    def bytes(self, value: bytes, *, status: int, headers: dict[str, str]) -> Any: ...


class Routing:
    def __init__(self, app: faust.App) -> None:
        self.app = app

    @property
    def here(self) -> URL:
        return URL(str(self.app.conf.canonical_url))

    def owner(self, incident_id: str) -> URL | None:
        """Where the incident's partition is held, if not here (None: here, or not known yet,
        which answers here). The partition is the one of `whistle.triaged` (the raw incident
        id, as the stages send it), whose number the incident tables share."""
        return self.holder(topics.TRIAGED, incident_id, "incidents")

    def holder(self, topic: str, key: str, table: str) -> URL | None:
        """Where the partition of `table` that `key` has on `topic` is held, if not here."""
        app = self.app
        try:
            partition = app.producer.key_partition(topic, key.encode("utf-8")).partition
            held = app.router.table_metadata(table)
        except Exception:  # no metadata or assignment yet
            return None
        for url, by_topic in held.items():
            if any(partition in partitions for partitions in by_topic.values()):
                return None if _same(URL(url), self.here) else URL(url)
        return None

    def peers(self) -> list[URL]:
        """The other workers of the group."""
        try:
            hosts = self.app.router.tables_metadata()
        except Exception:  # no assignment yet
            return []
        return [URL(h) for h in hosts if not _same(URL(h), self.here)]

    async def route(self, view: View, request: Any, key: str) -> Any:
        """The owner's answer to `request` about `key` (an incident or task id), or None to
        answer here."""
        return await self.route_to(view, request, topics.TRIAGED, incident_of(key), "incidents")

    async def route_to(self, view: View, request: Any, topic: str, key: str, table: str,
                       body: bytes | None = None) -> Any:
        """The answer of the worker holding `key`'s partition of `table` (keyed as on
        `topic`) to `request`, sent with `body` (default: the request's own), or None to
        answer here. A campaign: `route_to(view, request, TRIAGED, campaign_id, "campaigns")`
        (every topic has the same partition count, so a key's partition is the same on all)."""
        if request.headers.get(FORWARDED):
            return None
        owner = self.holder(topic, key, table)
        if owner is None:
            return None
        if body is None and request.can_read_body:
            body = await view.read_capped(request)
        status, headers, payload = await self._call(request.method, owner, request, body)
        return view.bytes(payload, status=status, headers=headers)

    async def gather(self, request: Any, name: str) -> tuple[list[dict], bool]:
        """The `name` lists the other workers answer to the same request (none when this one
        is itself answering a forwarded request), and whether any of them has more than it
        answered (a page: its `next_cursor`)."""
        if request.headers.get(FORWARDED):
            return [], False
        answers = await asyncio.gather(*(self._call("GET", peer, request, None)
                                         for peer in self.peers()))
        found: list[dict] = []
        more = False
        for status, headers, payload in answers:
            if status != 200:  # its refusal is the answer (429, 503 ...), not a shorter list
                refused = json.loads(payload) if payload.startswith(b"{") else {}
                raise Refusal(status, f"another worker refused its part of the list: "
                              f"{refused.get('error', status)}",
                              refused.get("details") or problem("worker", f"status {status}"),
                              {h: v for h, v in headers.items() if h == "Retry-After"} or None)
            answer = json.loads(payload)
            found += answer[name]
            more = more or answer.get("next_cursor") is not None
        return found, more

    async def _call(self, method: str, peer: URL, request: Any, body: bytes | None
                    ) -> tuple[int, dict[str, str], bytes]:
        target = peer.with_path(request.path).with_query(request.query_string)
        headers = {h: request.headers[h] for h in PASSED_ON if h in request.headers}
        headers[FORWARDED] = str(self.here)
        try:
            async with self.app.http_client.request(
                    method, target, headers=headers, data=body,
                    timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as answer:
                payload = await answer.read()
                kept = {h: answer.headers[h] for h in PASSED_BACK if h in answer.headers}
                return answer.status, kept, payload
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            log.warning("worker %s did not answer %s %s: %r", peer, method, request.path, exc)
            raise Refusal(503, f"the worker holding this ({peer}) did not answer; retry",
                          problem("worker", repr(exc)), {"Retry-After": "1"}) from None


def _same(a: URL, b: URL) -> bool:
    return (a.host, a.port) == (b.host, b.port)
