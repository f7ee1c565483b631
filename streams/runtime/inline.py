"""The Kafka consumer's service run in the worker's own event loop, not in a thread of its own.

Faust's aiokafka driver runs the consumer in a thread with an event loop of its own (mode's
`ServiceThread`) and calls it through a queue of jobs, each answered by a future set across
the threads. Both threads run Python, so each waits for the GIL the other holds. A probe timing
every event-loop callback of a worker at 200 alarms/s (`whistle bench --alarms 3000 --rate 200
--seconds 5 --skip-storm --skip-relay`) found the consumer thread's handling of fetch answers
taking 392 ms of wall time for 14 ms of CPU (59 callbacks over 4 ms, one of 37 ms: a fetched
alarm waiting that long before a stage saw it, the p99 latency's tail), and the producer's
sends in the main thread waiting likewise (128 ms for 5). In one loop nothing waits for a GIL
and a call to the consumer is a call.

The cost: the group's heartbeats share the loop with the stages, so a step that held the loop
for the session timeout (6 s) would lose the worker its partitions; a step takes milliseconds.

    class ConsumerThread(InlineThread, driver.AIOKafkaConsumerThread): ...
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

__all__ = ["InlineThread"]


class InlineThread:
    """A mixin before a mode `ServiceThread` (Faust's consumer thread): started, called and
    stopped as that service, in the loop of whoever starts it."""

    def __init__(self, *args: Any, loop: asyncio.AbstractEventLoop | None = None,
                 **kwargs: Any) -> None:
        loop = loop if loop is not None else asyncio.get_event_loop_policy().get_event_loop()
        super().__init__(*args, loop=loop, thread_loop=loop, **kwargs)  # type: ignore[call-arg]
        self._close_thread_loop_on_stop = False  # the worker's loop, closed by the worker

    async def start(self) -> None:
        """What the thread would do: start the service, then what runs once it is started."""
        service: Any = self  # a ServiceThread
        service._thread_started.set()
        await service._default_start()
        await service.on_thread_started()

    async def stop(self) -> None:
        """Stop the service as its thread would on the way out."""
        service: Any = self
        if service._started.is_set() and not service._stopped.is_set():
            service._stopped.set()
            await service.on_stop()
            await service._shutdown_thread()  # sets `_shutdown` by the loop: wait for it
            await asyncio.wait_for(service._shutdown.wait(), service.shutdown_timeout)
            await service.on_shutdown()

    async def call_thread(self, fun: Any, *args: Any, **kwargs: Any) -> Any:
        """Call `fun` here (the thread's queue ran it, awaited if it returned an awaitable)."""
        result = fun(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result
