"""One whole `whistle bench` measurement against workers already running on a broker: a probe
alarm (how many tasks, to whom, how big), then latency, throughput, the relays, the storm and
memory phases in that order, and the Alertmanager comparison before them all when asked for;
first of all, on a broker started here, alarms that warm it (`streams.bench.warm`). Returns
the figures `streams.bench.report` prints.

    figures = await measure_all(opts, "kafka://127.0.0.1:9092", ["http://127.0.0.1:6066"],
                                pids=[worker.pid], receiver=None, alertmanager=None)
"""

from __future__ import annotations

import asyncio
import os
import uuid

from aiokafka import AIOKafkaProducer

from schemas import topics
from streams.bench import phases
from streams.bench.alertmanager import Alertmanager
from streams.bench.basics import say
from streams.bench.metrics import cpu, histogram, idle_rate, settle, worker_view
from streams.bench.options import BenchOptions
from streams.bench.peer import Receiver, compare
from streams.bench.relay import relay_phase
from streams.bench.report import (
    TARGET_CPU_MS,
    TARGET_CPU_WEBHOOKS_MS,
    TARGET_FAUST_RATIO,
    TARGET_FIRE_MS,
    TARGET_P99_MS,
    TARGET_RATIO,
    TARGET_RSS_MB,
)
from streams.bench.traffic import Watcher, alarm, produce, throughput
from streams.bench.warm import WARM_RATE, warm
from streams.bench.workers import departments as configured_departments
from streams.bench.workers import profile, stop_profile
from streams.kafka.broker import bootstrap_servers

__all__ = ["measure", "measure_all"]


async def measure_all(opts: BenchOptions, broker: str, urls: list[str], pids: list[int],
                      receiver: Receiver | None, alertmanager: Alertmanager | None) -> dict:
    """`measure`, after the comparison with Alertmanager when `receiver` (the workers'
    webhooks' receiver, not yet started) and `alertmanager` are given (its figures under
    "peer"), and before both, on a broker started here (`pids`), `opts.warm_broker` seconds
    of alarms that warm it (`streams.bench.warm`; under "broker_warm_up").

        figures = await measure_all(opts, broker.url, urls, pids, Receiver(SECRET), am)
    """
    if receiver is not None:
        await receiver.start()  # the workers' webhooks POST to it from the first alarm on
    try:
        warmed = None
        if pids and opts.warm_broker > 0:  # a broker started here: cold (streams.bench.warm)
            say(f"warming the broker: {WARM_RATE:g} alarms/s for {opts.warm_broker:g} s ...")
            warmed = await warm(bootstrap_servers(broker), opts.warm_broker, WARM_RATE)
            await settle(urls, idle=0.1)
        peer = None
        if receiver is not None and alertmanager is not None:
            # the comparison first, before the deadlines of other phases' tasks fall due
            say(f"against Alertmanager: {opts.rate:g}/s for {opts.seconds:g} s, then "
                f"{opts.alarms} alarms, each side POSTed over HTTP to its webhooks ...")
            peer = await compare(urls[0], alertmanager.url, receiver, opts.alarms, opts.rate,
                                 opts.seconds)
        figures = await measure(opts, broker, urls, pids)
        figures["broker_warm_up"] = warmed
        if peer is not None:
            figures["peer"] = peer
    finally:
        if receiver is not None:
            await receiver.stop()
    return figures


async def measure(opts: BenchOptions, broker: str, urls: list[str], pids: list[int]) -> dict:
    """Every phase `opts` asks for against the workers at `urls` (their processes `pids`, when
    started here) on `broker`.

        figures = await measure(BenchOptions(alarms=300), broker.url, urls, [worker.pid])
    """
    run_id = uuid.uuid4().hex[:8]
    servers = bootstrap_servers(broker)
    names = [topics.task_topic(d) for d in configured_departments()]
    watcher = Watcher(servers, names, f"bench-{run_id}-")
    await watcher.start()
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    url = urls[0]
    storm = memory = None
    try:
        # one alarm first: how many tasks, to whom, how big; it also warms the pipeline up
        probe = f"bench-{run_id}-p0"
        await produce(producer, topics.ALARMS, [(probe, alarm(probe, probe))])
        if not await watcher.wait_count(probe, 1, timeout=30):
            raise RuntimeError("no task for the probe alarm within 30 s: is the worker "
                               "running against this broker?")
        await asyncio.sleep(1.5)  # the rest of its tasks
        per_alarm = len(watcher.tasks[probe])
        departments = sorted(watcher.departments)
        size = round(sum(watcher.sizes) / len(watcher.sizes))
        say(f"a fire_report opens one incident and {per_alarm} task(s) "
            f"({', '.join(departments)}), {size} bytes each")
        idle = await idle_rate(urls)
        say(f"the worker(s) use {idle:.0%} of a core when idle (polling)")

        # latency first, on an idle pipeline; then the burst, whose backlog nothing follows
        say(f"latency, {opts.rate:g}/s for {opts.seconds:g} s ...")
        before = await asyncio.to_thread(histogram, url)
        used_before = await cpu(urls)
        latency, ms = await phases.latency(producer, watcher, f"bench-{run_id}-l", opts.rate,
                                           opts.seconds, per_alarm)
        used = await cpu(urls)
        if used_before is not None and used is not None:  # the warm-up second's included
            latency["worker_cpu_ms_per_alarm"] = round(
                (used - used_before) * 1000 / (latency["alarms"] + latency["warm_up_alarms"]), 2)
        latency["worker_histogram"] = worker_view(before, await asyncio.to_thread(histogram,
                                                                                  url))
        await settle(urls, idle)
        say(f"throughput, {opts.alarms} alarms ...")
        used_before = await cpu(urls)
        out = opts.profile if pids else None
        profiler = profile(pids[0], out) if out else None
        try:
            through = await throughput(producer, watcher, topics.ALARMS, f"bench-{run_id}-t",
                                       opts.alarms, per_alarm)
        finally:
            if profiler is not None and out is not None:
                await asyncio.to_thread(stop_profile, profiler, out)
        drained = await settle(urls, idle)
        used = await cpu(urls)
        if used_before is not None and used is not None:  # the later stages' share included
            through["worker_cpu_ms_per_alarm"] = round((used - used_before) * 1000
                                                       / opts.alarms, 2)
            through["drained_after_s"] = drained
        relayed = faust_relayed = None
        if not opts.skip_relay:
            partitions = len(await producer.partitions_for(topics.ALARMS))
            say(f"plain aiokafka relay, {opts.alarms} alarms ...")
            relayed = await relay_phase(broker, producer, run_id, opts.alarms, per_alarm,
                                        departments, size, partitions)
            say(f"the same relay as a plain Faust agent, {opts.alarms} alarms ...")
            faust_relayed = await relay_phase(broker, producer, run_id, opts.alarms,
                                              per_alarm, departments, size, partitions,
                                              "faust-relay")
        if opts.storm:
            say(f"storm, {opts.rate * 10:g} alarms/s for {opts.seconds:g} s, a fire report "
                f"halfway ...")
            storm = await phases.storm(producer, watcher, f"bench-{run_id}-s", opts.rate * 10,
                                       opts.seconds)
            await settle(urls, idle)
        if opts.memory:
            say(f"memory, {opts.memory} alarms at {max(1, opts.memory // 10)} sites ...")
            memory = await phases.memory(producer, watcher, urls, idle, f"bench-{run_id}-m",
                                         opts.memory, per_alarm)
    finally:
        await watcher.stop()
        await producer.stop()

    def share(of: dict | None, to: dict | None) -> float | None:
        return (round(of["alarms_per_s"] / to["alarms_per_s"], 3)
                if of and to and to["alarms_per_s"] else None)
    ratio, to_faust = share(through, relayed), share(through, faust_relayed)
    cpu_ms = through.get("worker_cpu_ms_per_alarm")
    webhooks = opts.peer is not None  # the workers POST a webhook per task: issue 21's 1 ms
    cpu_max = TARGET_CPU_WEBHOOKS_MS if webhooks else TARGET_CPU_MS
    return {"run_id": run_id, "cpus": os.cpu_count(), "workers": len(urls),
            "tasks_per_alarm": per_alarm, "departments": departments, "task_bytes": size,
            "throughput": through, "latency": latency, "relay": relayed,
            "ratio": ratio, "faust_relay": faust_relayed,
            "faust_relay_ratio": share(faust_relayed, relayed),
            "ratio_to_faust_relay": to_faust,
            "storm": storm, "memory": memory, "idle_cores": round(idle, 3), "webhooks": webhooks,
            "targets": {"ratio_min": TARGET_RATIO, "faust_ratio_min": TARGET_FAUST_RATIO,
                        "cpu_ms_max": cpu_max, "p99_ms_max": TARGET_P99_MS,
                        "fire_ms_max": TARGET_FIRE_MS, "rss_mb_max": TARGET_RSS_MB},
            "met": {"ratio": ratio is not None and ratio >= TARGET_RATIO,
                    "faust_ratio": to_faust is not None and to_faust >= TARGET_FAUST_RATIO,
                    "cpu": cpu_ms is not None and cpu_ms <= cpu_max,
                    "p99": latency["p99_ms"] is not None
                            and latency["p99_ms"] <= TARGET_P99_MS},
            "latencies_ms": [round(x, 3) for x in ms]}
