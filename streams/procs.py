"""Child processes that never outlive their parent."""

from __future__ import annotations

import ctypes
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx

__all__ = ["Child", "answers_ok", "child_options", "stop_process", "stop_started"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux: the kernel kills the child if the parent dies, even by SIGKILL.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def child_options() -> dict[str, Any]:
    """Popen options for a child that dies with us and ignores our terminal's Ctrl-C (we stop
    it ourselves, in order)."""
    if sys.platform.startswith("linux"):
        return {"preexec_fn": _die_with_parent, "start_new_session": True}
    return {"start_new_session": True}


def stop_process(process: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


WORKER_STOP = 6.0   # seconds a worker has to stop on SIGTERM before it is killed
BROKER_STOP = 3.0   # the same for the embedded broker (a clean stop takes ~0.3 s)
BROKER_STOP_WRITING = 15.0  # ... writing its class archive, once (streams.kafka.classes: ~3.5 s)


def stop_started(worker: subprocess.Popen | None, broker: Any, scratch: Path | None) -> None:
    """Stop what `whistle up` or `whistle bench` started: the worker, the embedded broker, and
    the scratch folder they used. Either one that had to be killed is said on stderr."""
    if worker is not None and stop_process(worker, WORKER_STOP) == -signal.SIGKILL:
        print(f"whistle: the worker did not stop within {WORKER_STOP:.0f} s of SIGTERM and "
              f"was killed (what it was doing is replayed at the next start)", file=sys.stderr)
    if broker is not None and broker.process is not None:
        within = BROKER_STOP_WRITING if broker.writes_classes else BROKER_STOP
        if stop_process(broker.process, within) == -signal.SIGKILL:
            print(f"whistle: the embedded Kafka did not stop within {within:.0f} s of "
                  f"SIGTERM and was killed (it recovers its log at the next start)",
                  file=sys.stderr)
        broker.stop()
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


class Child:
    """A server this process starts (`start()`, in subclasses) and stops, with its log file;
    usable as a context manager."""

    STOP_TIMEOUT = 3.0

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self._log: IO | None = None

    def start(self) -> Child:
        raise NotImplementedError

    def stop(self, timeout: float | None = None) -> None:
        if self.process is not None:
            stop_process(self.process, self.STOP_TIMEOUT if timeout is None else timeout)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def returncode(self) -> int | None:
        """The exit code of a process that has ended; None while it runs, and before start()
        or after stop()."""
        return self.process.returncode if self.process is not None else None

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing gets to flush or close."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def answers_ok(url: str, process: subprocess.Popen, timeout: float, *, every: float = 0.1,
               stop: threading.Event | None = None) -> bool:
    """Whether GET `url` answered 200 within `timeout` seconds while `process` ran (and
    `stop` was not set)."""
    deadline = time.monotonic() + timeout
    stop = stop or threading.Event()
    while time.monotonic() < deadline and process.poll() is None and not stop.is_set():
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        stop.wait(every)
    return False
