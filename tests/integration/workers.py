"""A `whistle worker` as a process of its own against a broker started apart from it, so a test
can kill the worker with SIGKILL and start it again while the broker keeps the topics and the
tables' changelogs (`whistle up` would take its broker down with it).

    with demo_broker(tmp_path) as broker:        # the demo sites imported
        worker = Worker(broker.url, None, tmp_path, free_port())   # the library playbooks
        worker.http.post("/api/v1/alarms", json=alarm)
        worker.kill()

`WHISTLE_TEST_LOG_LEVEL=info` in the environment gives the workers' logs (in `data`) more than
warnings, to trace a failure.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from schemas.registry import read_registry
from streams.kafka.broker import EmbeddedBroker
from streams.runtime import registry
from streams.settings import DEMO_SITES

__all__ = ["FALLBACK", "QUICK", "Worker", "busy_core", "demo_broker", "playbooks", "wait"]

READY_WITHIN = 60.0

FALLBACK = """id: fallback
version: 1
title: 兜底预案
level: IV
fallback: true
steps:
  - {id: triage, department: safety_office, action: 研判处置, ack_within: 1m, complete_within: 1h}
"""
QUICK = """id: quick-fire
version: 1
title: 快速督办测试预案
level: III
match: {kinds: [fire_report]}
steps:
  - {id: cordon, department: police, action: 设置警戒线 疏散人员, ack_within: ACK,
     complete_within: 10m}
escalate:
  - {on_overdue: ack, notify: [safety_office], raise_level: true}
"""


def playbooks(tmp: Path, ack: str) -> Path:
    """A fallback and one playbook whose police task must be acknowledged within `ack`."""
    folder = tmp / "playbooks"
    folder.mkdir(exist_ok=True)
    (folder / "fallback.yaml").write_text(FALLBACK, encoding="utf-8")
    (folder / "quick.yaml").write_text(QUICK.replace("ACK", ack), encoding="utf-8")
    return folder


@contextmanager
def busy_core() -> Iterator[None]:
    """One core kept busy by another process: the workers' rebalances then take long enough
    for what goes wrong in them to show (it showed in CI, rarely on an idle machine)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


@contextmanager
def demo_broker(tmp: Path) -> Iterator[EmbeddedBroker]:
    """An embedded broker holding the demo site registry; its log is `tmp/broker.log`."""
    with EmbeddedBroker(tmp / "broker") as b:
        asyncio.run(registry.publish(b.url, read_registry(DEMO_SITES)))
        yield b


class Worker:
    """One `whistle worker` process against a broker, ready (`/readyz` 200) once built.

    `folder` is its playbooks (None: the library); its log goes to a new file in `data`. A
    worker that is not ready within a minute fails the test with that log. `host` is the
    address its API listens on; `wrap` goes before its command line (`ip netns exec NAME`: a
    worker on a host of its own)."""

    def __init__(self, broker: str, folder: Path | None, data: Path, port: int,
                 env: dict[str, str] | None = None, *, host: str = "127.0.0.1",
                 wrap: list[str] | None = None) -> None:
        self.url = f"http://{host}:{port}"
        self.log = open(data / f"worker-{time.monotonic_ns()}.log", "w")
        extra = {"WHISTLE_PLAYBOOKS": str(folder)} if folder is not None else {}
        started = time.monotonic()
        self.process = subprocess.Popen(
            [*(wrap or []), sys.executable, "-m", "streams.cli", "worker"], stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "WHISTLE_BROKER": broker, "WHISTLE_PORT": str(port),
                 "WHISTLE_HOST": host,
                 "WHISTLE_DATA": str(data), "WHISTLE_ESCALATION_CHECK": "0.5",
                 "WHISTLE_LOG_LEVEL": os.environ.get("WHISTLE_TEST_LOG_LEVEL", "warning"),
                 **extra, **(env or {})})
        deadline = started + READY_WITHIN
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the worker did not become ready:\n{self.output()}")
            time.sleep(0.2)
        self.ready_after = time.monotonic() - started
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.log.close()


def wait(probe, timeout: float, what: str):
    """Poll `probe()` every 0.1 s until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return value
