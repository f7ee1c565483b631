from datetime import timedelta

import pytest

from agents.logic.correlation import SiteState, decide, hazard_of
from agents.logic.incidents import on_task_changed, on_triaged, on_update
from agents.logic.taskstate import apply_update
from agents.logic.timelines import append, entry, in_time_order
from playbooks import LIBRARY, load_playbooks
from schemas import Alarm, IncidentUpdate, Site, TaskUpdate, Triaged
from tests.conftest import T0, alarm_data

PLAYBOOKS = load_playbooks(LIBRARY)
LAB = Site(site_id="jyh-yinfeng-lab-3", name="3号实验室", type="laboratory", address="巨野河街道")
LAB_FIRE = PLAYBOOKS.by_id["laboratory-fire"]


def triaged(alarm_id: str, seconds: float = 0, state: SiteState | None = None,
            site: Site = LAB, **over) -> Triaged:
    over.setdefault("device_id", f"smk-{alarm_id}")
    a = Alarm.model_validate(alarm_data(alarm_id=alarm_id, site_id=site.site_id,
                                        occurred_at=(T0 + timedelta(seconds=seconds)).isoformat(),
                                        **over), context={"now": T0 + timedelta(days=1)})
    d = decide(a, state if state is not None else SiteState(), False, timedelta(minutes=10),
               site=site.site_id)
    return Triaged(alarm=a, incident_id=d.incident_id, action=d.action,
                   hazard=hazard_of(a.kind), family=d.family, merges=list(d.merges),
                   evidence=d.evidence, site=site)


class Incident1:
    """One incident's life with its tasks, as the agents keep it in tables."""

    def __init__(self, clock) -> None:
        self.clock, self.state, self.incident, self.tasks = clock, SiteState(), None, {}
        self.steps = []

    def alarm(self, alarm_id: str, seconds: float = 0, **over):
        t = self.last = triaged(alarm_id, seconds, self.state, **over)
        loaded = PLAYBOOKS.by_id[self.incident.playbook.id] if self.incident else None
        return self._keep(on_triaged(self.incident, t, PLAYBOOKS, loaded,
                                     lambda: list(self.tasks.values()), self.clock()))

    def task(self, step_id: str, action: str, **over):
        task = self.tasks[f"{self.incident.incident_id}.{step_id}"]
        update = TaskUpdate(update_id=f"{step_id}-{action}", task_id=task.task_id,
                            incident_id=task.incident_id, action=action, by="王师傅",
                            at=self.clock(), **over)
        task = self.tasks[task.task_id] = apply_update(task, update)
        return self._keep(on_task_changed(self.incident, task, LAB_FIRE, LAB,
                                          list(self.tasks.values()), self.clock()))

    def update(self, **fields):
        update = IncidentUpdate(incident_id=self.incident.incident_id, by="whistle",
                                at=self.clock(), **fields)
        return self._keep(on_update(self.incident, update, LAB_FIRE, LAB,
                                    list(self.tasks.values()), self.clock()))

    def _keep(self, step):
        self.incident = step.incident
        self.tasks.update({t.task_id: t for t in [*step.new_tasks, *step.changed_tasks]})
        self.steps.append(step)
        return step

    def departments(self) -> set[str]:
        return {t.department for t in self.tasks.values()}


FULL = {"fire_brigade", "safety_office", "police", "power_supply", "enforcement"}


def test_opening_matches_plans_and_records_in_order(clock):
    step = on_triaged(None, triaged("gw:1", kind="fire_report"), PLAYBOOKS, None, list, clock())
    inc = step.incident
    assert (inc.status, inc.level, inc.playbook.id, inc.alarm_ids) == (
        "open", "II", "laboratory-fire", ["gw:1"])
    assert inc.task_ids == [t.task_id for t in step.new_tasks]
    assert {t.department for t in step.new_tasks} == FULL   # a person's report: at once
    assert (inc.confirmation, inc.confirmed_by) == (
        "confirmed", "a person reported it (manual call point or fire report)")
    types = [e.type for e in step.entries]
    assert types == ["alarm_received", "incident_opened", "playbook_matched",
                     *["task_dispatched"] * len(step.new_tasks)]
    matched = step.entries[2].detail
    assert matched["playbook_id"] == "laboratory-fire" and matched["version"] == "3"
    assert step.entries[0].detail["occurred_at"] == T0.isoformat()


def test_a_second_alarm_attaches_and_a_replay_changes_nothing(clock):
    life = Incident1(clock)
    first = life.alarm("gw:1", 0, kind="fire_report")
    clock.advance(seconds=24)
    second = life.alarm("gw:2", 24)
    assert second.changed and not second.new_tasks
    assert second.incident.alarm_ids == ["gw:1", "gw:2"]
    assert second.incident.revision == first.incident.revision + 1
    assert [e.type for e in second.entries] == ["alarm_received"]
    replay = on_triaged(second.incident, life.last, PLAYBOOKS, LAB_FIRE, list, clock())
    assert not replay.changed and replay.incident == second.incident
    assert replay.entries[0].entry_id == second.entries[0].entry_id  # dropped downstream


def test_one_detector_opens_unconfirmed_with_only_the_verification(clock):
    life = Incident1(clock)
    opened = life.alarm("gw:1", device_id="smk-02")
    assert opened.incident.confirmation == "unconfirmed" and opened.incident.confirmed_at is None
    [verify] = opened.new_tasks
    assert (verify.department, verify.step, verify.verification) == ("property", "verify", True)
    assert verify.ack_due - clock() == timedelta(seconds=30)
    assert verify.complete_due - clock() == timedelta(minutes=3)
    same = life.alarm("gw:2", 10, device_id="smk-02")          # the same detector again
    assert not same.new_tasks and same.incident.confirmation == "unconfirmed"


@pytest.mark.parametrize("second", [
    {"device_id": "smk-03"},                                    # an independent detector
    {"kind": "manual_call_point", "device_id": "mcp-1"},        # a call point
    {"kind": "fire_report", "device_id": None},                  # a 119 call
])
def test_a_second_detector_a_call_point_or_a_report_confirms_and_dispatches_the_rest(clock, second):
    life = Incident1(clock)
    life.alarm("gw:1", device_id="smk-02")
    clock.advance(seconds=20)
    step = life.alarm("gw:2", 20, **second)
    assert step.incident.confirmation == "confirmed" and step.incident.confirmed_at == clock()
    assert {t.department for t in step.new_tasks} == FULL
    assert [e.type for e in step.entries][:2] == ["alarm_received", "incident_confirmed"]
    assert life.departments() == FULL | {"property"}


def test_a_verification_that_finds_fire_confirms(clock):
    life = Incident1(clock)
    life.alarm("gw:1")
    life.task("verify", "ack")
    step = life.task("verify", "complete", outcome="confirmed")
    assert step.incident.confirmation == "confirmed"
    assert step.incident.confirmed_by == "verified on site by 王师傅: fire"
    assert {t.department for t in step.new_tasks} == FULL


def test_a_false_alarm_closes_the_incident_and_tells_triage(clock):
    life = Incident1(clock)
    life.alarm("gw:1", device_id="smk-02")
    life.task("verify", "ack")
    clock.advance(minutes=2)
    step = life.task("verify", "complete", outcome="false_alarm")
    inc = step.incident
    assert (inc.status, inc.confirmation, inc.close_reason, inc.closed_at) == (
        "closed", "false_alarm", "false_alarm", clock())
    assert not step.new_tasks and [e.type for e in step.entries] == ["incident_closed"]
    [event] = step.site_events
    assert (event.site_id, event.reason, event.devices, event.family) == (
        "jyh-yinfeng-lab-3", "false_alarm", ["smk-02"], "fire")


def test_a_rejected_verification_is_treated_as_a_fire(clock):
    life = Incident1(clock)
    life.alarm("gw:1")
    step = life.task("verify", "reject", note="无法进入现场")
    assert (step.incident.confirmation == "confirmed"
            and "无法进入现场" in step.incident.confirmed_by)


@pytest.mark.parametrize("ack,wait,fires", [
    (False, 29, False), (False, 30, True),          # PAS: acknowledge within 30 s
    (True, 179, False), (True, 180, True),          # ... and verify within 3 min
])
def test_the_positive_alarm_sequence_deadlines_confirm(clock, ack, wait, fires):
    life = Incident1(clock)
    life.alarm("gw:1")
    if ack:
        life.task("verify", "ack")
    clock.advance(seconds=wait)
    step = life.update(update_id="pas-1", action="confirm")
    assert step.incident.confirmation == ("confirmed" if fires else "unconfirmed")
    assert bool(step.new_tasks) == fires
    if fires:
        assert "positive alarm sequence" in step.incident.confirmed_by
        assert ("acknowledged" in step.incident.confirmed_by) != ack
        again = life.update(update_id="pas-2", action="confirm")
        assert not again.changed and not again.new_tasks


def test_an_incident_closes_when_every_task_is_completed(clock):
    life = Incident1(clock)
    life.alarm("gw:1", kind="fire_report")
    steps = [t.step for t in life.tasks.values()]
    for step_id in steps:
        life.task(step_id, "ack")
    for step_id in steps[:-1]:
        assert life.task(step_id, "complete").incident.status == "open"
    last = life.task(steps[-1], "complete")
    assert last.incident.status == "closed" and last.incident.close_reason == "completed"
    assert last.site_events[0].reason == "completed"


def test_a_bridging_alarm_merges_and_the_merged_incident_closes(clock):
    life = Incident1(clock)
    life.alarm("a", 0, kind="fire_report")
    other_triaged = triaged("c", 18 * 60, life.state, kind="fire_report")
    other = on_triaged(None, other_triaged, PLAYBOOKS, None, list, clock()).incident
    step = life.alarm("b", 9 * 60, kind="fire_report")
    assert step.incident.merged == [other.incident_id]
    assert [e.type for e in step.entries] == ["alarm_received", "incident_merged"]
    [request] = step.updates
    assert (request.incident_id, request.action, request.into) == (
        other.incident_id, "merge_into", life.incident.incident_id)
    update = request
    closed = on_update(other, update, LAB_FIRE, LAB, [], clock())
    assert (closed.incident.status, closed.incident.merged_into, closed.incident.close_reason) \
        == ("closed", life.incident.incident_id, "merged")
    assert not closed.site_events           # triage merged it already
    assert not on_update(closed.incident, update, LAB_FIRE, LAB, [], clock()).changed


def test_a_bridging_join_that_overtook_the_opening_opens_and_merges(clock):
    """The urgent lane's join can reach the incident stage before the alarm that opened the
    incident in triage: it opens the incident itself, and still merges what it bridged."""
    state = SiteState()
    triaged("a", 0, state, kind="smoke")
    other = triaged("c", 18 * 60, state, kind="smoke")
    bridge = triaged("b", 9 * 60, state, kind="fire_report")
    assert bridge.action == "join" and bridge.merges == [other.incident_id]
    step = on_triaged(None, bridge, PLAYBOOKS, None, list, clock())
    assert step.incident.alarm_ids == ["b"] and step.new_tasks
    assert step.incident.merged == [other.incident_id]
    assert [(u.incident_id, u.action) for u in step.updates] == [(other.incident_id, "merge_into")]
    restore = triaged("r", 60, state, kind="smoke", signal="restore")
    with pytest.raises(ValueError, match="does not hold"):
        on_triaged(None, restore.model_copy(update={"action": "attach"}), PLAYBOOKS, None, list,
                   clock())


def test_an_alarm_that_races_the_closing_reopens_the_incident(clock):
    life = Incident1(clock)
    life.alarm("gw:1", device_id="smk-02")
    life.task("verify", "ack")
    life.task("verify", "complete", outcome="false_alarm")
    step = life.alarm("gw:2", 60, device_id="smk-03")       # triage had not heard yet
    assert step.incident.status == "open"
    assert [e.type for e in step.entries][:3] == ["alarm_received", "incident_reopened",
                                                  "incident_confirmed"]
    assert {t.department for t in step.new_tasks} == FULL


def test_a_restore_is_recorded_and_changes_nothing_else(clock):
    life = Incident1(clock)
    life.alarm("t1", signal="trouble", device_id="smk-5")
    assert life.incident.playbook.id == "device-maintenance"
    [repair] = life.tasks.values()
    assert repair.complete_due - clock() == timedelta(hours=24)
    step = life.alarm("r1", 60, signal="restore", device_id="smk-5")
    assert step.changed and not step.new_tasks and step.incident.status == "open"
    assert step.entries[0].detail["signal"] == "restore"


def test_unknown_kind_and_unregistered_site_reach_the_fallback(clock):
    nowhere = Site.ad_hoc("adhoc-1", "科荟路")
    step = on_triaged(None, triaged("x:1", site=nowhere, kind="alien_slime"), PLAYBOOKS, None,
                      list, clock())
    assert step.incident.playbook.id == "fallback"
    assert step.new_tasks and step.incident.hazard == "other"


def test_timeline_appends_once_and_sorts_by_time_keeping_recorded_order_for_ties():
    a = entry("inc-1", "alarm_received", T0, alarm_id="gw:1")
    b = entry("inc-1", "incident_opened", T0)
    c = entry("inc-1", "task_acknowledged", T0 + timedelta(seconds=5), task_id="t", revision=2)
    stored: list[dict] = []
    for e in (c, a, b, a, c):
        stored = append(stored, e)
    assert len(stored) == 3
    assert [e.type for e in in_time_order(stored)] == [
        "alarm_received", "incident_opened", "task_acknowledged"]


def test_a_level_change_adds_the_steps_it_reaches_and_nothing_twice(clock):
    from agents.logic.incidents import SameLevel, change_level

    opened = on_triaged(None, triaged("gw:1", kind="fire_report"), PLAYBOOKS, None, list, clock())
    loaded = LAB_FIRE

    def to(level: str, incident, tasks, n: int):
        update = IncidentUpdate(update_id=f"u{n}", incident_id=incident.incident_id,
                                action="set_level", level=level, by="值班领导", at=clock())
        return change_level(incident, update, loaded, LAB, tasks, clock())

    up = to("I", opened.incident, opened.new_tasks, 1)
    assert [t.step for t in up.new_tasks] == ["medical"]
    assert [e.type for e in up.entries] == ["level_changed", "task_dispatched"]
    assert up.incident.revision == opened.incident.revision + 1
    tasks = opened.new_tasks + up.new_tasks
    down = to("II", up.incident, tasks, 2)
    again = to("I", down.incident, tasks, 3)
    assert not down.new_tasks and not again.new_tasks
    with pytest.raises(SameLevel):
        to("I", again.incident, tasks, 4)


def test_closing_by_hand_cancels_the_open_tasks_and_keeps_the_answers(clock):
    life = Incident1(clock)
    life.alarm("gw:1", kind="fire_report")
    steps = [t.step for t in life.tasks.values()]
    life.task(steps[0], "ack")
    life.task(steps[0], "complete")
    clock.advance(minutes=5)
    closed = life.update(update_id="close-1", action="close", reason="handled", note="明火已扑灭")
    inc = closed.incident
    assert (inc.status, inc.close_reason, inc.last_update_id) == ("closed", "handled", "close-1")
    assert {t.task_id: t.status for t in closed.changed_tasks} == {
        t.task_id: "cancelled" for t in life.tasks.values() if t.step != steps[0]}
    assert life.tasks[f"{inc.incident_id}.{steps[0]}"].status == "completed"  # an answer stays
    assert all(t.note == "事件已结案：明火已扑灭" and t.by == "whistle"
               for t in closed.changed_tasks)
    types = [e.type for e in closed.entries]
    assert types == ["task_cancelled"] * len(steps[1:]) + ["incident_closed"]
    assert closed.entries[-1].detail == {"reason": "handled", "why": "明火已扑灭"}
    assert closed.site_events[0].reason == "handled"
    again = life.update(update_id="close-2", action="close", reason="handled")
    assert not again.changed and again.incident == inc


def test_a_duplicate_names_the_other_and_a_false_alarm_is_one(clock):
    life = Incident1(clock)
    life.alarm("gw:1", kind="fire_report")
    dup = life.update(update_id="c", action="close", reason="duplicate", into="inc-other")
    assert dup.entries[-1].detail["duplicate_of"] == "inc-other"
    other = Incident1(clock)
    other.alarm("gw:9", kind="fire_report")
    false = other.update(update_id="f", action="close", reason="false_alarm")
    assert (false.incident.confirmation, false.site_events[0].reason) == (
        "false_alarm", "false_alarm")


def test_containing_marks_it_under_control_once(clock):
    life = Incident1(clock)
    life.alarm("gw:1", kind="fire_report")
    contained = life.update(update_id="k", action="contain", note="火势已控制")
    assert contained.incident.status == "contained" and not contained.changed_tasks
    assert [(e.type, e.detail) for e in contained.entries] == [
        ("incident_contained", {"note": "火势已控制"})]
    assert not life.update(update_id="k2", action="contain").changed
    closed = life.update(update_id="c", action="close", reason="handled")
    assert closed.incident.status == "closed", "a contained incident can be closed"


def test_a_close_needs_its_reason_and_a_duplicate_its_other():
    from pydantic import ValidationError

    from schemas import CloseRequest
    for body, field in [({"by": "x"}, "reason"), ({"reason": "duplicate", "by": "x"}, "of"),
                        ({"reason": "handled", "of": "inc-1", "by": "x"}, "of"),
                        ({"reason": "gone", "by": "x"}, "reason")]:
        with pytest.raises(ValidationError) as exc:
            CloseRequest.model_validate(body)
        assert exc.value.errors()[0]["loc"] == (field,), body
    with pytest.raises(ValidationError) as exc:
        IncidentUpdate(update_id="u", incident_id="i", action="close", by="x", at=T0)
    assert exc.value.errors()[0]["loc"] == ("reason",)
