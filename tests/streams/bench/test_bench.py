"""`whistle bench`, small, on a fresh embedded broker and worker it starts and stops itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from streams.bench.options import BenchOptions, refused
from streams.bench.run import percentile


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_the_options_it_cannot_run_are_refused_with_the_reason():
    assert refused(BenchOptions()) is None
    assert refused(BenchOptions(warm_broker=0)) is None  # measured cold
    assert refused(BenchOptions(warm_broker=-1)) == "--warm-broker must be 0 (none) or more seconds"
    assert refused(BenchOptions(broker="kafka://h:9092")).startswith("give both --broker")
    assert refused(BenchOptions(workers=0)) == "--workers must be at least 1"


def test_a_small_bench_measures_every_figure_and_prints_them(tmp_path):
    out, picture, profile = tmp_path / "out.json", tmp_path / "latency.svg", tmp_path / "p.txt"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "bench", "--alarms", "300", "--rate", "50",
         "--seconds", "3", "--memory", "200", "--json", str(out), "--svg", str(picture),
         "--profile", str(profile), "--warm-broker", "2"],
        capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 180

    f = json.loads(out.read_text())
    t, lat, relay = f["throughput"], f["latency"], f["relay"]
    assert f["tasks_per_alarm"] >= 1
    assert t["tasks_seen"] == t["tasks_expected"] == 300 * f["tasks_per_alarm"]
    assert t["alarms_per_s"] > 0 and t["elapsed_s"] > 0
    assert relay["tasks_seen"] == relay["tasks_expected"] == t["tasks_expected"]
    assert relay["alarms_per_s"] > 0
    assert f["ratio"] == round(t["alarms_per_s"] / relay["alarms_per_s"], 3)
    faust = f["faust_relay"]  # the same relay as one plain Faust agent: Faust's own cost
    assert faust["tasks_seen"] == faust["tasks_expected"] == t["tasks_expected"]
    assert f["faust_relay_ratio"] == round(faust["alarms_per_s"] / relay["alarms_per_s"], 3)
    assert f["ratio_to_faust_relay"] == round(t["alarms_per_s"] / faust["alarms_per_s"], 3)
    assert lat["alarms"] == lat["alarms_answered"] == 150 and lat["warm_up_alarms"] == 50
    assert lat["tasks_seen"] == lat["tasks_expected"] == 200 * f["tasks_per_alarm"]
    assert 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"] and lat["warm_up_max_ms"] > 0
    assert len(f["latencies_ms"]) == 150
    assert 0 < t["worker_cpu_ms_per_alarm"] < 1000 and 0 <= f["idle_cores"] < 2
    assert 0 < lat["worker_cpu_ms_per_alarm"] < 1000  # at the steady rate, warm-up second in
    # issue 21's targets, each judged from this run's figures
    assert f["met"]["ratio"] == (f["ratio"] >= 0.25)
    assert f["met"]["faust_ratio"] == (f["ratio_to_faust_relay"] >= 1.0)
    assert f["met"]["cpu"] == (t["worker_cpu_ms_per_alarm"] <= 0.5)
    storm, memory = f["storm"], f["memory"]
    assert storm["rate"] == 500 and storm["alarms"] == 1500
    assert storm["fire_first_task_ms"] > 0 and storm["met"] == (storm["fire_first_task_ms"]
                                                                <= 3000)
    assert memory["incidents"] == memory["incidents_with_tasks"] == 20
    assert f["store"] == os.environ.get("WHISTLE_STORE", "memory://")  # the workers' tables
    assert f"incidents ({f['store']})" in done.stdout
    assert 20 < memory["rss_mb"] < 2000  # MB, the target's unit; and MiB beside it
    assert memory["rss_mib"] == pytest.approx(memory["rss_mb"] * 1e6 / 2**20, abs=0.2)
    # `whistle up` timed on a new data directory and again, the embedded Kafka started alone
    start = f["startup"]
    assert 0 < start["up_again_s"] and 0 < start["up_new_s"] and 0 < start["broker_ready_s"]
    assert 50 < start["broker_rss_mb"] < 4000 and start["broker_cpu_s"] > 0
    assert "embedded Apache Kafka kafka://127.0.0.1:" in f["where"]
    # the broker it started was warmed first: 2 s of alarms at 200/s, at 100 sites of their own
    warmed = f["broker_warm_up"]
    assert (warmed["alarms"], warmed["rate"], warmed["sites"]) == (400, 200, 100)
    assert warmed["sites_answered"] == 100 and warmed["seconds"] >= 2
    # py-spy's collapsed stacks: "frame;frame;... samples", the worker's own code among them
    stacks = profile.read_text().splitlines()
    assert stacks and all(line.rsplit(" ", 1)[1].isdigit() for line in stacks)
    assert any("streams/worker.py" in line for line in stacks)

    for measure in ("throughput", "tasks/s", "latency at 50/s", "p50", "p99", "max", "relay",
                    "ratio", ">= 25% of relay", "<= 25 ms", "worker CPU per alarm",
                    "<= 0.5 ms", "worker CPU per alarm at this rate",
                    "fire report to its first task", "<= 3000 ms",
                    "worker RSS (MB)", "<= 200 MB", "warm-up", "plain Faust agent",
                    "whistle to it", ">= 100%",
                    "whistle up to its ready line", "<= 20 s", "the embedded Kafka's RSS",
                    "alarms through the new broker before measuring (200/s)"):
        assert measure in done.stdout, f"{measure!r} missing from the table:\n{done.stdout}"
    assert ET.fromstring(picture.read_text()).tag.endswith("svg")
