"""The base of every HTTP view: JSON in and out, refusals rendered the contract's way, the
caller checked against the right each method needs (`streams.http.auth.RIGHTS`).

    class Tasks(ApiView):
        rights = {"get": "read_tasks"}        # a method not named here is public

        async def get(self, request):
            caller = request["caller"]         # streams.http.auth.Caller
            raise Refusal(404, "no task t-1", problem("task_id", "unknown"))

Every refusal is JSON: `{"error": str, "details": [{"loc": [...], "msg": str}]}`.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any, NamedTuple, TypeVar

import faust
from aiohttp.web import Request
from faust.web import Response, View
from pydantic import BaseModel, ValidationError

from schemas.codec import error_details, json_bytes
from streams.http.auth import PUBLIC, Caller, Denied
from streams.http.errors import Refusal, problem
from streams.http.gate import Gate
from streams.worker import Whistle

__all__ = ["JSON", "ApiView", "Route", "mount"]

JSON = "application/json; charset=utf-8"

M = TypeVar("M", bound=BaseModel)


class ApiView(View):
    """Base view: JSON bodies in and out, refusals rendered the contract's way, and the
    caller checked against the right each method needs (`rights`: method -> right)."""

    whistle: Whistle  # both set by `mount`, on a subclass per worker
    gate: Gate
    rights: dict[str, str] = {}
    routed_by: str | None = None  # the path's incident or task id: answered where it is held
    has_head = True  # HEAD is GET without the body, with GET's rights; a view that streams
    # (SSE) has none: its body is the point, and never ends
    _allowed: frozenset[str] | None = None  # per view class, from the methods it defines

    def reply(self, value: Any, status: int = 200,
              headers: dict[str, str] | None = None) -> Response:
        return self.raw(json_bytes(value), JSON, status, headers)

    def raw(self, body: bytes, content_type: str, status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
        return self.bytes(body, status=status, headers={**(headers or {}),
                                                        "Content-Type": content_type})

    async def dispatch(self, request: Any) -> Any:
        try:
            request["caller"] = self.authorize(request)
            if self.routed_by is not None:  # streams.http.routing
                answer = await self.gate.routing.route(self, request,
                                                          request.match_info[self.routed_by])
                if answer is not None:
                    return answer
            return await super().dispatch(request)
        except Refusal as exc:
            body = {"error": exc.error, "details": exc.details or []}
            return self.reply(body, exc.status, exc.headers)

    def allowed(self) -> frozenset[str]:
        """The methods this view answers: those it defines, and HEAD wherever GET is (Faust's
        View.head runs get()) unless `has_head` is off."""
        allowed = type(self).__dict__.get("_allowed")  # this view class's own, never a base's
        if allowed is None:
            methods = {m.lower() for m in View.get_methods(self)} - {"head"}
            if "get" in methods and self.has_head:
                methods.add("head")
            allowed = type(self)._allowed = frozenset(methods)
        return allowed

    def get_methods(self) -> set[str]:
        """What Faust routes to this view: exactly `allowed()` (Faust routes HEAD to every
        view). Any other method never reaches it: the router answers 405, for everyone, token
        or not (`streams.http.errors.json_errors` gives it the JSON shape)."""
        return {m.upper() for m in self.allowed()}

    def authorize(self, request: Any) -> Caller:
        """The caller, if it may do this now: 401/403 (auth), 429 (over its rate limit,
        refusals of its token's role included). HEAD has exactly GET's rights."""
        w = self.whistle
        method = request.method.lower()
        right = self.rights.get("get" if method == "head" else method, PUBLIC)
        try:
            caller = self.gate.auth.check(request.headers.get("Authorization"), right)
        except Denied as exc:
            if exc.status == 401:  # guessing tokens is limited by address
                self.throttle(self.gate.strangers, f"addr:{request.remote}")
            elif exc.caller is not None and exc.caller.key:  # probing with a known token
                self.throttle(self.gate.limits, exc.caller.key)
            w.metrics.auth_refused.labels(status=str(exc.status)).inc()
            headers = {"WWW-Authenticate": 'Bearer realm="whistle"'} if exc.status == 401 else None
            raise Refusal(exc.status, exc.message, problem("Authorization", exc.message),
                          headers) from None
        if right != PUBLIC and caller.key:
            self.throttle(self.gate.limits, caller.key)
        return caller

    def throttle(self, limits: Any, key: str) -> None:
        """429 with Retry-After when `key` is over its limit (no limits: open mode)."""
        wait = limits.take(key) if limits is not None else 0.0
        if wait > 0:
            self.whistle.metrics.auth_refused.labels(status="429").inc()
            rate = f"{limits.rate:g} requests/s, {limits.burst} at once"
            raise Refusal(429, f"too many requests: {rate}", problem("Authorization", rate),
                          {"Retry-After": str(max(1, math.ceil(wait)))})

    async def read_body(self, request: Request,
                        types: tuple[str, ...] = ("application/json",)) -> bytes:
        if request.content_type not in types:
            raise Refusal(415, f"Content-Type must be {' or '.join(types)}",
                          problem("Content-Type", f"got {request.content_type or 'nothing'}"))
        return await self.read_capped(request)

    async def read_capped(self, request: Request) -> bytes:
        """The body, whatever its type; 413 past the `max_body_bytes` setting (1 MiB)."""
        limit = self.whistle.settings.max_body_bytes
        if (request.content_length or 0) > limit:
            raise Refusal(413, f"body over {limit} bytes", problem("body", "too large"))
        body = bytearray()
        while chunk := await request.content.read(65536):
            body += chunk
            if len(body) > limit:
                raise Refusal(413, f"body over {limit} bytes", problem("body", "too large"))
        return bytes(body)

    def person(self, request: Request, given: str) -> str:
        """Who does it, for the record: the token's person, else the body's `by` (open mode,
        a token naming nobody); 422 naming `by` when neither names anyone."""
        person = request["caller"].person or given.strip()
        if not person:
            raise Refusal(422, "who does it? the token names no person: give by",
                          problem("by", "required when the token names no person"))
        return person

    async def read_model(self, request: Request, model: type[M], what: str) -> M:
        """The JSON body as `model`; 422 `invalid <what>` naming each field at fault."""
        try:
            return model.model_validate(await self.read_json(request))
        except ValidationError as exc:
            raise Refusal(422, f"invalid {what}", error_details(exc)) from None

    async def read_json(self, request: Request,
                        types: tuple[str, ...] = ("application/json",)) -> Any:
        body = await self.read_body(request, types)
        try:  # the contract's JSON is UTF-8: json.loads would take UTF-16 and -32 bytes too
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise Refusal(400, "body is not UTF-8", problem("body", str(exc))) from None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise Refusal(400, "body is not JSON", problem("body", str(exc))) from None
        except RecursionError:
            raise Refusal(400, "body is not JSON", problem("body", "nested too deeply")) from None

    async def submit(self, topic: str, key: str, update_id: str, value: bytes,
                     conflict_on: str, subject: tuple[str, str]) -> Any:
        """Put an update on its topic and wait for the agent that applies it to answer with the
        new state. 409 (naming `conflict_on`) if it lost a race, 404 if the `subject` (field,
        id) is gone, 503 if the broker does not take it, 504 if it is taken but not applied
        within WHISTLE_UPDATE_TIMEOUT."""
        w = self.whistle
        waiter = asyncio.get_running_loop().create_future()
        w.waiters[update_id] = waiter
        deadline = time.monotonic() + w.settings.update_timeout
        try:
            await asyncio.wait_for(w.send_and_wait(topic, key, value), w.settings.ingest_timeout)
        except Exception as exc:
            w.waiters.pop(update_id, None)
            raise Refusal(503, "the broker did not acknowledge the update; retry",
                          problem("broker", repr(exc)), {"Retry-After": "1"}) from None
        try:
            outcome, state = await asyncio.wait_for(waiter, max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            w.waiters.pop(update_id, None)
            raise Refusal(504, "the update is on the broker but was not applied in time; read "
                               "it again before retrying",
                          problem("update_id", update_id)) from None
        if outcome == "conflict":
            raise Refusal(409, state, problem(conflict_on, "changed meanwhile"))
        if outcome == "refused":  # the agent found what this worker could not check
            field_name, why = state
            raise Refusal(422, why, problem(field_name, why))
        if outcome != "ok":
            raise Refusal(404, f"no {subject[0].removesuffix('_id')} {subject[1]}",
                          problem(subject[0], "unknown"))
        return state

    def query(self, request: Request, name: str,
              allowed: tuple[str, ...] | None = None) -> str | None:
        value = request.query.get(name)
        if value is not None and allowed is not None and value not in allowed:
            raise Refusal(422, f"unknown {name}",
                          [{"loc": ["query", name], "msg": f"must be one of {', '.join(allowed)}"}])
        return value


class Route(NamedTuple):
    """A path, the view answering it, and what that view holds besides the worker and the
    gate (e.g. the SSE view's feed)."""

    path: str
    view: type[ApiView]
    holds: dict[str, Any] = {}


def mount(app: faust.App, routes: list[Route], whistle: Whistle, gate: Gate) -> None:
    """Mount each route's view on the worker's web server, as a subclass holding this
    worker's `whistle`, `gate` and the route's own attributes (no view class is changed, so
    several workers can live in one process, as in the tests)."""
    for route in routes:
        name = route.view.__name__
        wired = type(name, (route.view,), {"whistle": whistle, "gate": gate, **route.holds})
        app.page(route.path, name=name)(wired)
