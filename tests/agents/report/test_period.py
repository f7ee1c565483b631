"""The period report from fixed timelines: counts, the 接诉即办 rates, percentiles, and each
format's structure (and escaping)."""

import csv
import io
from datetime import date, timedelta
from html.parser import HTMLParser

from agents.logic.timelines import entry
from agents.report.period import percentile, period_stats, task_times
from agents.report.period_report import period_csv, period_html, period_markdown
from schemas import Incident, PlaybookRef, Timeline
from tests.conftest import T0  # 2023-05-16 14:03:07 +08:00

NAMES = {"police": "派出所", "power_supply": "供电所", "safety_office": "安委会办公室"}
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def timeline(n: int, *, ack: dict[str, float], done: dict[str, float], overdue=(),
             kind="smoke", site="lab", site_type="laboratory", level="II", device="smk-1",
             false_alarm=False, day: int = 0) -> Timeline:
    """Incident n opened at T0 + day days; each department dispatched at once, acknowledged
    after ack[dept] s and completed after done[dept] s."""
    at = T0 + timedelta(days=day, minutes=n)
    iid = f"inc-{n}"
    inc = Incident(incident_id=iid, level=level, site_id=site, kind=kind, hazard="fire",
                   playbook=PlaybookRef(id="p", version="1"), opened_at=at, last_alarm_at=at,
                   status="closed", closed_at=at + timedelta(hours=1),
                   confirmation="false_alarm" if false_alarm else "confirmed")
    es = [entry(iid, "alarm_received", at, alarm_id=f"a{n}",
                detail={"kind": kind, "device_id": device, "description": HOSTILE}),
          entry(iid, "incident_opened", at, detail={"site_id": site, "site_type": site_type})]
    for dept in ack:
        tid = f"{iid}.{dept}"
        es.append(entry(iid, "task_dispatched", at, task_id=tid, department=dept, revision=1))
        es.append(entry(iid, "task_acknowledged", at + timedelta(seconds=ack[dept]),
                        task_id=tid, department=dept, revision=2))
        if dept in done:
            es.append(entry(iid, "task_completed", at + timedelta(seconds=done[dept]),
                            task_id=tid, department=dept, revision=3))
        if dept in overdue:
            es.append(entry(iid, "task_overdue", at + timedelta(seconds=30), task_id=tid,
                            department=dept, key="ack"))
            es.append(entry(iid, "escalated", at + timedelta(seconds=30), task_id=tid,
                            department=dept, key="e"))
            notice = f"{tid}:ack_overdue:safety_office"
            es.append(entry(iid, "task_dispatched", at + timedelta(seconds=30), task_id=notice,
                            department="safety_office", revision=1,
                            detail={"notice_of": tid}))
    return Timeline(incident=inc, entries=es)


TIMELINES = [
    timeline(1, ack={"police": 40, "power_supply": 100}, done={"police": 1800}),
    timeline(2, ack={"police": 20, "power_supply": 400}, done={"police": 600,
                                                                "power_supply": 3600},
             overdue=("power_supply",)),
    timeline(3, ack={"police": 60}, done={"police": 900}, kind="fire_report", site="b7",
             site_type="residential", level="I", device="smk-9"),
    timeline(4, ack={"police": 30}, done={}, false_alarm=True, site="b7",
             site_type="residential", device="smk-9"),
    timeline(5, ack={"police": 5}, done={"police": 5}, day=40),   # outside the period
]
STATS = period_stats(TIMELINES, date(2023, 5, 16), date(2023, 5, 17))


def test_task_times_follow_the_entries_and_know_notices():
    times = task_times(TIMELINES[1].entries)
    assert [(t.department, t.notice) for t in times] == [
        ("police", False), ("power_supply", False), ("safety_office", True)]
    power = times[1]
    assert (power.answered - power.dispatched, power.overdue) == (timedelta(seconds=400), True)


def test_counts_by_kind_site_type_level_and_the_period_bounds():
    assert STATS.incidents == 4 and STATS.alarms == 4 and STATS.escalations == 1
    assert STATS.by_kind == {"smoke": 3, "fire_report": 1}
    assert STATS.by_site_type == {"laboratory": 2, "residential": 2}
    assert STATS.by_level == {"II": 3, "I": 1}
    assert STATS.false_alarms_by_site == {"b7": 1}
    assert STATS.noisiest_devices() == [("smk-1", 2), ("smk-9", 2)]


def test_department_rates_and_percentiles():
    police, power = STATS.departments["police"], STATS.departments["power_supply"]
    assert "safety_office" not in STATS.departments, "notices are not the office's tasks"
    assert (police.tasks, police.answered, police.completed) == (4, 4, 3)
    assert police.response_rate == 1.0 and police.resolution_rate == 0.75
    assert police.median_ack == timedelta(seconds=30)          # 20, 30, 40, 60
    assert police.p90_ack == timedelta(seconds=60)
    assert police.median_completion == timedelta(seconds=900)  # 600, 900, 1800
    assert (power.tasks, power.overdue, power.breach_rate) == (2, 1, 0.5)
    assert power.resolution_rate == 0.5 and power.p90_ack == timedelta(seconds=400)


def test_percentile_is_nearest_rank():
    values = [timedelta(seconds=s) for s in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)]
    assert percentile(values, 50) == timedelta(seconds=5)
    assert percentile(values, 90) == timedelta(seconds=9)
    assert percentile(values, 100) == timedelta(seconds=10)
    assert percentile([], 50) is None


def test_markdown_has_a_table_per_section_with_a_row_per_item():
    md = period_markdown(STATS, NAMES)
    assert md.startswith("# 事件统计报告 2023-05-16 – 2023-05-16")
    section = md.split("## 部门响应 Departments (接诉即办)")[1].split("##")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(rows) == 3                                    # header, police, power supply
    assert rows[1].split(" | ")[:3] == ["| police", "派出所", "4"]
    assert "| 100% | 75% | 0% | 30 s | 1 min 00 s | 15 min 00 s |" in rows[1]


def test_csv_has_a_bom_and_parses_in_long_form():
    body = period_csv(STATS, NAMES)
    assert body.startswith("\ufeff".encode("utf-8"))
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    police = next(r for r in rows if r[:2] == ["departments", "police"])
    assert police[2:6] == ["派出所", "4", "100%", "75%"]
    assert ["noisiest_devices", "smk-1", "2"] in rows


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained_with_charts_and_tables():
    page = period_html(STATS, NAMES)
    parsed = Tags()
    parsed.feed(page)
    ids = {a.get("id") for _, a in parsed.tags}
    assert {"chart-kinds", "chart-ack", "chart-breach", "departments", "by_kind"} <= ids
    bars = [a for t, a in parsed.tags if t == "rect" and a.get("class") == "bar"]
    assert len(bars) == 2 + 2 + 2                       # kinds, ack medians, breach rates
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert not any(k.startswith("on") or k in ("src", "href") for _, a in parsed.tags for k in a)


def test_values_from_alarms_and_departments_are_escaped():
    hostile = period_stats([timeline(9, ack={"police": 5}, done={}, kind=HOSTILE, site=HOSTILE,
                                     device=HOSTILE, false_alarm=True)],
                           date(2023, 5, 16), date(2023, 5, 17))
    page = period_html(hostile, {"police": HOSTILE})
    parsed = Tags()
    parsed.feed(page)
    assert not any(t in ("script", "img") for t, _ in parsed.tags)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    md = period_markdown(hostile, {"police": HOSTILE})
    assert "<script>" not in md and "<img" not in md
    rows = list(csv.reader(io.StringIO(period_csv(hostile, {}).decode("utf-8-sig"))))
    assert ["by_kind", HOSTILE, "1"] in rows
