"""Drills (演练) in the after-action reports: each department scored against the plan's
deadlines, the mark on every form, and the period report keeping drills apart."""

from __future__ import annotations

from datetime import date

from agents.logic.timelines import entry
from agents.report.drill import drill_scores
from agents.report.period import period_stats
from agents.report.render import to_markdown
from agents.report.report_html import report
from agents.report.review import review
from schemas import Timeline
from tests.agents.report.test_review import INC, NAMES, at, lab_fire, tid


def drill() -> Timeline:
    tl = lab_fire()
    return Timeline(incident=tl.incident.model_copy(update={"drill": True}), entries=tl.entries)


def test_each_department_is_scored_against_its_deadlines_and_notices_are_not():
    scores = {s.department: s for s in drill_scores(review(drill(), NAMES))}
    assert list(scores) == ["safety_office", "police", "power_supply", "enforcement", "medical"]
    # the power supply station acknowledged at +7 min, due at +5 min: one of two deadlines
    power = scores["power_supply"]
    assert (power.tasks, power.ack_met, power.complete_met, power.score) == (1, 0, 1, 50)
    assert power.missed == ["inc-20230516-3f9a1c.isolate_power:ack"]
    # the safety office's 督办 notice is not the plan's: one task, both deadlines met
    lead = scores["safety_office"]
    assert (lead.tasks, lead.met, lead.deadlines, lead.score) == (1, 2, 2, 100)
    assert all(scores[d].score == 100 for d in ("police", "enforcement", "medical"))


def test_a_deadline_that_came_due_unanswered_is_missed_one_not_yet_due_is_not_scored():
    open_drill = lab_fire(closed=False)  # ends at +6 min: the power supply's ack was due at +5
    open_drill = Timeline(incident=open_drill.incident.model_copy(update={"drill": True}),
                          entries=open_drill.entries)
    scores = {s.department: s for s in drill_scores(review(open_drill, NAMES))}
    power = scores["power_supply"]
    assert (power.deadlines, power.met, power.score) == (1, 0, 0)
    assert power.missed == ["inc-20230516-3f9a1c.isolate_power:ack"]
    # enforcement: its ack is due at +30 min, nothing came due yet
    assert (scores["enforcement"].deadlines, scores["enforcement"].score) == (0, None)


def test_a_rejection_answers_in_time_but_misses_the_work_and_cancelling_stops_the_clock():
    tl = drill()
    entries = [e for e in tl.entries if not (e.task_id == tid("cordon") and e.type in (
        "task_started", "task_completed"))]
    entries.append(entry(INC, "task_rejected", at(1), task_id=tid("cordon"),
                         department="police", by="王警官", revision=3,
                         detail={"status": "rejected", "note": "警力不足"}))
    kept = [e for e in entries if not (e.task_id == tid("investigate") and e.type in (
        "task_acknowledged", "task_completed"))]  # cancelled at +3 min, ack due at +30 min
    kept.append(entry(INC, "task_cancelled", at(3), task_id=tid("investigate"),
                      department="enforcement", by="王值班", revision=2,
                      detail={"status": "cancelled"}))
    scores = {s.department: s for s in drill_scores(review(Timeline(
        incident=tl.incident, entries=kept), NAMES))}
    police = scores["police"]
    assert (police.ack_met, police.complete_met, police.score) == (1, 0, 50)
    assert (scores["enforcement"].deadlines, scores["enforcement"].score) == (0, None)


def test_the_drill_report_shows_the_scores_and_a_real_one_does_not():
    html = report(review(drill(), NAMES))
    assert "【演练】事后倒查报告" in html and 'id="drill-scores"' in html
    assert 'data-department="power_supply" data-score="50"' in html
    md = to_markdown(review(drill(), NAMES))
    assert md.startswith("# 【演练】事后倒查报告") and "## 演练评分" in md
    assert "| 供电所 | 1 | 0/1 | 1/1 | 50 |" in md
    real = report(review(lab_fire(), NAMES))
    assert "drill-scores" not in real and "【演练】" not in real
    assert "演练评分" not in to_markdown(review(lab_fire(), NAMES))


def test_the_period_report_keeps_drills_out_of_its_figures():
    day = date(2023, 5, 16)
    stats = period_stats([lab_fire(), drill()], day, date(2023, 5, 17))
    assert (stats.incidents, stats.drills) == (1, 1)
    assert stats.departments["power_supply"].tasks == 1          # the real fire's only
    assert sum(stats.by_kind.values()) == 1
