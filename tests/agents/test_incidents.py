from datetime import timedelta

from agents.correlation import SiteState, decide
from agents.incidents import on_triaged
from agents.timelines import append, entry, in_time_order
from playbooks import LIBRARY, load_playbooks
from schemas import Alarm, Site, Triaged
from tests.conftest import T0, alarm_data

PLAYBOOKS = load_playbooks(LIBRARY)
LAB = Site(site_id="jyh-yinfeng-lab-3", name="3号实验室", type="laboratory", address="巨野河街道")


def triaged(alarm_id: str, seconds: float = 0, state: SiteState | None = None,
            site: Site = LAB, **over) -> Triaged:
    a = Alarm.model_validate(alarm_data(alarm_id=alarm_id, site_id=site.site_id,
                                        occurred_at=(T0 + timedelta(seconds=seconds)).isoformat(),
                                        **over), context={"now": T0 + timedelta(days=1)})
    d = decide(a, state if state is not None else SiteState(), None, timedelta(minutes=10))
    return Triaged(alarm=a, incident_id=d.incident_id, opens=d.opens, hazard=d.hazard, site=site)


def test_opening_matches_plans_and_records_in_order(clock):
    step = on_triaged(None, triaged("gw:1"), PLAYBOOKS, clock())
    inc = step.incident
    assert (inc.status, inc.level, inc.playbook.id, inc.alarm_ids) == (
        "open", "II", "laboratory-fire", ["gw:1"])
    assert inc.task_ids == [t.task_id for t in step.new_tasks]
    assert {t.department for t in step.new_tasks} >= {
        "safety_office", "police", "power_supply", "enforcement", "fire_brigade"}
    types = [e.type for e in step.entries]
    assert types == ["alarm_received", "incident_opened", "playbook_matched",
                     *["task_dispatched"] * len(step.new_tasks)]
    matched = step.entries[2].detail
    assert matched["playbook_id"] == "laboratory-fire" and matched["version"] == "2"
    assert step.entries[0].detail["occurred_at"] == T0.isoformat()


def test_a_second_alarm_attaches_and_a_replay_changes_nothing(clock):
    state = SiteState()
    first = on_triaged(None, triaged("gw:1", 0, state), PLAYBOOKS, clock())
    clock.advance(seconds=24)
    second = on_triaged(first.incident, triaged("gw:2", 24, state), PLAYBOOKS, clock())
    assert second.changed and not second.new_tasks
    assert second.incident.alarm_ids == ["gw:1", "gw:2"]
    assert second.incident.revision == first.incident.revision + 1
    assert [e.type for e in second.entries] == ["alarm_received"]
    replay = on_triaged(second.incident, triaged("gw:2", 24, state), PLAYBOOKS, clock())
    assert not replay.changed and replay.incident == second.incident
    assert replay.entries[0].entry_id == second.entries[0].entry_id  # dropped downstream


def test_unknown_kind_and_unregistered_site_reach_the_fallback(clock):
    nowhere = Site.ad_hoc("adhoc-1", "科荟路")
    step = on_triaged(None, triaged("x:1", site=nowhere, kind="alien_slime"), PLAYBOOKS, clock())
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
    import pytest

    from agents.incidents import SameLevel, change_level
    from schemas import IncidentUpdate

    opened = on_triaged(None, triaged("gw:1"), PLAYBOOKS, clock())
    loaded = PLAYBOOKS.by_id["laboratory-fire"]

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
