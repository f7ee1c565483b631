"""Every refusal the HTTP API gives, in the contract's JSON shape
`{"error": str, "details": [{"loc": [...], "msg": str}]}`.

- `Refusal` and `problem`: what a view raises (`raise Refusal(404, "no task t-1",
  problem("task_id", "unknown"))`); `ApiView` renders it.

The answers no view gives: an unknown path or method, and a request aiohttp cannot parse.
None is logged with what the client sent.

- `json_errors` (middleware): aiohttp's router refusing a path (404) or a method (405) answers
  `{"error", "details"}` like every view.
- `install()`: a request aiohttp's parser refuses (a URL or a header line over 8 KiB, a header
  that is not HTTP, bytes that are not HTTP at all) is answered 414 (the request line), 431
  (a header) or 400, as JSON. aiohttp logged each with a traceback quoting the offending line,
  an `Authorization: Bearer ...` header included; here each is one warning line naming the
  client and the kind of fault, never what was sent, and at most one such line per
  `EVERY` seconds with the count of those left out.

    >>> app = web.Application(middlewares=[json_errors]); install()
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

__all__ = ["EVERY", "Refusal", "install", "json_errors", "problem"]

log = logging.getLogger(__name__)

EVERY = 10.0  # seconds: at most one log line about malformed requests this often


class Refusal(Exception):
    """An answer other than success: status, message and the fields at fault."""

    def __init__(self, status: int, error: str, details: list[dict] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.details, self.headers = status, error, details, headers


def problem(loc: str, msg: str) -> list[dict]:
    """The `details` of a refusal that concerns one field."""
    return [{"loc": [loc], "msg": msg}]


def _body(error: str, loc: str, msg: str) -> bytes:
    return json.dumps({"error": error, "details": [{"loc": [loc], "msg": msg}]},
                      ensure_ascii=False).encode("utf-8")


@web.middleware
async def json_errors(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """The router's own refusals (no such path, no such method) in the contract's shape."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.Response(status=404, body=_body(f"no such path {request.path}", "path",
                                                   "unknown"),
                            content_type="application/json", charset="utf-8")
    except web.HTTPMethodNotAllowed as exc:  # the methods a view answers (ApiView.allowed)
        allowed = ", ".join(sorted(exc.allowed_methods))
        return web.Response(status=405, body=_body(f"{request.method} is not allowed here",
                                                   "method", f"allowed: {allowed}"),
                            headers={"Allow": allowed}, content_type="application/json",
                            charset="utf-8")


def _fault(exc: BaseException | None) -> tuple[int, str, str]:
    """Status, the field at fault and what is wrong, for a request the parser refused."""
    if isinstance(exc, LineTooLong):
        # what was too long: aiohttp's C parser gives the URL read so far as a bytearray, a
        # header's name or value as bytes; its Python parser names the status line in words
        line = exc.args[0] if exc.args else b""
        if isinstance(line, bytearray) or (isinstance(line, str)
                                           and "status line" in line.lower()):
            return 414, "url", "the request line is longer than 8190 bytes"
        return 431, "headers", "a header line is longer than 8190 bytes"
    if isinstance(exc, HttpProcessingError) and "too many headers" in str(exc).lower():
        return 431, "headers", "too many header fields"
    return 400, "request", "not a well-formed HTTP/1.1 request"


class _Quiet:
    """One log line per EVERY seconds about malformed requests, with the count left out."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = float("-inf")
        self.left_out = 0

    def say(self, remote: str | None, status: int, exc: BaseException | None) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.last < EVERY:
                self.left_out += 1
                return
            left_out, self.left_out, self.last = self.left_out, 0, now
        log.warning("refused a malformed request from %s with %d (%s); %d more since the "
                    "last such line", remote, status, type(exc).__name__ if exc else "?",
                    left_out)


_quiet = _Quiet()


def _handle_error(self: web_protocol.RequestHandler, request: Any, status: int = 500,
                  exc: BaseException | None = None, message: str | None = None) -> Any:
    if status != 400 or not isinstance(exc, HttpProcessingError):
        return _original(self, request, status, exc, message)  # a view's own failure: 500
    if request.writer.output_size > 0:
        raise ConnectionError("the response was under way")
    status, loc, msg = _fault(exc)
    _quiet.say(request.remote, status, exc)
    response = web.Response(status=status, body=_body(msg, loc, msg),
                            content_type="application/json", charset="utf-8")
    response.force_close()
    return response


_original = web_protocol.RequestHandler.handle_error


def install() -> None:
    """Answer and log parse failures as above, in this process (the worker's web server)."""
    web_protocol.RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]
