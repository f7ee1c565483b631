"""The after-action review (agents.report.review) of a fixed lab-fire timeline: lanes, bars, overdue
stretches, escalation marks, levels and every duration, to the second.

`lab_fire()` is the timeline the render and browser tests use too."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agents.logic.timelines import entry
from agents.report.review import Stretch, format_duration, is_notice, review
from schemas import Incident, Timeline

CHINA = timezone(timedelta(hours=8))
T0 = datetime(2023, 5, 16, 14, 3, 7, tzinfo=CHINA)
INC = "inc-20230516-3f9a1c"
NAMES = {"safety_office": "安委会办公室", "police": "派出所", "power_supply": "供电所",
         "enforcement": "综合行政执法", "medical": "急救中心 (120)",
         "fire_brigade": "消防救援站 (119)"}
ORDER = ["safety_office", "police", "power_supply", "enforcement", "medical"]
NOTICE = f"{INC}.isolate_power:ack_overdue:safety_office"
ACTIONS = {"lead": "启动应急预案, 统一指挥, 协调各部门按分工处置",
           "cordon": "警社联动, 设置警戒线, 疏散人员, 疏导交通",
           "isolate_power": "切断实验楼供电, 排查线路老化隐患",
           "investigate": "调查起火原因, 组织复查整改",
           "medical": "120 到场待命, 救治受伤及吸入烟气人员"}
STEPS = {"lead": "safety_office", "cordon": "police", "isolate_power": "power_supply",
         "investigate": "enforcement", "medical": "medical"}


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def tid(step: str) -> str:
    return f"{INC}.{step}"


def _dispatch(step: str, when: datetime, ack_within: timedelta) -> object:
    return entry(INC, "task_dispatched", when, task_id=tid(step), department=STEPS[step],
                 revision=1, detail={"step": step, "action": ACTIONS[step],
                                     "ack_due": (when + ack_within).isoformat(),
                                     "complete_due": (when + timedelta(hours=2)).isoformat()})


def _answer(kind: str, step: str, when: datetime, by: str, revision: int,
            note: str | None = None) -> object:
    status = {"task_acknowledged": "acknowledged", "task_started": "in_progress",
              "task_completed": "completed", "task_rejected": "rejected"}[kind]
    return entry(INC, kind, when, task_id=tid(step), department=STEPS[step], by=by,
                 revision=revision, detail={"status": status, **({"note": note} if note else {})})


def lab_fire(*, description: str = "实验室烟感报警 (仪器线路老化短路引燃易燃物)",
             reporter: str = "企业值班人员", site_name: str = "银丰国际生物城 3号实验室",
             closed: bool = True) -> Timeline:
    """The fire at 银丰国际生物城 3号实验室: a smoke alarm at T0, four departments dispatched at
    +2 s, the power supply station acknowledges late (overdue at +5 min, escalated to the
    safety office, answered at +7 min), level II -> I at +10 min (120 dispatched), closed at
    +45 min. With `closed=False` the timeline stops at +6 min, the incident still open."""
    e = [
        entry(INC, "alarm_received", at(), alarm_id="gw-yinfeng-01:0001", detail={
            "kind": "smoke", "signal": "alarm", "site_id": "jyh-yinfeng-lab-3",
            "occurred_at": at().isoformat(), "device_id": "smk-lab3-02",
            "description": description}),
        entry(INC, "incident_opened", at(), detail={
            "site_id": "jyh-yinfeng-lab-3", "site_name": site_name,
            "address": "济南高新区巨野河街道 银丰国际生物城", "level": "II", "kind": "smoke"}),
        entry(INC, "playbook_matched", at(), detail={
            "playbook_id": "laboratory-fire", "version": "3", "title": "实验室火灾应急预案",
            "content_hash": "9c1f", "why": "kind smoke, site type laboratory"}),
        *(_dispatch(s, at(seconds=2), w) for s, w in (
            ("lead", timedelta(minutes=1)), ("cordon", timedelta(minutes=2)),
            ("isolate_power", timedelta(minutes=4, seconds=58)),
            ("investigate", timedelta(minutes=30)))),
        _answer("task_acknowledged", "lead", at(seconds=20), "街道应急办 李主任", 2),
        _answer("task_acknowledged", "cordon", at(seconds=40), "巨野河派出所 王警官", 2),
        entry(INC, "alarm_received", at(seconds=57), alarm_id="hotline-119:20230516-0147",
              detail={"kind": "fire_report", "signal": "alarm", "site_id": "jyh-yinfeng-lab-3",
                      "occurred_at": at(seconds=55).isoformat(), "reporter": reporter,
                      "description": "值班人员已用灭火器初期处置, 拨打119"}),
        _answer("task_started", "lead", at(1), "街道应急办 李主任", 3),
        _answer("task_started", "cordon", at(2), "巨野河派出所 王警官", 3, "已到场拉警戒线"),
        entry(INC, "task_overdue", at(5), task_id=tid("isolate_power"),
              department="power_supply", by="whistle", key=f"{tid('isolate_power')}:ack:overdue",
              detail={"deadline": "ack", "due": at(5).isoformat()}),
        entry(INC, "escalated", at(5), task_id=tid("isolate_power"), department="power_supply",
              by="whistle", key=f"{tid('isolate_power')}:ack:0:1",
              detail={"escalation_id": f"{tid('isolate_power')}:ack:0:1",
                      "cause": "ack_overdue", "rule": 0, "n": 1, "times": 1,
                      "notify": ["safety_office"], "raise_level": False}),
        entry(INC, "task_dispatched", at(5), task_id=NOTICE, department="safety_office",
              revision=1, detail={
                  "step": "isolate_power:ack_overdue:safety_office",
                  "action": "督办：供电所未在期限内确认接收任务"
                            "「切断实验楼供电, 排查线路老化隐患」，请立即联系督促。",
                  "notice_of": tid("isolate_power"),
                  "ack_due": at(10).isoformat(), "complete_due": at(122).isoformat()}),
    ]
    if not closed:
        e.append(entry(INC, "alarm_received", at(6), alarm_id="gw-yinfeng-01:0002", detail={
            "kind": "smoke", "signal": "alarm", "site_id": "jyh-yinfeng-lab-3",
            "occurred_at": at(6).isoformat(), "device_id": "smk-lab3-03"}))
        return Timeline(incident=_incident(closed=False), entries=e)
    e += [
        _answer("task_acknowledged", "isolate_power", at(7), "供电所 赵师傅", 2),
        entry(INC, "task_completed", at(7), task_id=NOTICE, department="safety_office",
              by="whistle", revision=2, detail={"status": "completed", "note": "供电所已确认接收"}),
        _answer("task_started", "isolate_power", at(8), "供电所 赵师傅", 3),
        entry(INC, "level_changed", at(10), by="街道值班领导", revision=5,
              detail={"from": "II", "to": "I", "note": "火势蔓延至二层"}),
        _dispatch("medical", at(10), timedelta(minutes=2)),
        _answer("task_acknowledged", "medical", at(11), "120 急救站", 2),
        _answer("task_acknowledged", "investigate", at(12), "综合执法队 孙队长", 2),
        _answer("task_completed", "cordon", at(30), "巨野河派出所 王警官", 4, "警戒解除"),
        _answer("task_completed", "isolate_power", at(40), "供电所 赵师傅", 4),
        _answer("task_completed", "medical", at(43), "120 急救站", 3, "1人轻微吸入烟气，已送医"),
        _answer("task_completed", "investigate", at(44), "综合执法队 孙队长", 3),
        _answer("task_completed", "lead", at(45), "街道应急办 李主任", 4),
        entry(INC, "incident_closed", at(45), revision=9,
              detail={"reason": "completed", "why": "every task is completed"}),
        entry(INC, "reporter_feedback", at(45), by="whistle", key=f"{INC}:feedback:9",
              detail={"to": [{"name": reporter}],
                      "message": "您于5月16日14:03反映的情况已处置完毕。"}),
    ]
    return Timeline(incident=_incident(closed=True), entries=e)


def _incident(*, closed: bool) -> Incident:
    return Incident(
        incident_id=INC, status="closed" if closed else "open", level="I" if closed else "II",
        site_id="jyh-yinfeng-lab-3", kind="smoke", hazard="fire", family="fire",
        confirmation="confirmed", confirmed_at=at(seconds=57),
        confirmed_by="a person reported it (manual call point or fire report)",
        playbook={"id": "laboratory-fire", "version": "3", "content_hash": "9c1f"},
        alarm_ids=["gw-yinfeng-01:0001", "hotline-119:20230516-0147"],
        task_ids=[tid(s) for s in ("lead", "cordon", "isolate_power", "investigate")]
        + [NOTICE] + ([tid("medical")] if closed else []),
        opened_at=at(), closed_at=at(45) if closed else None,
        close_reason="completed" if closed else None, last_alarm_at=at(seconds=55),
        reporters=[{"name": "企业值班人员", "phone": "13812345678"}])


@pytest.fixture
def lab():
    return review(lab_fire(), NAMES)


def test_lanes_are_departments_in_first_dispatch_order(lab):
    assert [lane.department for lane in lab.lanes] == ORDER
    assert [lane.name for lane in lab.lanes] == [NAMES[d] for d in ORDER]
    assert [[b.task_id for b in lane.bars] for lane in lab.lanes] == [
        [tid("lead"), NOTICE], [tid("cordon")], [tid("isolate_power")], [tid("investigate")],
        [tid("medical")]]


def test_bars_carry_every_step_of_a_task(lab):
    police = lab.lanes[1].bars[0]
    assert (police.dispatched_at, police.acknowledged_at, police.started_at,
            police.completed_at, police.rejected_at) == (at(seconds=2), at(seconds=40), at(2),
                                                         at(30), None)
    assert police.action == ACTIONS["cordon"] and police.status == "completed"
    assert police.by == "巨野河派出所 王警官" and not police.notice
    medical = lab.lanes[4].bars[0]
    assert (medical.dispatched_at, medical.acknowledged_at, medical.started_at,
            medical.completed_at) == (at(10), at(11), None, at(43))


def test_the_late_acknowledgement_is_one_overdue_stretch(lab):
    power = lab.lanes[2].bars[0]
    assert power.overdue == [Stretch("ack", at(5), at(7), open=False)]
    assert [b.task_id for b in lab.bars if b.overdue] == [tid("isolate_power")]


def test_escalations_are_marked_on_the_task_they_are_about(lab):
    power = lab.lanes[2].bars[0]
    assert [(m.at, m.type, m.detail["notify"]) for m in power.escalations] == [
        (at(5), "escalated", ["safety_office"])]
    assert all(not b.escalations for b in lab.bars if b is not power)
    assert lab.marks == []


def test_a_notice_is_recognised_by_its_id_or_its_dispatch(lab):
    notice = lab.lanes[0].bars[1]
    assert notice.notice and notice.notice_of == tid("isolate_power")
    assert (notice.dispatched_at, notice.acknowledged_at, notice.completed_at) == (
        at(5), None, at(7))
    assert is_notice(NOTICE, INC) and not is_notice(tid("cordon"), INC)
    assert is_notice(tid("x"), INC, {"notice_of": tid("cordon")})


def test_levels_over_time(lab):
    assert [(m.at, m.level, m.was, m.by, m.note) for m in lab.levels] == [
        (at(), "II", None, None, None), (at(10), "I", "II", "街道值班领导", "火势蔓延至二层")]


def test_playbook_window_and_site(lab):
    assert (lab.playbook.id, lab.playbook.version, lab.playbook.title) == (
        "laboratory-fire", "3", "实验室火灾应急预案")
    assert (lab.start, lab.end) == (at(), at(45))
    assert (lab.site_name, lab.address) == ("银丰国际生物城 3号实验室",
                                            "济南高新区巨野河街道 银丰国际生物城")
    assert [e.at for e in lab.entries] == sorted(e.at for e in lab.entries)
    assert len(lab.entries) == len(lab_fire().entries) == 29
    assert [a.alarm_id for a in lab.alarms] == ["gw-yinfeng-01:0001", "hotline-119:20230516-0147"]


def test_every_duration(lab):
    d = lab.durations
    assert d.alarm_to_dispatch == timedelta(seconds=2)
    assert d.total == timedelta(minutes=45)
    got = {(t.task_id, t.name, t.notice): (t.to_ack, t.to_complete) for t in d.per_task}
    s, m = (lambda n: timedelta(seconds=n)), (lambda n, sec=0: timedelta(minutes=n, seconds=sec))
    assert got == {
        (tid("lead"), "安委会办公室", False): (s(18), m(44, 58)),
        (NOTICE, "安委会办公室", True): (None, m(2)),
        (tid("cordon"), "派出所", False): (s(38), m(29, 58)),
        (tid("isolate_power"), "供电所", False): (m(6, 58), m(39, 58)),
        (tid("investigate"), "综合行政执法", False): (m(11, 58), m(43, 58)),
        (tid("medical"), "急救中心 (120)", False): (m(1), m(33)),
    }
    assert (d.tasks, d.notices, d.overdue_tasks, d.escalations, d.delivery_failures) == (
        5, 1, 1, 1, 0)


def test_an_open_incident_is_overdue_until_the_end_of_the_window():
    r = review(lab_fire(closed=False), NAMES)
    power = next(b for b in r.bars if b.task_id == tid("isolate_power"))
    assert r.end == at(6)
    assert power.overdue == [Stretch("ack", at(5), at(6), open=True)]
    assert power.status == "dispatched" and power.finished_at is None
    assert r.durations.total is None
    times = {t.task_id: (t.to_ack, t.to_complete) for t in r.durations.per_task}
    assert times[tid("isolate_power")] == (None, None)
    assert times[tid("cordon")] == (timedelta(seconds=38), None)
    later = review(lab_fire(closed=False), NAMES, until=at(20))
    assert later.end == at(20)
    assert next(b for b in later.bars if b.task_id == tid("isolate_power")).overdue == [
        Stretch("ack", at(5), at(20), open=True)]


def test_a_failed_delivery_and_a_start_without_acknowledgement():
    t = lab_fire(closed=False)
    t.entries += [
        entry(INC, "task_started", at(6), task_id=tid("investigate"), department="enforcement",
              by="执法队", revision=2, detail={"status": "in_progress"}),
        entry(INC, "delivery_failed", at(6), task_id=tid("cordon"), department="police",
              by="whistle", key="d1", detail={"target": "police", "attempts": 5,
                                              "url": "https://police.example/hook",
                                              "error": "timeout"}),
        entry(INC, "delivery_failed", at(6), by="whistle", key="d2",
              detail={"target": "feedback", "attempts": 5, "error": "HTTP 500"}),
    ]
    r = review(t, NAMES)
    assert [(m.type, m.detail["error"]) for m in r.bars[2].escalations] == [
        ("delivery_failed", "timeout")]
    assert [(m.type, m.task_id) for m in r.marks] == [("delivery_failed", None)]
    assert r.durations.delivery_failures == 2
    times = {x.task_id: x.to_ack for x in r.durations.per_task}
    assert times[tid("investigate")] == timedelta(minutes=5, seconds=58)


def test_a_department_view_without_dispatches_still_has_its_lane():
    full = lab_fire()
    mine = [e for e in full.entries if e.department == "police" and e.type != "task_dispatched"]
    r = review(Timeline(incident=full.incident, entries=mine), NAMES)
    assert [lane.name for lane in r.lanes] == ["派出所"]
    assert r.bars[0].dispatched_at is None and r.bars[0].acknowledged_at == at(seconds=40)
    assert r.durations.alarm_to_dispatch is None
    assert [(m.at, m.level) for m in r.levels] == [(at(seconds=40), "I")]


@pytest.mark.parametrize("td, text", [
    (timedelta(seconds=42), "42 s"), (timedelta(seconds=0.4), "0 s"),
    (timedelta(minutes=3, seconds=5), "3 min 05 s"), (timedelta(minutes=59, seconds=59),
                                                      "59 min 59 s"),
    (timedelta(hours=1, minutes=2, seconds=59), "1 h 02 min"), (timedelta(hours=50), "50 h 00 min"),
    (timedelta(seconds=-90), "-1 min 30 s"), (None, "—"),
])
def test_format_duration(td, text):
    assert format_duration(td) == text
