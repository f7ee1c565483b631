"""The duty officer's hand (pure): add, re-assign and cancel tasks, the whistle by hand and by
a playbook's rule, the lead's notice of a rejection, and when an incident is done."""

from datetime import timedelta

import pytest

from agents.logic.command import (
    called_in,
    on_command,
    rejection_notice,
    summons_rule_due,
)
from agents.logic.incidents import IncidentStep, on_task_changed
from agents.logic.taskstate import apply_update, settled
from playbooks import LoadedPlaybook, plan_tasks
from schemas import Incident, IncidentUpdate, Playbook, PlaybookRef, Site, TaskUpdate
from tests.conftest import T0

SITE = Site(site_id="ht-old-warehouse-3", name="废弃厂房 3号仓库", type="warehouse",
            address="湖田街道", grid="HT-15")
BOOK = Playbook.model_validate({
    "id": "chain", "version": "1", "title": "链式预案", "level": "II",
    "steps": [
        {"id": "lead", "department": "safety_office", "action": "统一指挥",
         "ack_within": "1m", "complete_within": "1h"},
        {"id": "isolate_power", "department": "power_supply", "action": "切断电源",
         "ack_within": "5m", "complete_within": "1h"},
        {"id": "inspect", "department": "enforcement", "action": "断电后进入检查",
         "ack_within": "5m", "complete_within": "1h", "after": ["isolate_power"]},
    ],
    "whistle": [
        {"when": {"level_at_least": "I"}, "departments": ["district_emergency", "district_fire"],
         "reason": "升至I级，区级部门到场"},
        {"when": {"overdue": 2}, "departments": ["district_emergency"],
         "reason": "任务两次超时", "within": "20m"},
    ]})
LOADED = LoadedPlaybook(BOOK, "chain.yaml", "h1")
WITHIN = {"district_emergency": timedelta(minutes=30), "district_fire": timedelta(minutes=15)}
NAMES = {"power_supply": "供电所", "safety_office": "安委会办公室"}


class Incident1:
    """One incident of the chain playbook, as the agents keep it."""

    def __init__(self) -> None:
        self.now = T0
        incident = Incident(incident_id="inc-1", level="II", site_id=SITE.site_id,
                            kind="hazmat", hazard="hazmat", opened_at=T0, last_alarm_at=T0,
                            playbook=PlaybookRef(id="chain", version="1", content_hash="h1"))
        tasks = plan_tasks(incident, BOOK, SITE, T0)
        self.incident = incident.model_copy(update={"task_ids": [t.task_id for t in tasks]})
        self.tasks = {t.task_id: t for t in tasks}

    def keep(self, step):
        self.incident = step.incident
        self.tasks.update({t.task_id: t for t in [*step.new_tasks, *step.changed_tasks]})
        return step

    def command(self, action: str, **fields):
        update = IncidentUpdate(update_id=f"u-{action}-{len(self.tasks)}",
                                incident_id="inc-1", action=action, by="王值班", at=self.now,
                                **fields)
        return self.keep(on_command(self.incident, update, LOADED, SITE,
                                    list(self.tasks.values()), WITHIN, self.now))

    def answer(self, step_id: str, action: str, note: str = ""):
        task = next(t for t in reversed(self.tasks.values()) if t.step == step_id)
        if action == "complete" and task.status == "dispatched":
            self.answer(step_id, "ack")
            task = self.tasks[task.task_id]
        task = self.tasks[task.task_id] = apply_update(task, TaskUpdate(
            update_id=f"{task.task_id}-{action}", task_id=task.task_id, incident_id="inc-1",
            action=action, by="李师傅", note=note, at=self.now))
        return self.keep(on_task_changed(self.incident, task, LOADED, SITE,
                                         list(self.tasks.values()), self.now))


def test_a_rejected_step_keeps_the_incident_open_until_it_is_taken_over():
    inc = Incident1()
    inc.answer("lead", "complete")
    step = inc.answer("isolate_power", "reject", "无权切断该厂房供电")
    assert not step.new_tasks and inc.incident.status == "open"   # inspect waits; nobody closes
    rejected = inc.tasks["inc-1.isolate_power"]
    assert not settled(rejected)

    notice = rejection_notice(inc.incident, rejected, "safety_office", NAMES, inc.now)
    assert (notice.department, notice.notice_of, notice.notice_cause) == (
        "safety_office", "inc-1.isolate_power", "rejected")
    assert "供电所退回任务「切断电源」（无权切断该厂房供电）" in notice.action
    inc.tasks[notice.task_id] = notice

    step = inc.command("reassign", task_id="inc-1.isolate_power", department="enforcement",
                       note="执法队联系产权单位断电")
    new = next(t for t in step.new_tasks if t.replaces)
    assert (new.task_id, new.department, new.step, new.action, new.replaces) == (
        "inc-1.isolate_power.r2", "enforcement", "isolate_power", "切断电源",
        "inc-1.isolate_power")
    assert new.ack_due - new.created_at == timedelta(minutes=5)   # the old task's deadlines
    old = inc.tasks["inc-1.isolate_power"]
    assert (old.status, old.replaced_by) == ("rejected", new.task_id) and settled(old)
    assert inc.tasks[notice.task_id].status == "completed"         # the lead's notice settled
    assert [e.type for e in step.entries] == ["task_reassigned", "task_dispatched"]
    assert step.entries[0].by == "王值班" and inc.incident.revision == 2

    step = inc.answer("isolate_power", "complete")                 # the step's new task
    assert [t.step for t in step.new_tasks] == ["inspect"]         # after: no longer stuck
    inc.answer("inspect", "complete")
    assert (inc.incident.status, inc.incident.close_reason) == ("closed", "completed")


def test_a_cancelled_step_lets_the_steps_after_it_go_and_can_close_the_incident():
    inc = Incident1()
    inc.answer("lead", "complete")
    inc.answer("isolate_power", "reject", "停电影响医院")
    step = inc.command("cancel_task", task_id="inc-1.isolate_power", note="改由企业自行断电")
    assert [t.status for t in step.changed_tasks] == ["cancelled"]
    assert [t.step for t in step.new_tasks] == ["inspect"]
    assert [e.type for e in step.entries] == ["task_cancelled", "task_dispatched"]
    assert step.entries[0].detail == {"status": "cancelled", "was": "rejected",
                                      "note": "改由企业自行断电"}
    inc.answer("inspect", "complete")
    assert inc.incident.status == "closed"


def test_an_open_task_reassigned_is_cancelled_and_a_finished_one_is_left_alone():
    inc = Incident1()
    step = inc.command("reassign", task_id="inc-1.lead", department="police",
                       task_action="代为指挥", ack_within=timedelta(minutes=3))
    old, new = inc.tasks["inc-1.lead"], step.new_tasks[0]
    assert (old.status, old.replaced_by, new.action) == ("cancelled", new.task_id, "代为指挥")
    assert new.ack_due - new.created_at == timedelta(minutes=3)
    again = inc.command("reassign", task_id="inc-1.lead", department="enforcement")
    assert not again.changed                                       # taken over already
    inc.answer("isolate_power", "complete")
    assert not inc.command("cancel_task", task_id="inc-1.isolate_power", note="x").changed


def test_adding_a_task_gives_the_next_id_and_the_officers_deadlines():
    inc = Incident1()
    first = inc.command("add_task", department="community", task_action="组织居民撤离",
                        ack_within=timedelta(minutes=2), complete_within=timedelta(hours=1))
    second = inc.command("add_task", department="grid_worker", task_action="巡查周边")
    assert [t.task_id for t in (*first.new_tasks, *second.new_tasks)] == [
        "inc-1.added-1", "inc-1.added-2"]
    t = first.new_tasks[0]
    assert (t.ack_due - T0, t.complete_due - T0) == (timedelta(minutes=2), timedelta(hours=1))
    assert second.new_tasks[0].complete_due - T0 == timedelta(hours=2)   # the default
    assert first.entries[0].detail["added"] is True and first.entries[0].by == "王值班"
    assert inc.incident.task_ids[-2:] == ["inc-1.added-1", "inc-1.added-2"]


def test_the_whistle_calls_each_department_once_with_its_own_deadline():
    inc = Incident1()
    step = inc.command("whistle", departments=["district_emergency", "district_fire"],
                       note="危化品泄漏，需区级支援")
    tasks = {t.department: t for t in step.new_tasks}
    assert all(t.summons for t in tasks.values())
    assert tasks["district_emergency"].ack_due - T0 == timedelta(minutes=30)
    assert tasks["district_fire"].ack_due - T0 == timedelta(minutes=15)
    assert tasks["district_fire"].action == "吹哨报到：危化品泄漏，需区级支援"
    blown = step.entries[0]
    assert (blown.type, blown.by, blown.detail["departments"]) == (
        "whistle_blown", "王值班", ["district_emergency", "district_fire"])
    again = inc.command("whistle", departments=["district_fire", "district_housing"],
                        note="再次召集")
    assert [t.department for t in again.new_tasks] == ["district_housing"]   # fire is coming
    assert not inc.command("whistle", departments=["district_fire"], note="x").changed


@pytest.mark.parametrize("level, confirmed, called", [
    ("I", True, ["district_emergency", "district_fire"]), ("II", True, []), ("I", False, [])])
def test_a_playbook_blows_the_whistle_on_reaching_a_level(level, confirmed, called):
    inc = Incident1()
    inc.incident = inc.incident.model_copy(update={
        "level": level, "confirmation": "confirmed" if confirmed else "unconfirmed"})
    step = IncidentStep(inc.incident, changed=False)
    called_in(step, BOOK, list(inc.tasks.values()), WITHIN, T0)
    assert [t.department for t in step.new_tasks] == called
    if called:
        assert step.entries[0].detail["rule"] == 0 and step.entries[0].by == "whistle"
        held = [*inc.tasks.values(), *step.new_tasks]
        assert summons_rule_due(step.incident, BOOK, held) == []   # once


def test_a_playbook_blows_the_whistle_when_deadlines_are_missed_twice():
    inc = Incident1()
    lead, power = inc.tasks.values()
    one = power.model_copy(update={"overdue": ["ack"]})
    assert summons_rule_due(inc.incident, BOOK, [lead, one]) == []
    two = power.model_copy(update={"overdue": ["ack", "complete"]})
    assert summons_rule_due(inc.incident, BOOK, [lead, two]) == [1]
    step = IncidentStep(inc.incident, changed=False)
    called_in(step, BOOK, [lead, two], WITHIN, T0)
    (summons,) = step.new_tasks
    assert (summons.department, summons.ack_due - T0) == ("district_emergency",
                                                          timedelta(minutes=20))


def test_nothing_is_done_to_a_closed_incident():
    inc = Incident1()
    inc.incident = inc.incident.model_copy(update={"status": "closed"})
    for action, fields in (("add_task", {"department": "police", "task_action": "x"}),
                           ("whistle", {"departments": ["district_fire"]})):
        assert not inc.command(action, **fields).changed


def test_a_notice_or_the_leads_own_rejection_tells_nobody():
    inc = Incident1()
    lead = inc.tasks["inc-1.lead"]
    assert rejection_notice(inc.incident, lead, "safety_office", NAMES, T0) is None


def test_an_update_names_what_each_command_needs():
    base = {"update_id": "u", "incident_id": "inc-1", "by": "王值班", "at": T0}
    for action, field in (("reassign", "task_id"), ("cancel_task", "task_id"),
                          ("add_task", "department"), ("whistle", "departments")):
        with pytest.raises(ValueError, match=field):
            IncidentUpdate(action=action, **base)


def test_a_department_that_does_not_report_in_time_is_pressed_through_the_lead():
    from agents.logic.deadlines import due_escalations, escalate, summons_rules

    inc = Incident1()
    step = inc.command("whistle", departments=["district_fire"], note="请区消防救援大队到场")
    summons = step.new_tasks[0]
    rules = summons_rules("safety_office")
    late = summons.ack_due + timedelta(seconds=1)
    due = due_escalations(summons, rules, late)
    assert [e.escalation_id.split(":", 1)[1] for e in due] == ["ack:overdue", "ack:0:1"]
    marked = escalate(inc.incident, summons, due[0], rules, {}, inc.tasks)
    pressed = escalate(inc.incident, marked.task, due[1], rules, {}, inc.tasks)
    [notice] = pressed.notices
    assert (notice.department, notice.notice_of) == ("safety_office", summons.task_id)
    assert marked.task.overdue == ["ack"]
    later = due_escalations(pressed.task, rules, late + timedelta(minutes=25))
    assert [e.n for e in later] == [2, 3]   # again every 10 minutes, three times in all
