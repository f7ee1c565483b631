"""Child processes that never outlive their parent."""

from __future__ import annotations

import ctypes
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["child_options", "stop_process", "stop_started"]

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


def stop_started(worker: subprocess.Popen | None, broker: Any, scratch: Path | None) -> None:
    """Stop what `whistle up` or `whistle bench` started: the worker, the embedded broker, and
    the scratch folder they used."""
    if worker is not None:
        stop_process(worker, 6.0)
    if broker is not None:
        broker.stop(2.0)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
