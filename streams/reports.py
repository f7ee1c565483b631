"""Where reports get their timelines: a running Whistle's API, or the topics themselves
(`--from-topic`: `whistle.incidents` and `whistle.timeline` read whole), so a report does not
depend on one worker's state. And the formats, by name.

    >>> render_timeline(timeline, "md", names)[:9]
    b'# \\xe4\\xba\\x8b\\xe5\\x90\\x8e...'
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date

import httpx

from agents.logic.timelines import append, in_time_order
from agents.report.period import period_stats
from agents.report.period_report import period_csv, period_html, period_markdown
from agents.report.render import to_csv, to_html, to_json, to_markdown
from agents.report.review import review
from schemas import Incident, Timeline, TimelineEntry, topics

__all__ = ["FORMATS", "MEDIA_TYPES", "PERIOD_FORMATS", "render_period", "render_timeline",
           "timelines_from_api", "timelines_from_topic"]

FORMATS = ("json", "csv", "md", "html")
PERIOD_FORMATS = ("html", "md", "csv")
MEDIA_TYPES = {"json": "application/json; charset=utf-8", "csv": "text/csv; charset=utf-8",
               "md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}


def render_timeline(timeline: Timeline, fmt: str, names: dict[str, str]) -> bytes:
    """One incident's after-action timeline in `fmt` (one of FORMATS)."""
    if fmt == "json":
        return to_json(timeline).encode("utf-8")
    made = review(timeline, names)
    if fmt == "csv":
        return to_csv(made)
    return (to_markdown(made) if fmt == "md" else to_html(made)).encode("utf-8")


def render_period(timelines: list[Timeline], start: date, last: date, fmt: str,
                  names: dict[str, str]) -> bytes:
    """The period report from `start` to `last` (both local dates, inclusive)."""
    stats = period_stats(timelines, start, date.fromordinal(last.toordinal() + 1))
    if fmt == "csv":
        return period_csv(stats, names)
    return (period_markdown(stats, names) if fmt == "md"
            else period_html(stats, names)).encode("utf-8")


def timelines_from_api(url: str, headers: dict[str, str],
                       wanted: Callable[[dict], bool] = lambda incident: True) -> list[Timeline]:
    """Every incident the token may read (that `wanted` keeps), with its timeline."""
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30) as client:
        answer = client.get("/api/v1/incidents")
        answer.raise_for_status()
        found = []
        for incident in answer.json()["incidents"]:
            if wanted(incident):
                got = client.get(f"/api/v1/incidents/{incident['incident_id']}/timeline")
                got.raise_for_status()
                found.append(Timeline.model_validate(got.json()))
        return found


def timelines_from_topic(broker: str, timeout: float = 30.0) -> list[Timeline]:
    """Every incident's latest snapshot and its entries, read from the topics as they stand."""
    incidents, entries = asyncio.run(asyncio.wait_for(_read_topics(broker), timeout))
    return [Timeline(incident=inc, entries=in_time_order(entries.get(iid, [])))
            for iid, inc in sorted(incidents.items(), key=lambda kv: kv[1].opened_at)]


async def _read_topics(broker: str) -> tuple[dict[str, Incident], dict[str, list[dict]]]:
    incidents: dict[str, Incident] = {}
    entries: dict[str, list[dict]] = {}
    for record in await _read_whole(broker, topics.INCIDENTS):
        inc = Incident.model_validate_json(record.value)
        held = incidents.get(inc.incident_id)
        if held is None or held.revision <= inc.revision:
            incidents[inc.incident_id] = inc
    for record in await _read_whole(broker, topics.TIMELINE):
        e = TimelineEntry.model_validate_json(record.value)
        entries[e.incident_id] = append(entries.get(e.incident_id, []), e)
    return incidents, entries


async def _read_whole(broker: str, topic: str) -> list:
    """Every record of `topic` up to where it ended when asked (no consumer group)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.kafka.broker import bootstrap_servers

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker),
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            batch = await consumer.getmany(*tps, timeout_ms=500)
            records += [r for tp, rs in batch.items() for r in rs if r.offset < ends[tp]]
        return records
    finally:
        await consumer.stop()
