"""The composition root: `build()` assembles one worker, a Faust app with Whistle's topics,
tables, agents, timers and HTTP views. Only the CLI imports it (import-linter holds this).

    >>> whistle = build(Settings())
    >>> whistle.app            # a faust.App, ready for faust.Worker(whistle.app).execute...()

Nothing here reads the environment: `Settings` is read once by the CLI and passed in.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import faust
from faust.types.tables import TableT

from agents import campaigns as campaign_agent
from agents import dispatch, escalation, incident_updates, site_events, task_updates, timers, triage
from agents.logic.locate import Registry
from agents.logic.silences import apply_record as apply_silence
from playbooks import PlaybookError
from playbooks.campaigns import load_campaigns
from playbooks.coordinator import PlaybookLibrary
from playbooks.departments import load_departments
from schemas import topics as names
from schemas import utc_now
from streams.http import api, directory, openapi, probes
from streams.http import campaigns as campaign_views
from streams.http import command as command_views
from streams.http import devices as device_views
from streams.http import errors as http_errors
from streams.http import handover as handover_views
from streams.http import incidents as incident_views
from streams.http import playbooks as playbook_views
from streams.http import silences as silence_views
from streams.http.auth import Auth
from streams.http.gate import BrokerProbe, Gate
from streams.http.limits import RateLimits
from streams.http.routing import Routing
from streams.http.views import Route, mount
from streams.metrics import Metrics
from streams.notify import board, board_stream, console, feed, webhooks
from streams.runtime import changelog, creation, membership
from streams.runtime.lookahead import Lookahead
from streams.runtime.partitioner import CachedPartitioner
from streams.runtime.registry import RegistryReader
from streams.runtime.store import store_url
from streams.runtime.table_manager import TableManager
from streams.settings import Settings
from streams.worker import Tables, Topics, Whistle, WhistleApp

__all__ = ["build"]


def _new_app(settings: Settings) -> WhistleApp:
    url = settings.canonical_url or f"http://{settings.host}:{settings.port}"  # Faust's default
    app = WhistleApp(
        settings.app_id,
        broker=settings.broker,
        store=store_url(settings.store),
        datadir=str(settings.data),
        autodiscover=False,
        web_host=settings.host,
        web_bind=settings.host,
        web_port=settings.port,
        canonical_url=settings.canonical_url or None,
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_disable_leader=True,
        producer_acks=-1,
        producer_request_timeout=settings.produce_timeout,
        producer_max_batch_size=settings.producer_batch_bytes,
        producer_max_request_size=settings.max_message_bytes,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=settings.poll_records,
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=settings.rebalance_timeout,
        broker_heartbeat_interval=min(1.0, settings.rebalance_timeout / 3),
        consumer_group_instance_id=membership.instance_id(url) if settings.static_membership
        else None,
        table_standby_replicas=0,
        web_application_options={"middlewares": [http_errors.json_errors]},
        Table=changelog.Table,
        TableManager=TableManager,
        producer_partitioner=CachedPartitioner(),
    )
    app.fetch_wait_ms = settings.fetch_wait_ms
    http_errors.install()
    return app


def store_options(settings: Settings) -> dict[str, int]:
    """RocksDB's sizes for one table partition (a fresh dict: Faust's store pops from it).

    Faust's defaults (a 64 MiB write buffer, up to 3 of them, and a 2 GiB block cache, per
    table partition, 7 tables x the partitions a worker holds) let the memtables keep nearly
    everything a worker wrote. Measured with `whistle bench --memory 100000` (4 partitions):
    RSS past 548 MiB and growing with Faust's defaults, 344 MiB with 4 MiB buffers and an
    8 MiB cache, 282 MiB with 2 MiB and 4 MiB; 1 MiB and 1 MiB, the defaults here since issue
    21, took the worker from 296 MiB (311 MB) to 235 MiB (246 MB) after 100,000 alarms
    (deploy/README.md, sizing). A worker writes small values and reads back what it wrote
    lately, which the memtables still hold."""
    memtable, cache = settings.rocksdb_memtable_mb * 2**20, settings.rocksdb_cache_mb * 2**20
    options = {"write_buffer_size": memtable, "max_write_buffer_number": 2,
               "target_file_size_base": memtable, "block_cache_size": cache,
               "block_cache_compressed_size": cache}
    if settings.rocksdb_memory_mb:  # one budget for every partition (streams.runtime.rocks)
        options["shared_memory"] = settings.rocksdb_memory_mb * 2**20
    return options


def build(settings: Settings, clock: Callable[[], datetime] = utc_now) -> Whistle:
    """Assemble a worker from settings: load playbooks, sites and departments, declare topics
    and tables, register the agents and the HTTP views."""
    departments = load_departments(settings.departments).by_id()
    access = settings.access(departments)
    library = PlaybookLibrary(settings.playbooks, departments)
    app = _new_app(settings)

    def topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw",
                         partitions=settings.partitions, internal=True, **kw)

    topics = Topics(
        alarms=topic(names.ALARMS), dlq=topic(names.DLQ), triaged=topic(names.TRIAGED),
        alarms_urgent=topic(names.ALARMS_URGENT), triaged_urgent=topic(names.TRIAGED_URGENT),
        incidents=topic(names.INCIDENTS), task_updates=topic(names.TASK_UPDATES),
        incident_updates=topic(names.INCIDENT_UPDATES),
        timeline=topic(names.TIMELINE), site_events=topic(names.SITE_EVENTS),
        escalations=topic(names.ESCALATIONS), deliveries=topic(names.DELIVERIES),
        feedback=topic(names.FEEDBACK),
        registry=topic(names.REGISTRY, compacting=True),
        silences=topic(names.SILENCES, compacting=True),
        campaigns=topic(names.CAMPAIGNS),
        tasks={d: topic(names.task_topic(d)) for d in departments},
    )

    def table(name: str) -> TableT:
        return app.Table(name, default=None, partitions=settings.partitions,
                         options=store_options(settings))

    registry = Registry()
    tables = Tables(alarms_seen=table("alarms-seen"), sites=table("sites"),
                    devices=table("devices"), incidents=table("incidents"), tasks=table("tasks"),
                    timelines=table("timelines"), campaigns=table("campaigns"),
                    campaign_sites=table("campaign-sites"),
                    playbooks=app.GlobalTable("playbook-versions", default=None,
                                              partitions=settings.partitions,
                                              options=store_options(settings)))
    library.versions = tables.playbooks
    whistle = Whistle(settings=settings, app=app, topics=topics, tables=tables,
                      library=library, registry=registry,
                      departments=departments, metrics=Metrics(), access=access, clock=clock,
                      campaign_playbooks=load_campaigns(settings.campaigns, departments))

    whistle.metrics.open_tasks.count = lambda: whistle.open_tasks.counts(departments)
    reader = whistle.registry_reader = RegistryReader(
        settings.broker, registry, {names.SILENCES: partial(apply_silence, whistle.silences)})
    gate = Gate(Auth(access.tokens), Routing(app),
                BrokerProbe(app, settings.min_insync_replicas or 1))
    if not gate.auth.open:
        gate.limits = RateLimits(settings.rate_limit, settings.rate_burst)
        gate.strangers = RateLimits(settings.rate_limit, settings.rate_burst)

    app.create_first = partial(creation.create_missing, app, broker=settings.broker, channels=[
        *topics.all(), *(table.changelog_topic for table in app.tables.values())])

    @app.task
    async def declare_topics() -> None:
        # at once: one after another, a new broker's ~25 creations took a second (KRaft)
        await asyncio.gather(*(t.declare() for t in topics.all()))
        whistle.topics_declared = True

    @app.task
    async def read_registry() -> None:
        await reader.run()

    if settings.playbooks_watch > 0:
        @app.timer(settings.playbooks_watch)
        async def watch_playbooks() -> None:
            if whistle.library.changed_on_disk():
                try:
                    whistle.library.reload_and_report(whistle.playbook_reloads)
                except PlaybookError:
                    pass  # logged and counted; the running set stays

    @app.on_rebalance_complete.connect
    async def on_rebalanced(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        whistle.consuming = True

    @app.task
    async def freeze_startup_heap() -> None:
        """Move what the worker holds once it is up (modules, models, playbooks, the registry,
        recovered tables) out of the cyclic collector's sight. A full collection walks every
        tracked object and stops the worker meanwhile: measured in `whistle bench` at 200
        alarms/s, 52-159 ms each, the p99 alarm-to-task latency's tail (153 ms; 81 ms with
        this, 77 ms with no collector at all). Objects made later are collected as before."""
        await whistle.registry_read()
        while not whistle.consuming:
            await asyncio.sleep(0.1)
        gc.collect()
        gc.freeze()

    for stage in (triage, dispatch, task_updates, incident_updates, escalation, site_events,
                  timers):
        stage.register(whistle)
    campaign_agent.register(whistle)
    whistle.lookahead = lookahead = Lookahead(app, settings.broker, settings.app_id, whistle.send,
                                              whistle.metrics.read_ahead.inc)
    if settings.read_ahead:
        @app.task
        async def read_ahead() -> None:
            await lookahead.run_forever()
    task_feed = feed.start(app, settings.broker, list(departments), settings.partitions,
                           settings.stream_history)
    webhooks.register(whistle)
    mount(app, [
        *command_views.ROUTES,  # before the API's /api/v1/tasks/{task_id}/{action}
        *api.ROUTES,
        *device_views.ROUTES,
        *incident_views.ROUTES,
        *handover_views.ROUTES,
        *playbook_views.ROUTES,
        *silence_views.ROUTES,
        *campaign_views.ROUTES,
        *probes.ROUTES,
        Route(feed.PATH, feed.DepartmentStream, {"feed": task_feed}),
        *directory.ROUTES,
        Route(board_stream.PATH, board_stream.BoardStream, {"feed": task_feed}),
        *board.ROUTES,
        Route(console.PATH, console.Console),
        Route(openapi.PATH, openapi.OpenApi,
              {"body": openapi.body(list(departments), settings.max_batch)}),
    ], whistle, gate)
    return whistle
