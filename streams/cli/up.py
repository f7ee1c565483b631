"""`whistle up`: the embedded broker, one worker and the API, stopped together on SIGINT/SIGTERM;
`whistle broker`: the embedded broker alone.

The worker and the broker run as child processes (so either can be killed and restarted on its
own); both die with this process even if it is killed outright. Their data lives under the data
directory (`--data`, `WHISTLE_DATA`, default `./.whistle`) and survives a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from playbooks import PlaybookError, load_playbooks
from playbooks.campaigns import load_campaigns
from playbooks.departments import load_departments
from schemas.registry import RegistryError, read_registry
from streams.http.auth import Auth
from streams.kafka.broker import BrokerError, EmbeddedBroker, port_free
from streams.kafka.cluster import EmbeddedCluster, cluster_properties, durability_of
from streams.procs import answers_ok, child_options, stop_started
from streams.runtime import registry
from streams.settings import ConfigError, Settings

__all__ = ["run_broker", "run_up"]

READY_TIMEOUT = 60.0


def _check_files(settings: Settings) -> Auth:
    """Refuse bad playbooks, campaign playbooks, sites or config before starting anything;
    the tokens."""
    try:
        load_playbooks(settings.playbooks)
    except PlaybookError as exc:
        raise SystemExit(
            f"whistle up: the playbooks in {settings.playbooks} are refused:\n{exc}") from None
    try:
        load_campaigns(settings.campaigns, load_departments(settings.departments).by_id())
    except PlaybookError as exc:
        raise SystemExit(f"whistle up: the campaign playbooks in {settings.campaigns} are "
                         f"refused:\n{exc}") from None
    try:
        read_registry(settings.sites)
    except (RegistryError, OSError) as exc:
        raise SystemExit(f"whistle up: the registry {settings.sites} is refused:\n{exc}") from None
    try:
        return Auth(settings.access().tokens)
    except ConfigError as exc:
        raise SystemExit(f"whistle up: the config is refused: {exc}") from None


def _wait_ready(url: str, worker: subprocess.Popen, stop: threading.Event) -> bool:
    return answers_ok(f"{url}/readyz", worker, READY_TIMEOUT, stop=stop)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run_broker(data: Path, port: int, nodes: int = 1) -> int:
    """`whistle broker`: the embedded Kafka node, or a cluster of `nodes` on consecutive ports
    from `port`, in the foreground until SIGINT/SIGTERM or until a node exits."""
    stop = _stop_on_signals()
    cluster = EmbeddedCluster(data, nodes, port) if nodes > 1 else None
    members = cluster.nodes if cluster is not None else [EmbeddedBroker(data, port)]
    try:
        if cluster is not None:
            cluster.start()
        else:
            members[0].start()
    except BrokerError as exc:
        print(f"whistle broker: {exc}", file=sys.stderr)
        return 1
    try:
        if cluster is None:
            print(f"whistle broker ready at {members[0].url} (data {members[0].data})",
                  flush=True)
        else:
            said = cluster_properties()
            print(f"whistle broker ready at {cluster.url} ({nodes} nodes, replication "
                  f"{said['default.replication.factor']}, min.insync.replicas "
                  f"{said['min.insync.replicas']}, data {cluster.data})", flush=True)
        while not stop.is_set() and all(m.alive() for m in members):
            stop.wait(0.5)
        if not stop.is_set():
            gone = next(m for m in members if not m.alive())
            who = "the broker" if cluster is None else f"node {gone.node_id}"
            print(f"whistle broker: {who} exited with code {gone.returncode}; "
                  f"{gone.log_path} says:\n{gone.why_stopped()}", file=sys.stderr)
            return 1
        return 0
    finally:
        if cluster is not None:
            cluster.stop()
        else:
            members[0].stop()


def run_up(settings: Settings, embedded: bool, sites_given: bool = False) -> int:
    auth = _check_files(settings)
    if not port_free(settings.host, settings.port):
        print(f"whistle up: {settings.host}:{settings.port} is in use (another whistle up?); "
              f"stop it or choose another --port", file=sys.stderr)
        return 1
    stop = _stop_on_signals()
    settings = settings.model_copy(update={"data": settings.data.absolute()})
    try:
        settings.data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"whistle up: cannot create the data directory {settings.data}: {exc.strerror}",
              file=sys.stderr)
        return 1

    broker = EmbeddedBroker(settings.data) if embedded else None
    worker: subprocess.Popen | None = None
    try:
        env = {**os.environ, **{f"WHISTLE_{k.upper()}": str(v) for k, v in {
            "port": settings.port, "host": settings.host,
            "playbooks": settings.playbooks, "campaigns": settings.campaigns,
            "data": settings.data,
            **({"config": settings.config} if settings.config else {}),
            "log_level": os.environ.get("WHISTLE_LOG_LEVEL", "warning")}.items()}}
        # the worker imports while the broker starts; it goes on once given the broker's URL
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker",
                                   "--broker-on-stdin"], env=env, stdin=subprocess.PIPE,
                                  text=True, **child_options())
        if broker is not None:
            try:
                broker.start()
            except BrokerError as exc:
                print(f"whistle up: {exc}", file=sys.stderr)
                return 1
            settings = settings.model_copy(update={"broker": broker.url})
        # the sites onto a new embedded broker, or those given; never the demo sites onto
        # someone's Kafka, nor again over what was imported onto this one since
        if (broker is not None and broker.fresh) or sites_given:
            count = asyncio.run(registry.publish(
                settings.broker, read_registry(settings.sites), partitions=settings.partitions,
                replication=settings.replication or durability_of(settings.broker)[0]))
            print(f"whistle up: {count} registry records from {settings.sites} imported",
                  file=sys.stderr)
        assert worker.stdin is not None  # stdin=PIPE
        worker.stdin.write(f"{settings.broker}\n")
        worker.stdin.close()
        url = f"http://{settings.host}:{settings.port}"
        if not _wait_ready(url, worker, stop):
            if worker.poll() is not None:
                print(f"whistle up: the worker exited with code {worker.returncode} before it "
                      f"was ready", file=sys.stderr)
            elif not stop.is_set():
                print(f"whistle up: the worker did not become ready within {READY_TIMEOUT:.0f} s",
                      file=sys.stderr)
            return 0 if stop.is_set() else 1
        where = (f"embedded Apache Kafka {broker.url}" if broker
                 else f"broker {settings.broker}")
        print(f"whistle ready at {url} ({where}; data {settings.data}; {auth.describe()})",
              flush=True)
        while not stop.is_set() and worker.poll() is None and (broker is None or broker.alive()):
            stop.wait(0.5)
        if stop.is_set():
            return 0
        if broker is not None and not broker.alive():
            print(f"whistle up: the embedded Kafka exited with code "
                  f"{broker.returncode}; {broker.log_path} says:\n"
                  f"{broker.why_stopped()}", file=sys.stderr)
        else:
            print(f"whistle up: the worker exited with code {worker.returncode}", file=sys.stderr)
        return 1
    finally:
        stop_started(worker, broker, None)
