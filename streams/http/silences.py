"""Maintenance silences (检修屏蔽) over HTTP, for the duty officer (admin).

    POST /api/v1/silences                      {"matchers": {"site_id"|"device_id"|"grid"|
                                                "site_type"}, "starts_at"?, "ends_at",
                                                "reason", "by"?}           -> 201 the silence
    GET  /api/v1/silences[?state=pending|active|expired]                  -> {"silences": [...]}
    GET  /api/v1/silences/{silence_id}         the silence and the alarms it held back
    POST /api/v1/silences/{silence_id}/expire  {"by"?}                    -> 200, ended now

A silence is a record on the compacted `whistle.silences` (key: its id) that every worker reads
whole (`streams.runtime.registry.RegistryReader`), so it survives restarts and is the same
everywhere; what it held back is on its own timeline, in the partition of its id (as an
incident's), so asking for one silence is answered where that is held. Everything is checked
before anything is written: a refusal (422 naming the field, 404, 409) creates nothing.

    >>> httpx.post(f"{url}/api/v1/silences", headers=admin, json={
    ...     "matchers": {"site_id": "jyh-yinfeng-lab-3"}, "reason": "烟感年检",
    ...     "ends_at": "2026-12-06T12:00:00+08:00"}).json()["state"]
    'active'
"""

from __future__ import annotations

import asyncio
import uuid

from aiohttp.web import Request
from faust.web import Response

from agents.logic.timelines import in_time_order
from schemas import topics
from schemas.silence import (
    SILENCE_STATES,
    ExpireRequest,
    Matchers,
    Silence,
    SilenceAnswer,
    SilenceRequest,
)
from streams.http.errors import Refusal, problem
from streams.http.views import ApiView, Route
from streams.worker import Whistle

__all__ = ["ROUTES"]


def _unknown(w: Whistle, matchers: Matchers) -> list[dict]:
    """The matchers naming what the registry does not hold (a typo would silence nothing)."""
    grids = set(w.registry.grids) | {s.grid for s in w.registry.sites()}
    known = {"site_id": lambda v: w.registry.site(v) is not None,
             "device_id": lambda v: w.registry.device(v) is not None,
             "grid": lambda v: v in grids}
    return [{"loc": ["matchers", name], "msg": "unknown"}
            for name, value in matchers.model_dump(exclude_none=True).items()
            if name in known and not known[name](value)]


def answer(silence: Silence, w: Whistle, muted: list | None = None) -> dict:
    """The silence as the API shows it: with its state now (and what it held back)."""
    shown = SilenceAnswer(**silence.model_dump(), state=silence.state_at(w.clock()), muted=muted)
    return shown.model_dump(mode="json", exclude_none=True)


async def _store(view: ApiView, silence: Silence) -> None:
    """Write the silence onto `whistle.silences` (503 if the broker does not take it), and keep
    it here at once: this worker's reader applies the same record again when it comes."""
    w = view.whistle
    try:
        await asyncio.wait_for(w.send_and_wait(topics.SILENCES, silence.silence_id,
                                               silence.model_dump_json().encode()),
                               w.settings.ingest_timeout)
    except Exception as exc:
        raise Refusal(503, "the broker did not take the silence; retry",
                      problem("broker", repr(exc)), {"Retry-After": "1"}) from None
    w.silences[silence.silence_id] = silence


def _silence_or_404(w: Whistle, silence_id: str) -> Silence:
    silence = w.silences.get(silence_id)
    if silence is None:
        raise Refusal(404, f"no silence {silence_id}", problem("silence_id", "unknown"))
    return silence


class Silences(ApiView):
    rights = {"get": "read_silences", "post": "change_silences"}

    async def post(self, request: Request) -> Response:
        w = self.whistle
        body = await self.read_model(request, SilenceRequest, "silence")
        by = self.person(request, body.by)
        now = w.clock()
        if body.ends_at <= (body.starts_at or now):
            raise Refusal(422, "invalid silence", [{"loc": ["ends_at"],
                                                    "msg": "must lie after starts_at and now"}])
        if unknown := _unknown(w, body.matchers):
            raise Refusal(422, "invalid silence: the registry does not know it", unknown)
        silence = Silence(silence_id=f"sil-{uuid.uuid4().hex[:12]}", matchers=body.matchers,
                          starts_at=body.starts_at or now, ends_at=body.ends_at,
                          reason=body.reason, created_by=by, created_at=now)
        await _store(self, silence)
        return self.reply(answer(silence, w), status=201)

    async def get(self, request: Request) -> Response:
        w = self.whistle
        state = self.query(request, "state", SILENCE_STATES)
        now = w.clock()
        found = sorted((s for s in w.silences.values() if state in (None, s.state_at(now))),
                       key=lambda s: (s.created_at, s.silence_id), reverse=True)
        return self.reply({"silences": [answer(s, w) for s in found]})


class OneSilence(ApiView):
    rights = {"get": "read_silences"}
    routed_by = "silence_id"  # its timeline is in its id's partition, as an incident's

    async def get(self, request: Request, silence_id: str) -> Response:
        w = self.whistle
        silence = _silence_or_404(w, silence_id)
        muted = in_time_order(w.tables.timelines.get(silence_id) or [])
        return self.reply(answer(silence, w, muted))


class ExpireSilence(ApiView):
    rights = {"post": "change_silences"}

    async def post(self, request: Request, silence_id: str) -> Response:
        w = self.whistle
        silence = _silence_or_404(w, silence_id)
        body = await self.read_model(request, ExpireRequest, "expiry")
        by = self.person(request, body.by)
        now = w.clock()
        if silence.state_at(now) == "expired":
            raise Refusal(409, f"silence {silence_id} is expired already",
                          problem("state", "expired"))
        ended = silence.model_copy(update={"starts_at": min(silence.starts_at, now),
                                           "ends_at": now, "expired_at": now, "expired_by": by})
        await _store(self, ended)
        return self.reply(answer(ended, w))


ROUTES: list[Route] = [
    Route("/api/v1/silences", Silences),
    Route("/api/v1/silences/{silence_id}", OneSilence),
    Route("/api/v1/silences/{silence_id}/expire", ExpireSilence),
]
"""The silences' paths and their views (`streams.app` mounts them)."""
