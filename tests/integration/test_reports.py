"""After-action timelines and the period report on the real stack: every format from the API,
`whistle timeline` from the API and from the topics (the same entries), `whistle report`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from agents.report.period import LOCAL

DEMO = Path(__file__).resolve().parents[2] / "streams" / "demo" / "lab-fire.json"


def whistle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True,
                          timeout=60)


def lab_fire(stack) -> str:
    """Replay the demo (again: the same incident), the police answer; the incident id."""
    alarms = json.loads(DEMO.read_text(encoding="utf-8"))
    assert stack.http.post("/api/v1/alarms", json=alarms).status_code == 202

    def police():
        tasks = stack.http.get("/api/v1/tasks", params={"department": "police"}).json()
        return tasks["tasks"][0] if tasks["tasks"] else None
    task = stack.wait_for(police, 10, "the police task")
    for action in ("ack", "start", "complete") if task["status"] == "dispatched" else ():
        answer = stack.http.post(f"/api/v1/tasks/{task['task_id']}/{action}",
                                 json={"by": "李警官", "note": "警社联动"})
        assert answer.status_code == 200
    stack.wait_for(lambda: any(e["type"] == "task_completed" for e in stack.http.get(
        f"/api/v1/incidents/{task['incident_id']}/timeline").json()["entries"]), 10,
        "the completion on the timeline")
    return task["incident_id"]


def test_the_timeline_in_every_format_from_the_api_and_the_command(stack, tmp_path):
    inc = lab_fire(stack)
    url = f"/api/v1/incidents/{inc}/timeline"
    as_json = stack.http.get(url).json()
    n = len(as_json["entries"])

    answer = stack.http.get(url, params={"format": "csv"})
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.content.startswith("\ufeff".encode("utf-8"))
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert len(rows) == n + 1 and "派出所" in {r[5] for r in rows}

    answer = stack.http.get(url, params={"format": "md"})
    assert answer.headers["content-type"] == "text/markdown; charset=utf-8"
    assert answer.text.startswith("# 事后倒查报告")

    answer = stack.http.get(url, params={"format": "html"})
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert answer.text.count('<tr data-type="') == n and 'data-department="police"' in answer.text

    assert stack.http.get(url, params={"format": "pdf"}).status_code == 422

    out = tmp_path / "report.html"
    done = whistle("timeline", inc, "--format", "html", "-o", str(out), "--url", stack.url)
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == answer.text

    from_api = whistle("timeline", inc, "--url", stack.url)
    from_topic = whistle("timeline", inc, "--from-topic", "--broker", stack.broker)
    assert from_topic.returncode == 0, from_topic.stderr
    api_entries = json.loads(from_api.stdout)["entries"]
    topic_entries = json.loads(from_topic.stdout)["entries"]
    assert [e["entry_id"] for e in topic_entries] == [e["entry_id"] for e in api_entries]
    assert json.loads(from_topic.stdout)["incident"]["incident_id"] == inc

    missing = whistle("timeline", "inc-none", "--url", stack.url)
    assert missing.returncode == 1 and b"no incident inc-none" in missing.stderr


def test_the_period_report_counts_todays_incidents(stack, tmp_path):
    lab_fire(stack)
    today = datetime.now(LOCAL).date().isoformat()
    md = whistle("report", "--from", today, "--to", today, "--format", "md", "--url", stack.url)
    assert md.returncode == 0, md.stderr
    text = md.stdout.decode("utf-8")
    incidents = len(stack.http.get("/api/v1/incidents").json()["incidents"])
    assert f"| incidents | {incidents} |" in text
    assert "| police | 派出所 |" in text

    out = tmp_path / "period.csv"
    from_topic = whistle("report", "--from", today, "--to", today, "--format", "csv",
                         "--from-topic", "--broker", stack.broker, "-o", str(out))
    assert from_topic.returncode == 0, from_topic.stderr
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert ["summary", "incidents", str(incidents)] in rows

    html = whistle("report", "--from", today, "--to", today, "--url", stack.url)
    assert b'<svg id="chart-kinds"' in html.stdout
    backwards = whistle("report", "--from", today, "--to", "2000-01-01", "--url", stack.url)
    assert backwards.returncode == 2 and b"before" in backwards.stderr
