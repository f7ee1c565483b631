"""The processes `whistle bench` starts and looks into: worker processes on a broker, `whistle
up` timed from the command to its ready line, and py-spy recording a worker; and the
departments those workers send tasks to.

    worker, url = start_worker(broker.url, scratch / "worker-0")
    spy = profile(worker.pid, Path("throughput.svg"))
    ...
    stop_profile(spy, Path("throughput.svg"))
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from playbooks.departments import load_departments
from streams.bench.basics import say
from streams.kafka.broker import BrokerError, free_port
from streams.procs import answers_ok, child_options, stop_process
from streams.settings import Settings

__all__ = ["READY_TIMEOUT", "departments", "profile", "start_worker", "stop_profile",
           "time_up"]

READY_TIMEOUT = 60.0


def departments() -> list[str]:
    """The ids of the departments configured for this environment, sorted.

        names = [topics.task_topic(d) for d in departments()]
    """
    return sorted(load_departments(Settings().departments).by_id())


def start_worker(broker: str, data: Path, extra: dict[str, str] | None = None
                 ) -> tuple[subprocess.Popen, str]:
    """A worker process on `broker` with its state in `data`; returns it and its URL once
    /readyz answers 200.

        worker, url = start_worker("kafka://127.0.0.1:9092", tmp / "w0", {"WHISTLE_STORE": ...})
    """
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "WHISTLE_BROKER": broker, "WHISTLE_PORT": str(port),
           "WHISTLE_HOST": "127.0.0.1", "WHISTLE_DATA": str(data),
           "WHISTLE_LOG_LEVEL": "warning", **(extra or {})}
    log = open(data / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              **child_options())
    log.close()
    url = f"http://127.0.0.1:{port}"
    if answers_ok(f"{url}/readyz", worker, READY_TIMEOUT):
        return worker, url
    tail = (data / "worker.log").read_text(errors="replace")[-3000:]
    stop_process(worker, 3.0)
    raise BrokerError(f"the worker was not ready within {READY_TIMEOUT:.0f} s:\n{tail}")


def time_up(data: Path) -> dict:
    """`whistle up` on a new data directory and then again on the same one (the broker's jars
    cached): seconds from the command to its ready line, each.

        time_up(scratch / "up")    # {"up_new_s": 9.8, "up_again_s": 6.1}
    """
    figures = {}
    for name in ("up_new_s", "up_again_s"):
        started = time.monotonic()
        up = subprocess.Popen([sys.executable, "-m", "streams.cli", "up", "--port",
                               str(free_port()), "--data", str(data)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, **child_options())
        assert up.stdout is not None  # stdout=PIPE
        line = up.stdout.readline()
        figures[name] = time.monotonic() - started
        stop_process(up, 15.0)
        if "ready" not in line:
            raise BrokerError(f"whistle up printed no ready line (exit code {up.returncode})")
    return figures


def profile(pid: int, out: Path) -> subprocess.Popen | None:
    """py-spy recording the worker: a flame graph (.svg), speedscope (.json) or collapsed
    stacks (anything else); None (and a word on stderr) without py-spy.

        spy = profile(worker.pid, Path("throughput.svg"))
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        say("--profile needs py-spy (pip install py-spy); not profiling")
        return None
    kind = {".svg": "flamegraph", ".json": "speedscope"}.get(out.suffix, "raw")
    # --gil: only the thread holding the GIL, i.e. where the worker's CPU goes; without it a
    # thread preempted in a syscall (the broker on the same cores) would count as busy there
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "200", "--gil", "--format",
                             kind, "--output", str(out)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            **child_options())


def stop_profile(spy: subprocess.Popen, out: Path) -> None:
    """Stop a `profile` recording so that py-spy writes `out`, and say where it is.

        stop_profile(spy, Path("throughput.svg"))
    """
    spy.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
    assert spy.stderr is not None  # profile() gives it stderr=PIPE
    say(f"profile of the throughput run in {out}" if out.exists()
        else f"py-spy wrote no profile: {(spy.stderr.read() or b'').decode()[-500:]}")
