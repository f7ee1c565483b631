"""Prometheus metrics of one worker, in a registry of its own (so tests can build several).

    >>> m = Metrics(); m.alarms.labels(kind="smoke", result="opened").inc()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # *_created series only double what a scrape shows
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        self.open_tasks = OpenTasks()
        r.register(self.open_tasks)
        self.alarms = Counter("whistle_alarms_total", "Alarms triaged, by kind and result "
                              "(open, join, attach, record, duplicate)", ["kind", "result"],
                              registry=r)
        self.read_ahead = Counter("whistle_alarms_read_ahead_total", "People's alarms copied "
                                  "to the urgent lane ahead of a backlog", registry=r)
        self.ingested = Counter("whistle_alarms_accepted_total",
                                "Alarms the HTTP API accepted (202)", registry=r)
        self.rejected = Counter("whistle_alarms_rejected_total",
                                "HTTP alarm requests refused, by status", ["status"], registry=r)
        self.dead_letters = Counter("whistle_dead_letters_total",
                                    "Messages sent to the dead-letter topic", ["topic"], registry=r)
        self.tasks = Counter("whistle_tasks_dispatched_total", "Tasks dispatched, by department",
                             ["department"], registry=r)
        self.task_updates = Counter("whistle_task_updates_total", "Task updates applied, by "
                                    "department and action", ["department", "action"], registry=r)
        self.playbook_reloads = Counter("whistle_playbook_reloads_total", "Playbook reloads, "
                                        "by result (loaded, refused)", ["result"], registry=r)
        self.false_alarms = Counter("whistle_false_alarms_total",
                                    "Incidents a verification found to be false alarms",
                                    registry=r)
        self.devices_offline = Counter("whistle_devices_offline_total",
                                       "Devices reported offline (silent past their interval)",
                                       registry=r)
        self.alarm_to_task = Histogram(
            "whistle_alarm_to_task_seconds", "From the API accepting an alarm to its incident's "
            "tasks being handed to the producer", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

        self.ack_seconds = Histogram(
            "whistle_task_ack_seconds", "From a task's dispatch to its department acknowledging "
            "it, by department", ["department"], registry=r,
            buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600))
        self.escalations = Counter("whistle_escalations_total", "Escalations applied, by cause "
                                   "(ack_overdue, complete_overdue, delivery_failed)", ["cause"],
                                   registry=r)
        self.webhook_attempts = Counter("whistle_webhook_attempts_total", "Webhook POSTs, by "
                                        "target and result (delivered, retry, failed)",
                                        ["target", "result"], registry=r)
        self.webhook_seconds = Histogram(
            "whistle_webhook_seconds", "Time of one webhook POST, by target", ["target"],
            registry=r, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.stream_clients = Gauge("whistle_stream_clients", "Open department streams (SSE), "
                                    "by department", ["department"], registry=r)
        self.auth_refused = Counter("whistle_auth_refused_total", "Requests refused by auth, by "
                                    "status (401, 403)", ["status"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class OpenTasks(Collector):
    """`whistle_open_tasks{department}`: tasks not yet completed, rejected or cancelled in the
    partitions this worker holds (sum over workers), from `OpenTaskIndex`: a dict lookup per
    write."""

    def __init__(self) -> None:
        self.count: Callable[[], Mapping[str, int]] = dict

    def collect(self):
        family = GaugeMetricFamily("whistle_open_tasks", "Tasks not yet completed or rejected, "
                                   "by department (this worker's partitions)",
                                   labels=["department"])
        for department, n in sorted(self.count().items()):
            family.add_metric([department], n)
        yield family
