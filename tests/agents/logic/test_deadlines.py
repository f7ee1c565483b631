"""Deadlines and escalation with a fixed clock: no sleeping, no broker.

`Desk` plays the escalation timer and agent the way the worker does: ask `due_escalations`
at a moment, apply each with `escalate`, keep what it returns."""

from datetime import timedelta

import pytest

from agents.logic.deadlines import (
    OpenTaskIndex,
    cleared_notices,
    due_escalations,
    escalate,
    next_due,
    pending,
    rules_for,
)
from agents.logic.feedback import feedback_entry, feedback_for
from agents.logic.taskstate import apply_update
from playbooks import LIBRARY, load_playbooks, plan_tasks
from schemas import Escalation, Incident, PlaybookRef, Reporter, Site, TaskUpdate
from tests.conftest import T0

PLAYBOOKS = load_playbooks(LIBRARY)
LAB_FIRE = PLAYBOOKS.by_id["laboratory-fire"].playbook
LAB = Site(site_id="jyh-yinfeng-lab-3", name="3号实验室", type="laboratory", address="巨野河街道")
NAMES = {"police": "派出所", "safety_office": "安委会办公室", "fire_brigade": "消防救援站"}


class Desk:
    """One confirmed laboratory fire at T0, its tasks, and every escalation applied."""

    def __init__(self) -> None:
        self.incident = Incident(
            incident_id="inc-1", level="II", site_id=LAB.site_id, kind="smoke", hazard="fire",
            playbook=PlaybookRef(id="laboratory-fire", version="3"), opened_at=T0,
            last_alarm_at=T0)
        planned = plan_tasks(self.incident, LAB_FIRE, LAB, T0)
        self.tasks = {t.task_id: t for t in planned}
        self.incident = self.incident.model_copy(update={"task_ids": list(self.tasks)})
        self.entries, self.updates = [], []

    def rules(self, task):
        return [] if task.notice_of else rules_for(LAB_FIRE, task.step)

    def tick(self, at) -> list[Escalation]:
        """What the timer sends at `at`, applied in order; returns what it sent."""
        sent = [e for t in list(self.tasks.values()) for e in due_escalations(t, self.rules(t), at)]
        for esc in sent:
            self.apply(esc)
        return sent

    def apply(self, esc: Escalation):
        task = self.tasks.get(esc.task_id) if esc.task_id else None
        out = escalate(self.incident, task, esc, self.rules(task) if task else [], NAMES,
                       self.tasks)
        if out.changed:
            for t in (out.task, *out.notices):
                if t is not None:
                    self.tasks[t.task_id] = t
            self.incident = out.incident or self.incident
            self.entries += out.entries
            self.updates += out.updates
        return out

    def answer(self, step: str, action: str, at):
        task = self.tasks[f"inc-1.{step}"]
        task = self.tasks[task.task_id] = apply_update(task, TaskUpdate(
            update_id=f"{step}-{action}", task_id=task.task_id, incident_id="inc-1",
            action=action, by="李警官", at=at))
        for n in cleared_notices(task, list(self.tasks.values()), at, NAMES):
            self.tasks[n.task_id] = n
        return task

    def types(self, task_id=None):
        return [e.type for e in self.entries if task_id is None or e.task_id == task_id]

    def notices(self):
        return [t for t in self.tasks.values() if t.notice_of]


def test_nothing_is_due_before_the_first_deadline():
    desk = Desk()
    assert desk.tick(T0 + timedelta(seconds=29)) == []
    brigade = desk.tasks["inc-1.fire_brigade"]
    assert next_due(brigade, desk.rules(brigade)) == T0 + timedelta(seconds=30)


def test_a_missed_acknowledgement_marks_the_task_and_notifies_the_safety_office_once():
    desk = Desk()
    sent = desk.tick(T0 + timedelta(seconds=30))
    assert [e.escalation_id for e in sent] == ["inc-1.fire_brigade:ack:overdue",
                                               "inc-1.fire_brigade:ack:0:1"]
    brigade = desk.tasks["inc-1.fire_brigade"]
    assert brigade.overdue == ["ack"] and brigade.status == "dispatched"
    assert desk.types("inc-1.fire_brigade") == ["task_overdue", "escalated"]
    [notice] = desk.notices()
    assert (notice.department, notice.notice_of, notice.notice_cause) == (
        "safety_office", "inc-1.fire_brigade", "ack_overdue")
    assert "消防救援站未在期限内确认接收" in notice.action and notice.site_name == "3号实验室"
    assert notice.task_id in desk.incident.task_ids
    # the same requests again (a timer that ran twice, a restarted worker): nothing more
    for esc in sent:
        assert desk.apply(esc).changed is False
    assert desk.tick(T0 + timedelta(seconds=31)) == []
    assert len(desk.notices()) == 1 and len(desk.types()) == 3


def test_a_rule_repeats_every_interval_up_to_its_times_then_stops():
    desk = Desk()  # fire_brigade: {on_overdue: ack, notify: [safety_office], repeat: 1m, times: 3}
    fired = [e.escalation_id for s in (30, 89, 90, 150, 400)
             for e in desk.tick(T0 + timedelta(seconds=s)) if e.task_id == "inc-1.fire_brigade"]
    assert fired == ["inc-1.fire_brigade:ack:overdue", "inc-1.fire_brigade:ack:0:1",
                     "inc-1.fire_brigade:ack:0:2", "inc-1.fire_brigade:ack:0:3"]
    [notice] = [n for n in desk.notices() if n.notice_of == "inc-1.fire_brigade"]
    assert notice.revision == 3 and notice.action.startswith("督办（第3次）")
    brigade = desk.tasks["inc-1.fire_brigade"]
    assert next_due(brigade, desk.rules(brigade)) == brigade.complete_due


def test_an_answer_in_time_escalates_nothing_and_moves_to_the_completion_deadline():
    desk = Desk()
    desk.answer("cordon", "ack", T0 + timedelta(seconds=100))
    cordon = desk.tasks["inc-1.cordon"]
    assert not pending(cordon, "ack") and pending(cordon, "complete")
    assert next_due(cordon, desk.rules(cordon)) == T0 + timedelta(hours=2)
    desk.tick(T0 + timedelta(minutes=3))
    assert "ack" not in desk.tasks["inc-1.cordon"].overdue


def test_an_answer_between_the_timer_and_the_agent_wins():
    desk = Desk()
    [mark, rule] = due_escalations(desk.tasks["inc-1.cordon"], desk.rules(
        desk.tasks["inc-1.cordon"]), T0 + timedelta(minutes=2))
    desk.answer("cordon", "ack", T0 + timedelta(minutes=2, seconds=1))
    assert desk.apply(mark).changed is False and desk.apply(rule).changed is False
    assert desk.tasks["inc-1.cordon"].overdue == [] and desk.notices() == []


def test_the_answer_settles_its_notices_and_a_missed_completion_raises_the_level():
    desk = Desk()
    desk.tick(T0 + timedelta(minutes=2))          # cordon missed its ack
    [notice] = [n for n in desk.notices() if n.notice_of == "inc-1.cordon"]
    desk.answer("cordon", "ack", T0 + timedelta(minutes=3))
    settled = desk.tasks[notice.task_id]
    assert settled.status == "completed" and settled.by == "whistle"
    assert settled.note == "派出所已确认接收"
    desk.tick(T0 + timedelta(hours=2))            # and then its completion
    assert desk.tasks["inc-1.cordon"].overdue == ["ack", "complete"]
    raises = [u for u in desk.updates if u.action == "raise_level"]
    assert {u.level for u in raises} == {"I"}     # II -> I, once per task that missed it
    assert len({u.update_id for u in raises}) == len(raises)
    complete_notice = desk.tasks["inc-1.cordon:complete_overdue:safety_office"]
    desk.answer("cordon", "start", T0 + timedelta(hours=2, minutes=1))
    assert desk.tasks[complete_notice.task_id].status == "dispatched"   # not finished yet
    desk.answer("cordon", "complete", T0 + timedelta(hours=2, minutes=9))
    assert desk.tasks[complete_notice.task_id].status == "completed"


def test_at_level_one_there_is_nothing_to_raise():
    desk = Desk()
    desk.incident = desk.incident.model_copy(update={"level": "I"})
    desk.tick(T0 + timedelta(hours=4))
    assert desk.updates == [] and "escalated" in desk.types()


def test_a_failed_delivery_is_recorded_and_the_safety_office_told():
    desk = Desk()
    esc = Escalation(escalation_id=Escalation.delivery_id("police", "inc-1.cordon:1"),
                     incident_id="inc-1", task_id="inc-1.cordon", cause="delivery_failed",
                     at=T0 + timedelta(seconds=40),
                     detail={"target": "police", "attempts": 5, "error": "HTTP 503"})
    out = desk.apply(esc)
    assert out.changed and desk.types() == ["delivery_failed", "escalated", "task_dispatched"]
    [notice] = desk.notices()
    assert notice.department == "safety_office" and "派出所的系统未收到" in notice.action
    assert desk.tasks["inc-1.cordon"].overdue == []      # not overdue: only unreached
    assert desk.apply(esc).changed is False
    # a notice that itself cannot be delivered is recorded, never noticed again
    loop = esc.model_copy(update={"escalation_id": "n:delivery:safety_office",
                                  "task_id": notice.task_id})
    desk.apply(loop)
    assert len(desk.notices()) == 1 and desk.types()[-1] == "delivery_failed"


def test_a_failed_push_after_the_department_answered_reopens_no_notice():
    """The police's system is down, so they answer on the console; each answer is a new
    revision pushed to the same system, and fails too: recorded, but the settled notice stays
    settled (CI saw it reopened when the last push failed after the completion)."""
    desk = Desk()

    def failed(revision: int, seconds: int) -> Escalation:
        return Escalation(
            escalation_id=Escalation.delivery_id("police", f"inc-1.cordon:{revision}"),
            incident_id="inc-1", task_id="inc-1.cordon", cause="delivery_failed",
            at=T0 + timedelta(seconds=seconds), detail={"target": "police", "error": "HTTP 503"})
    desk.apply(failed(1, 40))
    desk.answer("cordon", "ack", T0 + timedelta(minutes=1))
    desk.answer("cordon", "complete", T0 + timedelta(minutes=2))
    [notice] = desk.notices()
    assert notice.status == "completed"
    before = len(desk.types())
    for revision in (2, 3):
        assert desk.apply(failed(revision, 200 + revision)).changed
    [notice] = desk.notices()
    assert notice.status == "completed" and desk.types()[before:] == ["delivery_failed"] * 2


def test_a_step_of_its_own_overrides_the_playbooks_rules():
    assert [r.times for r in rules_for(LAB_FIRE, "fire_brigade")] == [3]
    assert [r.on_overdue for r in rules_for(LAB_FIRE, "cordon")] == ["ack", "complete"]
    assert rules_for(LAB_FIRE, "no-such-step") == [] and rules_for(None, "cordon") == []


@pytest.mark.parametrize("reason, says", [("completed", "已处置完毕"), ("handled", "已处置完毕"),
                                          ("false_alarm", "误报")])
def test_feedback_tells_the_reporters_what_was_done(reason, says):
    desk = Desk()
    desk.answer("cordon", "ack", T0 + timedelta(minutes=1))
    desk.answer("cordon", "complete", T0 + timedelta(minutes=30))
    closed = desk.incident.model_copy(update={
        "status": "closed", "closed_at": T0 + timedelta(hours=1), "close_reason": reason,
        "reporters": [Reporter(name="张三", phone="13800000000")]})
    given = feedback_for(closed, list(desk.tasks.values()), LAB, NAMES)
    assert given.message.startswith("您于5月16日14:03反映的3号实验室（巨野河街道）的情况")
    assert says in given.message and given.reporters[0].phone == "13800000000"
    assert ("派出所：警社联动" in given.message) == (reason != "false_alarm")
    recorded = feedback_entry(given)
    assert recorded.type == "reporter_feedback" and recorded.detail["message"] == given.message


def test_no_feedback_without_reporters_or_for_a_merged_incident():
    desk = Desk()
    closed = desk.incident.model_copy(update={
        "status": "closed", "closed_at": T0, "close_reason": "completed"})
    assert feedback_for(closed, [], LAB, NAMES) is None
    merged = closed.model_copy(update={"close_reason": "merged",
                                       "reporters": [Reporter(name="张三")]})
    assert feedback_for(merged, [], LAB, NAMES) is None


def test_open_task_index_counts_what_is_open_as_tasks_are_written_and_rebuilds_from_a_table():
    index = OpenTaskIndex()
    index.note("t1", "police", "dispatched")
    index.note("t2", "police", "acknowledged")
    index.note("t3", "消防救援站", "in_progress")
    index.note("t1", "police", "in_progress")  # rewritten, still open: counted once
    assert index.counts(["police", "power_supply"]) == {"police": 2, "power_supply": 0,
                                                         "消防救援站": 1}
    index.note("t2", "police", "completed")
    index.note("t3", "消防救援站", "rejected")
    index.note("t3", "消防救援站", "rejected")  # a replay of the same write
    assert index.counts(["police"]) == {"police": 1}

    index.rebuild([{"task_id": "t9", "department": "power_supply", "status": "dispatched"},
                   {"task_id": "t8", "department": "power_supply", "status": "completed"},
                   None])
    assert index.counts(["police"]) == {"police": 0, "power_supply": 1}


def test_nobody_who_reported_a_drill_is_told():
    desk = Desk()
    closed = desk.incident.model_copy(update={
        "status": "closed", "closed_at": T0 + timedelta(hours=1), "close_reason": "completed",
        "reporters": [Reporter(name="张三", phone="13800000000")], "drill": True})
    assert feedback_for(closed, list(desk.tasks.values()), LAB, NAMES) is None
    real = closed.model_copy(update={"drill": None})
    assert feedback_for(real, list(desk.tasks.values()), LAB, NAMES) is not None


@pytest.mark.parametrize("status", ["dispatched", "acknowledged", "in_progress", "completed"])
def test_a_task_with_nothing_escalated_is_next_due_at_its_first_binding_deadline(status):
    """The shortcut for tasks with no escalation applied (every new task's publish) agrees
    with the full reckoning of each rule's firings, for every step of every playbook."""
    for loaded in PLAYBOOKS.by_id.values():
        book = loaded.playbook
        incident = Incident(
            incident_id="inc-9", level=book.level, site_id=LAB.site_id, kind="smoke",
            hazard="fire", playbook=PlaybookRef(id=book.id, version=str(book.version)),
            opened_at=T0, last_alarm_at=T0)
        for task in plan_tasks(incident, book, LAB, T0):
            task = task.model_copy(update={"status": status})
            rules = rules_for(book, task.step)
            reckoned = task.model_copy(update={"escalations": ["none-of-its-own"]})
            assert next_due(task, rules) == next_due(reckoned, rules), (book.id, task.step)
            if status != "completed":
                assert next_due(task, rules) is not None
