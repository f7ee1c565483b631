"""`whistle bench`, small, on a fresh embedded broker and worker it starts and stops itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from streams.bench import percentile


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_a_small_bench_measures_every_figure_and_prints_them(tmp_path):
    out, picture = tmp_path / "out.json", tmp_path / "latency.svg"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "bench", "--alarms", "300", "--rate", "50",
         "--seconds", "3", "--json", str(out), "--svg", str(picture)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 60

    f = json.loads(out.read_text())
    t, lat, relay = f["throughput"], f["latency"], f["relay"]
    assert f["tasks_per_alarm"] >= 1
    assert t["tasks_seen"] == t["tasks_expected"] == 300 * f["tasks_per_alarm"]
    assert t["alarms_per_s"] > 0 and t["elapsed_s"] > 0
    assert relay["tasks_seen"] == relay["tasks_expected"] == t["tasks_expected"]
    assert relay["alarms_per_s"] > 0
    assert f["ratio"] == round(t["alarms_per_s"] / relay["alarms_per_s"], 3)
    assert lat["alarms"] == lat["alarms_answered"] == 150
    assert lat["tasks_seen"] == lat["tasks_expected"] == 150 * f["tasks_per_alarm"]
    assert 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert len(f["latencies_ms"]) == 150

    for measure in ("throughput", "tasks/s", "latency at 50/s", "p50", "p99", "max", "relay",
                    "ratio", ">= 50% of relay", "<= 25 ms"):
        assert measure in done.stdout, f"{measure!r} missing from the table:\n{done.stdout}"
    assert ET.fromstring(picture.read_text()).tag.endswith("svg")
