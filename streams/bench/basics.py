"""The small tools every bench phase and table shares: a steady sending schedule, a
nearest-rank percentile, aligned rows of figures, and a progress line on stderr.

    async for i in paced(200, rate=50.0):      # 200 sends over 4 s
        ...
    p99 = percentile(sorted(ms), 99)
    print("\\n".join(layout([("measure", "whistle", "relay", "ratio", "target"), ...])))

Both the harness (`streams.bench.run`, `streams.bench.report`) and the Alertmanager comparison
(`streams.bench.peer`) use them, so they sit below both.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Sequence

__all__ = ["layout", "paced", "percentile", "say"]


async def paced(n: int, rate: float) -> AsyncIterator[int]:
    """0 .. n-1, each when its turn comes on a steady schedule of `rate` a second.

        async for i in paced(10, 5.0):   # 0 at once, 9 after 1.8 s
            send(i)
    """
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100).

        >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
        2.0
    """
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def layout(rows: Sequence[tuple[str, str, str, str, str]]) -> list[str]:
    """Rows of five cells as aligned lines (first and last left, the rest right), a rule
    under the first.

        layout([("measure", "a", "b", "ratio", "target"), ("p50 (ms)", "3.1", "", "", "")])
    """
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(widths[i]) if i in (0, 4) else c.rjust(widths[i])
                       for i, c in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "-" * len(max(lines, key=len)))
    return lines


def say(what: str) -> None:
    """A progress line of `whistle bench` on stderr (stdout carries only the table).

        say("latency, 200/s for 10 s ...")
    """
    print(f"whistle bench: {what}", file=sys.stderr, flush=True)
