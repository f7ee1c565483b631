"""`whistle up`: the embedded broker, one worker and the API, stopped together on SIGINT/SIGTERM.

The worker runs as a child process (so it can be killed and restarted on its own); both children
die with this process even if it is killed outright."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path


from playbooks import PlaybookError, load_playbooks

from schemas.registry import RegistryError, read_registry

from . import registry
from .broker import BrokerError, EmbeddedBroker
from .auth import Auth
from .procs import answers_ok, child_options, stop_started
from .settings import ConfigError, Settings

__all__ = ["run_up"]

READY_TIMEOUT = 60.0


def _check_files(settings: Settings) -> Auth:
    """Refuse bad playbooks, sites or config before starting anything; the tokens."""
    try:
        load_playbooks(settings.playbooks)
    except PlaybookError as exc:
        raise SystemExit(f"whistle up: the playbooks in {settings.playbooks} are refused:\n{exc}")
    try:
        read_registry(settings.sites)
    except (RegistryError, OSError) as exc:
        raise SystemExit(f"whistle up: the registry {settings.sites} is refused:\n{exc}")
    try:
        return Auth(settings.access().tokens)
    except ConfigError as exc:
        raise SystemExit(f"whistle up: the config is refused: {exc}")


def _wait_ready(url: str, worker: subprocess.Popen, stop: threading.Event) -> bool:
    return answers_ok(f"{url}/readyz", worker, READY_TIMEOUT, stop=stop)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def run_up(settings: Settings, embedded: bool, sites_given: bool = False) -> int:
    auth = _check_files(settings)
    if not _port_free(settings.host, settings.port):
        print(f"whistle up: {settings.host}:{settings.port} is in use (another whistle up?); "
              f"stop it or choose another --port", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    scratch = None
    if settings.data == Settings.model_fields["data"].default:
        scratch = Path(tempfile.mkdtemp(prefix="whistle-"))
        settings = settings.model_copy(update={"data": scratch})
    settings.data.mkdir(parents=True, exist_ok=True)

    broker = EmbeddedBroker(log=settings.data / "broker.log") if embedded else None
    worker: subprocess.Popen | None = None
    try:
        if broker is not None:
            try:
                broker.start()
            except BrokerError as exc:
                print(f"whistle up: {exc}", file=sys.stderr)
                return 1
            settings = settings.model_copy(update={"broker": broker.url})
        if broker is not None or sites_given:  # never the demo sites onto someone's Kafka
            count = asyncio.run(registry.publish(
                settings.broker, read_registry(settings.sites), partitions=settings.partitions,
                replication=settings.replication))
            print(f"whistle up: {count} registry records from {settings.sites} imported",
                  file=sys.stderr)
        env = {**os.environ, **{f"WHISTLE_{k.upper()}": str(v) for k, v in {
            "broker": settings.broker, "port": settings.port, "host": settings.host,
            "playbooks": settings.playbooks, "data": settings.data,
            **({"config": settings.config} if settings.config else {}),
            # one record per batch: Tansu misreports a partition's end after larger batches
            **({"producer_batch_bytes": 1} if broker is not None else {}),
            "log_level": os.environ.get("WHISTLE_LOG_LEVEL", "warning")}.items()}}
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                  stdin=subprocess.DEVNULL, **child_options())
        url = f"http://{settings.host}:{settings.port}"
        if not _wait_ready(url, worker, stop):
            if worker.poll() is not None:
                print(f"whistle up: the worker exited with code {worker.returncode} before it "
                      f"was ready", file=sys.stderr)
            elif not stop.is_set():
                print(f"whistle up: the worker did not become ready within {READY_TIMEOUT:.0f} s",
                      file=sys.stderr)
            return 0 if stop.is_set() else 1
        where = (f"embedded broker {broker.url}, in memory: stopping it loses all data"
                 if broker else f"broker {settings.broker}")
        print(f"whistle ready at {url} ({where}; {auth.describe()})", flush=True)
        while not stop.is_set() and worker.poll() is None:
            stop.wait(0.5)
        if worker.poll() is not None and not stop.is_set():
            print(f"whistle up: the worker exited with code {worker.returncode}", file=sys.stderr)
            return 1
        return 0
    finally:
        stop_started(worker, broker, scratch)
