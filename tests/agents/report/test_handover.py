"""The shift handover (交接班) from hand-built incidents, tasks and entries: which incident lands
in which section, what is overdue, what each escalation says, the workers' parts merged, the
shift's bounds refused naming the parameter, and the three formats."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from agents.logic.timelines import entry
from agents.report.handover import BadShift, handover, overdue_marks, parse_shift, part
from agents.report.handover_report import handover_html, handover_markdown, render_handover
from schemas import Incident, PlaybookRef, Task

CST = timezone(timedelta(hours=8))
DAY = datetime(2026, 12, 6, tzinfo=CST)
SINCE, UNTIL, NOW = DAY.replace(hour=8), DAY.replace(hour=20), DAY.replace(hour=20, minute=30)
SHIFT = parse_shift(SINCE.isoformat(), UNTIL.isoformat(), NOW)
NAMES = {"police": "派出所", "power_supply": "供电所", "safety_office": "安委会办公室",
         "district_emergency": "区应急管理局"}
HOSTILE = '<script>alert(1)</script>|`x`'


def at(hour: int, minute: int = 0, day: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute) + timedelta(days=day)


def incident(iid: str, opened: datetime, *, closed: datetime | None = None, status="open",
             level="III", reason: str | None = None) -> Incident:
    return Incident(incident_id=iid, status="closed" if closed else status, level=level,
                    site_id=f"site-{iid}", kind="smoke", hazard="fire",
                    playbook=PlaybookRef(id="p", version="1"), opened_at=opened,
                    last_alarm_at=opened, closed_at=closed,
                    close_reason=reason or ("handled" if closed else None))


def task(iid: str, dept: str, status: str, ack_due: datetime, complete_due: datetime,
         overdue=(), site_name="") -> Task:
    return Task(task_id=f"{iid}.{dept}", incident_id=iid, department=dept, step=dept,
                action="到场处置", status=status, ack_due=ack_due, complete_due=complete_due,
                created_at=ack_due - timedelta(minutes=5), updated_at=ack_due,
                site_id=f"site-{iid}", level="III", overdue=list(overdue), site_name=site_name)


INCIDENTS = [
    incident("inc-a", at(7), closed=at(9)),                          # closed in the shift
    incident("inc-b", at(10), level="II"),                           # opened, still open
    incident("inc-c", at(6), status="contained", level="I"),         # still open, escalated
    incident("inc-d", at(20, 10)),                                   # after the shift
    incident("inc-e", at(9, day=-1), closed=at(10, day=-1)),         # yesterday's
    incident("inc-f", at(9), closed=at(21), reason="false_alarm"),   # closed after the shift
]
TASKS = [
    task("inc-b", "police", "dispatched", at(10, 5), at(22), site_name=HOSTILE),
    task("inc-b", "power_supply", "in_progress", at(10, 5), at(22)),
    task("inc-b", "safety_office", "completed", at(10, 5), at(11)),
    task("inc-c", "power_supply", "in_progress", at(6, 5), at(12), overdue=["complete"]),
    task("inc-d", "police", "dispatched", at(20, 15), at(23)),
    task("inc-a", "police", "cancelled", at(7, 5), at(8)),
]
ENTRIES = [
    entry("inc-c", "level_changed", at(11), by="王值班", detail={"from": "II", "to": "I",
                                                                "note": "火势扩大"}),
    entry("inc-c", "task_overdue", at(12), task_id="inc-c.power_supply",
          department="power_supply", by="whistle",
          detail={"deadline": "complete", "due": at(12).isoformat()}),
    entry("inc-c", "escalated", at(12, 1), task_id="inc-c.power_supply",
          department="power_supply", by="whistle",
          detail={"cause": "complete_overdue", "notify": ["safety_office"], "n": 1, "times": 2}),
    entry("inc-c", "whistle_blown", at(12, 30), by="王值班",
          detail={"departments": ["district_emergency"], "reason": "实验室火灾升至I级"}),
    entry("inc-e", "escalated", at(10, day=-1), detail={"cause": "ack_overdue"}),
    entry("inc-b", "task_acknowledged", at(10, 3)),                  # not an escalation
]
SITES = {"site-inc-c": "银丰国际生物城 3号实验室"}


def made():
    return handover(SHIFT, INCIDENTS, TASKS, ENTRIES, NAMES, SITES)


def ids(rows) -> list[str]:
    return [r.incident_id for r in rows]


def test_each_incident_lands_in_its_sections():
    h = made()
    assert ids(h.opened) == ["inc-f", "inc-b"], "in the order they opened"
    assert ids(h.closed) == ["inc-a"] and h.closed[0].reason_text == "人工结案"
    assert ids(h.still_open) == ["inc-c", "inc-b", "inc-f"], "gravest first, then oldest"
    assert ids(h.escalated) == ["inc-c"] * 4
    assert h.counts() == {"opened": 2, "closed": 1, "escalated": 1, "escalations": 4,
                          "still_open": 3, "overdue": 3}


def test_still_open_shows_each_departments_open_tasks_and_the_age_at_the_shifts_end():
    b = next(r for r in made().still_open if r.incident_id == "inc-b")
    assert [t.text for t in b.tasks] == ["派出所：待接收（超时未确认接收）", "供电所：处置中"]
    assert b.age == timedelta(hours=10) and b.site_name == HOSTILE, "the task's copy of the name"
    c = next(r for r in made().still_open if r.incident_id == "inc-c")
    assert c.place == "银丰国际生物城 3号实验室" and c.status_text == "已控制"
    f = next(r for r in made().still_open if r.incident_id == "inc-f")
    assert f.status_text == "已结案 2026-12-06 21:00:00", "open at the shift's end, closed since"


def test_overdue_now_counts_missed_deadlines_and_marks_per_department():
    h = made()
    assert [(t.task_id, t.overdue) for t in h.overdue] == [
        ("inc-b.police", ("ack",)), ("inc-d.police", ("ack",)),
        ("inc-c.power_supply", ("complete",))]
    assert h.overdue_by_department() == [("police", "派出所", 2), ("power_supply", "供电所", 1)]
    done = task("inc-x", "police", "completed", at(1), at(2), overdue=["ack"])
    assert overdue_marks(done, NOW) == (), "a finished task is late no more"
    acked = task("inc-x", "police", "acknowledged", at(1), at(23), overdue=["ack"])
    assert overdue_marks(acked, NOW) == (), "acknowledged late: the ack mark is answered"
    marked = task("inc-x", "police", "in_progress", at(1), at(23), overdue=["complete"])
    assert overdue_marks(marked, NOW) == ("complete",), "the escalation agent's mark counts"


def test_each_escalation_says_what_happened():
    texts = [(e.type, e.text, e.by) for e in made().escalated]
    assert texts == [
        ("level_changed", "级别 II → I：火势扩大", "王值班"),
        ("task_overdue", "供电所 未在 2026-12-06 12:00:00 前完成", "whistle"),
        ("escalated", "供电所 超时未完成，通知 安委会办公室", "whistle"),
        ("whistle_blown", "吹哨，召集 区应急管理局：实验室火灾升至I级", "王值班"),
    ]


def test_the_workers_parts_merged_give_the_same_handover_from_json():
    halves = [part(SHIFT, INCIDENTS[:3], TASKS[:3], ENTRIES[:2]),
              part(SHIFT, INCIDENTS[3:], TASKS[3:], [e.model_dump(mode="json")
                                                      for e in ENTRIES[2:]])]
    kept = [i["incident_id"] for p in halves for i in p["incidents"]]
    assert kept == ["inc-a", "inc-b", "inc-c", "inc-d", "inc-f"], "nothing of yesterday's"
    assert all(t["status"] not in ("completed", "cancelled") for p in halves for t in p["tasks"])
    assert [e["type"] for p in halves for e in p["entries"]] == [
        "level_changed", "task_overdue", "escalated", "whistle_blown"]
    merged = handover(SHIFT, *([x for p in json.loads(json.dumps(halves)) for x in p[k]]
                               for k in ("incidents", "tasks", "entries")), NAMES, SITES)
    assert merged.to_json() == made().to_json()


@pytest.mark.parametrize(("since", "until", "param"), [
    (None, None, "since"), ("", None, "since"), ("yesterday", None, "since"),
    ("2026-12-06T08:00:00", None, "since"), ("2026-12-06", None, "since"),
    ("2026-12-06T08:00:00+08:00", "soon", "until"),
    ("2026-12-06T08:00:00+08:00", "2026-12-06T07:00:00+08:00", "until"),
    ("2026-12-07T08:00:00+08:00", None, "since"), ("0001-01-01T00:00:00+08:00", None, "since"),
    ("2026-12-06T08:00:00+08:00", "9999-12-31T23:59:59-23:59", "until"),
])
def test_a_bad_shift_names_its_parameter(since, until, param):
    with pytest.raises(BadShift) as refused:
        parse_shift(since, until, NOW)
    assert refused.value.param == param and refused.value.msg


def test_a_shift_ends_now_by_default_and_survives_a_plus_lost_in_a_url():
    shift = parse_shift("2026-12-06T08:00:00 08:00", None, NOW)
    assert (shift.since, shift.until) == (SINCE, NOW)
    assert parse_shift("2026-12-06T00:00:00Z", None, NOW).since == SINCE


def test_the_html_prints_on_a4_in_chinese_with_nothing_active():
    page = handover_html(made())
    assert "@page { size: A4; margin: 15mm }" in page and '"Noto Sans CJK SC"' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for text in ("交接班报告", "本班新增 Opened", "本班结案 Closed", "仍在处置 Still open",
                 "当前超时 Overdue now", "派出所", "区应急管理局", "银丰国际生物城 3号实验室"):
        assert text in page
    assert '<tr data-key="inc-b">' in page and "&lt;script&gt;alert(1)" in page
    empty = handover_html(handover(SHIFT, [], [], [], NAMES))
    assert empty.count("无 None") == 6, "every section but the counts says it is empty"


def test_the_markdown_is_one_table_per_section():
    lines = handover_markdown(made()).splitlines()
    assert lines[0] == "# 交接班报告 Shift handover"
    assert lines[2] == ("本班 Shift：2026-12-06 08:00:00 – 2026-12-06 20:00:00（北京时间 Beijing "
                        "time）；生成于 Generated 2026-12-06 20:30:00")
    headings = [x for x in lines if x.startswith("## ")]
    assert headings == ["## 概况 Summary", "## 本班新增 Opened", "## 本班结案 Closed",
                        "## 本班升级 Escalated", "## 仍在处置 Still open",
                        "## 当前超时 Overdue now", "## 超时任务（按部门） Overdue by department"]
    assert "| 2 | 1 | 1（4 次） | 3 | 3 |" in lines
    row = next(x for x in lines if x.startswith("| inc-b |") and "派出所" in x)
    assert "派出所：待接收（超时未确认接收）；供电所：处置中" in row
    assert "<script>" not in row and "\\|" in row, "a site name's pipe stays in its cell"
    assert "| 派出所 | 2 |" in lines
    empty = handover_markdown(handover(SHIFT, [], [], [], NAMES)).splitlines()
    assert "| 无 None | | | | | |" in empty


def test_json_is_the_sections_with_their_counts():
    body = json.loads(render_handover(made(), "json"))
    assert body["since"] == "2026-12-06T08:00:00+08:00" and body["counts"]["overdue"] == 3
    assert [r["incident_id"] for r in body["closed"]] == ["inc-a"]
    assert body["closed"][0]["close_reason"] == "handled"
    [c] = [r for r in body["still_open"] if r["incident_id"] == "inc-c"]
    assert c["tasks"][0]["overdue"] == ["complete"] and c["age_seconds"] == 14 * 3600
    assert body["overdue_by_department"][0] == {"department": "police", "name": "派出所",
                                                "count": 2}
