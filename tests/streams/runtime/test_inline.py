"""`InlineThread`: a mode ServiceThread (as Faust's consumer thread is) started, called and
stopped in the loop that starts it, with no thread of its own. The worker's consumer itself is
exercised on the embedded Kafka by the integration and chaos suites."""

from __future__ import annotations

import asyncio
import threading

from mode import Service
from mode.threads import QueueServiceThread

from streams.runtime.inline import InlineThread


class Probe(InlineThread, QueueServiceThread):
    """Notes where each of its hooks ran: (hook, thread, loop)."""

    def __init__(self, **kwargs) -> None:
        self.ran: list[tuple[str, threading.Thread, asyncio.AbstractEventLoop]] = []
        super().__init__(**kwargs)

    def note(self, hook: str) -> None:
        self.ran.append((hook, threading.current_thread(), asyncio.get_running_loop()))

    async def on_start(self) -> None:
        self.note("on_start")

    async def on_thread_started(self) -> None:
        await super().on_thread_started()
        self.note("on_thread_started")

    async def on_thread_stop(self) -> None:
        self.note("on_thread_stop")
        await super().on_thread_stop()

    @Service.task
    async def _ticking(self) -> None:
        self.note("task")
        self.ticking = asyncio.current_task()
        await self.sleep(3600)

    async def twice(self, n: int) -> int:
        self.note("twice")
        await asyncio.sleep(0)
        return 2 * n

    def plain(self, n: int) -> int:
        self.note("plain")
        return n + 1


async def test_the_service_runs_in_the_loop_that_starts_it_and_calls_are_calls() -> None:
    loop, threads = asyncio.get_running_loop(), threading.active_count()
    probe = Probe(loop=loop)
    await probe.start()
    await asyncio.sleep(0.05)  # its task begins
    assert threading.active_count() == threads  # no thread started
    assert await probe.call_thread(probe.twice, 21) == 42  # a coroutine function, awaited
    assert await probe.call_thread(probe.plain, 1) == 2     # a plain function, its result
    await probe.stop()
    assert [hook for hook, *_ in probe.ran] == [
        "on_start", "on_thread_started", "task", "twice", "plain", "on_thread_stop"]
    assert {(thread, ran_in) for _, thread, ran_in in probe.ran} == {
        (threading.current_thread(), loop)}
    assert probe.ticking.done() and probe._shutdown.is_set()  # its task stopped with it
    assert not loop.is_closed()  # the caller's loop: not the service's to close
