"""A coroutine run at once, in the caller's step, until it first has to wait.

The consumer hands every fetched message to the streams with `wait_first(callback(message),
flow suspended)`: four tasks and an `asyncio.wait` a message, 23 us of CPU (issue 21's third
stop), though the callback nearly always finishes at once (a stream's buffer has room).
`eager` runs it without a task; only a callback that waits (a full buffer, a suspended flow)
goes on in a task, which the caller then races as before.

    rest = eager(callback(message))
    if rest is not None:            # it waits: race what is left of it as before
        await service.wait_first(rest, flow_suspended.wait())
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any

__all__ = ["eager"]


def eager(coro: Awaitable[Any]) -> asyncio.Future | None:
    """Run `coro` until it finishes (None; its exception is raised here) or first waits (a
    task that runs the rest of it, resuming it as asyncio's own task would). An awaitable
    that is not a coroutine is left to a task."""
    if not asyncio.iscoroutine(coro):
        return asyncio.ensure_future(coro)
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_rest(coro, waiting))


async def _rest(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    """Go on with `coro`, which yielded `waiting` (a future it awaits, or None: a bare yield
    such as `asyncio.sleep(0)`): wait for it, resume, until it returns. Cancelled meanwhile,
    the cancellation is thrown into `coro`, as a task does."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False  # taken, as Task.__step takes it
                await asyncio.wait((waiting,))
        except asyncio.CancelledError as exc:
            if waiting is not None:
                waiting.cancel()  # what a task's cancel does to the future it waits on
            try:
                waiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            waiting = coro.send(None)
        except StopIteration as stop:
            return stop.value
