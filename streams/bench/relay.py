"""The baseline `whistle bench` compares the pipeline with: a relay that does the least the
pipeline must (consume an alarm, json-decode it, produce as many task records of the same size
as Whistle made) on bench topics of the same broker, in a process of its own like the worker.
Two kinds: "relay" (plain aiokafka, the practical limit of this work on this broker) and
"faust-relay" (the same as one plain Faust agent: what Faust itself costs).

    figures = await relay_phase(broker, producer, run_id, 5000, per_alarm, departments, size,
                                partitions, kind="faust-relay")

The relay process itself is `python -m streams.bench.relay KIND BROKER SOURCE TARGET,... PER
SIZE DATA` (`python -m streams.bench.run KIND ...` is the same), printing "ready" once it
consumes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.bench.traffic import Watcher, throughput
from streams.kafka.broker import bootstrap_servers
from streams.procs import child_options, stop_process

__all__ = ["KINDS", "faust_relay", "main", "relay", "relay_phase", "relay_tasks"]

KINDS = ("relay", "faust-relay")


def relay_tasks(value: bytes, targets: list[str], per_alarm: int,
                size: int) -> list[tuple[str, bytes, bytes]]:
    """What a relay sends for one alarm: `per_alarm` task records of about `size` bytes, one
    to each of `targets` in turn, keyed by site (topic, key, value).

        relay_tasks(alarm_value, ["t.fire", "t.grid"], per_alarm=2, size=400)
    """
    alarm = json.loads(value)
    site = alarm["site_id"]
    out = []
    for k in range(per_alarm):
        target = targets[k % len(targets)]
        task = {"task_id": f"{site}.{k}", "incident_id": site,
                "department": target.rsplit(".", 1)[-1], "site_id": site, "revision": 1,
                "status": "dispatched"}
        body = json.dumps(task, separators=(",", ":"))
        task["pad"] = "x" * max(0, size - len(body) - 9)
        out.append((target, site.encode(), json.dumps(task, separators=(",", ":")).encode()))
    return out


async def relay(broker: str, source: str, targets: list[str], per_alarm: int, size: int) -> None:
    """Consume `source` from the start, json-decode each alarm, and produce its task records
    (`relay_tasks`): the practical limit of this work on this broker. Runs until cancelled.

        asyncio.run(relay("kafka://127.0.0.1:9092", "b.alarms", ["b.tasks.fire"], 1, 400))
    """
    servers = bootstrap_servers(broker)
    consumer = AIOKafkaConsumer(source, bootstrap_servers=servers, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await consumer.start()
    await producer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=2000)
            acks = []
            for records in batch.values():
                for r in records:
                    for topic, key, value in relay_tasks(r.value, targets, per_alarm, size):
                        acks.append(await producer.send(topic, value, key=key))
            await asyncio.gather(*acks)
    finally:
        await consumer.stop()
        await producer.stop()


def faust_relay(broker: str, source: str, targets: list[str], per_alarm: int, size: int,
                data: Path) -> None:
    """The same relay as one plain Faust agent (Faust's own transport and settings, but for a
    short rebalance timeout so that it joins in seconds): what Faust itself costs for this
    work, before Whistle does anything. Runs until SIGTERM.

        faust_relay("kafka://127.0.0.1:9092", "b.alarms", ["b.tasks.fire"], 1, 400, Path("d"))
    """
    import faust  # only the relay process needs it; the bench process never starts an app

    app = faust.App(f"{source}-faust", broker=broker, datadir=str(data), store="memory://",
                    web_enabled=False, consumer_auto_offset_reset="earliest",
                    topic_disable_leader=True, producer_acks=-1,
                    broker_rebalance_timeout=6, broker_session_timeout=6,
                    broker_heartbeat_interval=1)
    alarms = app.topic(source, key_serializer="raw", value_serializer="raw")
    out = {t: app.topic(t, key_serializer="raw", value_serializer="raw") for t in targets}

    @app.agent(alarms)
    async def relay_agent(stream: Any) -> None:
        async for value in stream:
            for topic, key, task in relay_tasks(value, targets, per_alarm, size):
                await out[topic].send(key=key, value=task)

    @app.on_rebalance_complete.connect
    async def ready(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        print("ready", flush=True)

    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # its terminal codes on stdout, where only "ready" is said
    worker.execute_from_commandline()


def main(argv: list[str]) -> None:
    """The relay process: `argv` is KIND BROKER SOURCE TARGET,... PER_ALARM SIZE DATA.

        main(["relay", "kafka://127.0.0.1:9092", "b.alarms", "b.tasks.fire", "1", "400", "d"])
    """
    kind, broker, source, targets, per, size, data = argv
    if kind == "faust-relay":
        faust_relay(broker, source, targets.split(","), int(per), int(size), Path(data))
    else:
        try:
            asyncio.run(relay(broker, source, targets.split(","), int(per), int(size)))
        except KeyboardInterrupt:
            pass


async def relay_phase(broker: str, producer: AIOKafkaProducer, run_id: str, n: int,
                      per_alarm: int, departments: list[str], size: int, partitions: int,
                      kind: str = "relay") -> dict:
    """`n` alarms through a relay process of `kind`: "relay" (aiokafka) or "faust-relay", on
    topics of their own (deleted after), timed as the pipeline's throughput is.

        figures = await relay_phase(broker, producer, "1a2b", 5000, 2, ["fire", "grid"], 400, 3)
    """
    servers = bootstrap_servers(broker)
    base = f"whistle-bench-{run_id}-{kind}"
    source, targets = f"{base}.alarms", [f"{base}.tasks.{d}" for d in departments]
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    process = watcher = data = None
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in (source, *targets)])
        watcher = Watcher(servers, targets, "bench-")
        await watcher.start()
        data = Path(tempfile.mkdtemp(prefix="whistle-bench-"))
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.bench.relay", kind, broker, source,
             ",".join(targets), str(per_alarm), str(size), str(data)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, text=True, **child_options())
        assert process.stdout is not None  # stdout=PIPE
        try:
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        except TimeoutError:
            line = ""
        if line.strip() != "ready":
            raise RuntimeError(f"the {kind} was not ready within 60 s "
                               f"(exit code {process.poll()})")
        prefix = f"bench-{run_id}-{kind}-"
        result = await throughput(producer, watcher, source, prefix, n, per_alarm)
        return {**result, "task_bytes": size, "topics": [source, *targets]}
    finally:
        if watcher is not None:
            await watcher.stop()
        if process is not None:
            await asyncio.to_thread(stop_process, process, 6.0)
        if data is not None:
            shutil.rmtree(data, ignore_errors=True)
        try:
            await admin.delete_topics([source, *targets])
        except Exception:
            pass  # the embedded broker goes anyway; a real one keeps a few bench topics
        await admin.close()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in KINDS:
    main(sys.argv[1:])
