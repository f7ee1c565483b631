"""Integration fixtures: the real `whistle up` (embedded Apache Kafka + worker + API).

A stack that cannot start fails the test with its output; it never skips."""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from streams.kafka.broker import free_port

READY_WITHIN = 60.0


def children_of(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def freeze(pid: int, within: float = 10.0) -> None:
    """SIGSTOP `pid` and wait until every one of its threads has stopped: the signal stops a
    busy JVM's threads one by one as each is scheduled, and on two loaded cores a network
    thread can still answer a request meanwhile."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + within
    while True:
        states = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
            except OSError:
                continue  # a thread that ended meanwhile
        if states and all(s in "Tt" for s in states):
            return
        assert time.monotonic() < deadline, f"{pid} not stopped after {within} s: {states}"
        time.sleep(0.005)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Stack:
    """One `whistle up` process and what it printed. Its data directory is `data`, or a new
    one under `tmp`. Any still running when the tests end is stopped then (`stop_all`)."""

    running: list[Stack] = []

    def __init__(self, tmp: Path, env: dict[str, str] | None = None, *args: str,
                 data: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output: list[str] = []
        self.ready_line = ""
        self.data = data or tmp / f"data-{self.port}"
        cmd = [sys.executable, "-m", "streams.cli", "up", "--port", str(self.port),
               "--data", str(self.data), *args]
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "WHISTLE_LOG_LEVEL": "info", **(env or {})})
        Stack.running.append(self)
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        self.started = time.monotonic()
        if not self._ready.wait(READY_WITHIN) or not self.ready_line:
            self.stop()
            pytest.fail(f"whistle up printed no ready line within {READY_WITHIN:.0f} s:\n"
                        + "".join(self.output[-60:]))
        self.ready_after = time.monotonic() - self.started
        match = re.search(r"kafka://127\.0\.0\.1:(\d+)", self.ready_line)
        self.broker = f"127.0.0.1:{match.group(1)}" if match else None
        self.http = httpx.Client(base_url=self.url, timeout=15)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("whistle ready at") and not self._ready.is_set():
                self.ready_line = line
                self._ready.set()
        self._ready.set()  # it exited: no need to wait any longer

    def broker_pid(self) -> int:
        for pid in children_of(self.process.pid):
            if "kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                return pid
        raise AssertionError("no broker process under whistle up")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> float:
        t0 = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in children_of(self.process.pid):
                    os.kill(pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait()
        return time.monotonic() - t0

    @classmethod
    def stop_all(cls) -> None:
        for stack in cls.running:
            stack.stop()

    def wait_for(self, probe, timeout: float = 10.0, what: str = "condition"):
        """Poll `probe()` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                     f"last value {value!r}\n{self.state()}")
            time.sleep(0.05)

    def state(self) -> str:
        """What the stack says of itself, for a failure's message: /readyz and its output."""
        try:
            ready = httpx.get(f"{self.url}/readyz", timeout=5).text
        except httpx.HTTPError as e:
            ready = repr(e)
        return f"/readyz: {ready}\nwhistle up printed:\n" + "".join(self.output[-80:])


atexit.register(Stack.stop_all)  # nothing of a failed test outlives the run


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("stack"))
    yield s
    s.stop()


CHROMIUM = Path("/usr/bin/chromium")
# without the background-networking flags Chromium waits on a network that is not there
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright. Missing, it fails the test."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                              timeout=30_000)
        yield b
        b.close()
