from datetime import timedelta

import pytest
import yaml
from pydantic import ValidationError

from playbooks import LIBRARY, load_playbooks, plan_tasks, task_id_for
from playbooks.plan import ready_steps, unit_for
from schemas import Incident, Playbook, PlaybookRef, Site
from schemas.common import parse_duration
from tests.conftest import T0

LAB = Site(site_id="jyh-yinfeng-lab-3", name="3号实验室", type="laboratory",
           overrides={"police": {"unit": "巨野河派出所"}})


def incident() -> Incident:
    return Incident(incident_id="inc-1", level="II", site_id=LAB.site_id, kind="smoke",
                    hazard="fire", playbook=PlaybookRef(id="laboratory-fire", version="1"),
                    opened_at=T0, last_alarm_at=T0)


def test_every_step_becomes_one_task_with_deadlines_from_the_playbook():
    pb = load_playbooks(LIBRARY).by_id["laboratory-fire"].playbook
    tasks = plan_tasks(incident(), pb, LAB, T0)
    assert [t.step for t in tasks] == [s.id for s in pb.steps if s.id != "medical"]  # level I only
    police = next(t for t in tasks if t.department == "police")
    assert police.ack_due == T0 + timedelta(minutes=2)
    assert police.complete_due == T0 + timedelta(hours=2)
    assert police.unit == "巨野河派出所"
    assert all(t.status == "dispatched" and t.revision == 1 and t.level == "II" for t in tasks)


def test_ids_are_deterministic_so_a_replay_plans_the_same_tasks():
    pb = load_playbooks(LIBRARY).by_id["laboratory-fire"].playbook
    first = plan_tasks(incident(), pb, LAB, T0)
    again = plan_tasks(incident(), pb, LAB, T0 + timedelta(seconds=30))
    assert [t.task_id for t in first] == [t.task_id for t in again]
    assert first[0].task_id == task_id_for("inc-1", pb.steps[0].id) == "inc-1.fire_brigade"


# Table-driven planning over one inline playbook that uses after, when and units.
PLAN_YAML = """
id: plan
version: 1
title: 计划
level: III
match: {kinds: [gas]}
steps:
  - {id: valve, department: gas_utility, action: 关阀, ack_within: 2m, complete_within: 1h}
  - {id: inspect, department: enforcement, action: 检查, ack_within: 1h, complete_within: 3d,
     after: [valve]}
  - {id: report, department: safety_office, action: 上报, ack_within: 1h, complete_within: 1d,
     after: [valve, inspect]}
  - {id: evacuate, department: property, action: 疏散, ack_within: 2m, complete_within: 30m,
     when: {confirmed: true}}
  - {id: medical, department: medical, action: 待命, ack_within: 3m, complete_within: 2h,
     when: {level_at_least: II}}
  - {id: cordon, department: police, action: 警戒, ack_within: 3m, complete_within: 2h,
     units: {by_site: {site-a: 甲派出所}, by_grid: {G1: 网格派出所}}}
"""


def plan_playbook() -> Playbook:
    return Playbook.model_validate(yaml.safe_load(PLAN_YAML))


@pytest.mark.parametrize("level,confirmed,completed,planned,expected", [
    ("III", True, set(), set(), ["valve", "evacuate", "cordon"]),
    ("III", False, set(), set(), ["valve", "cordon"]),                  # held until confirmed
    ("II", True, set(), set(), ["valve", "evacuate", "medical", "cordon"]),
    ("I", True, set(), set(), ["valve", "evacuate", "medical", "cordon"]),
    ("III", True, {"valve"}, {"valve", "evacuate", "cordon"}, ["inspect"]),
    ("III", True, {"valve", "inspect"}, {"valve", "evacuate", "cordon", "inspect"}, ["report"]),
    ("III", True, {"inspect"}, {"valve", "evacuate", "cordon", "inspect"}, []),  # valve not done
    # a level change re-plans: only the steps of the higher level are added
    ("II", True, set(), {"valve", "evacuate", "cordon"}, ["medical"]),
    # confirmation arrives later: the held step is added, nothing twice
    ("III", True, set(), {"valve", "cordon"}, ["evacuate"]),
])
def test_ready_steps(level, confirmed, completed, planned, expected):
    steps = ready_steps(plan_playbook(), level=level, confirmed=confirmed, planned=planned,
                        completed=completed)
    assert [s.id for s in steps] == expected


@pytest.mark.parametrize("site,unit", [
    (Site(site_id="site-a", name="甲", type="factory", grid="G1"), "甲派出所"),
    (Site(site_id="site-b", name="乙", type="factory", grid="G1",
          overrides={"police": {"unit": "登记派出所"}}), "登记派出所"),
    (Site(site_id="site-c", name="丙", type="factory", grid="G1"), "网格派出所"),
    (Site(site_id="site-d", name="丁", type="factory", grid="G9"), None),
])
def test_unit_precedence_step_site_then_registry_then_grid(site, unit):
    assert unit_for(plan_playbook().step("cordon"), site) == unit


def test_replanning_never_dispatches_a_step_twice():
    pb = plan_playbook()
    # `confirmed` is a property of `confirmation`: updating it would change nothing
    inc = incident().model_copy(update={"level": "III", "confirmation": "unconfirmed"})
    site = Site(site_id="site-a", name="甲", type="factory", grid="G1")
    first = plan_tasks(inc, pb, site, T0)
    seen = {t.step for t in first}
    assert seen == {"valve", "cordon"}
    for change in ({"confirmation": "confirmed"}, {"level": "II"}, {"level": "I"},
                   {"confirmation": "confirmed"}):
        inc = inc.model_copy(update=change)
        more = plan_tasks(inc, pb, site, T0 + timedelta(minutes=5), planned=seen)
        assert not seen & {t.step for t in more}
        seen |= {t.step for t in more}
    assert seen == {"valve", "evacuate", "medical", "cordon"}


# Confirmation (GB 50116-2013 4.1.6, NFPA 72 positive alarm sequence): a playbook with `confirm`
# sends only its verification while the incident is unconfirmed.
CONFIRM_YAML = """
id: pas
version: 1
title: 确认
level: II
match: {kinds: [smoke], site_types: [laboratory]}
steps:
  - {id: fire_brigade, department: fire_brigade, action: 出动, ack_within: 30s,
     complete_within: 2h}
  - {id: alert, department: safety_office, action: 预警, ack_within: 1m, complete_within: 10m,
     when: {confirmed: false}}
  - {id: lead, department: safety_office, action: 指挥, ack_within: 1m, complete_within: 4h,
     after: [fire_brigade]}
  - {id: medical, department: medical, action: 待命, ack_within: 2m, complete_within: 2h,
     when: {level_at_least: I}}
confirm:
  verify: {id: verify, department: property, action: 到场核实, ack_within: 30s,
           complete_within: 3m}
"""


def confirm_data() -> dict:
    return yaml.safe_load(CONFIRM_YAML)


def confirm_playbook() -> Playbook:
    return Playbook.model_validate(confirm_data())


@pytest.mark.parametrize("level,confirmed,planned,completed,expected", [
    # one detector: only the check (and what says it may go out unconfirmed)
    ("II", False, set(), set(), ["verify", "alert"]),
    ("I", False, set(), set(), ["verify", "alert"]),                 # a level does not confirm
    ("II", False, {"verify", "alert"}, set(), []),
    ("II", False, {"verify", "alert"}, {"verify"}, []),              # the verdict decides, not this
    # confirmed later: everything else, nothing twice
    ("II", True, {"verify", "alert"}, set(), ["fire_brigade"]),
    ("I", True, {"verify", "alert"}, set(), ["fire_brigade", "medical"]),
    ("II", True, {"verify", "alert", "fire_brigade"}, {"fire_brigade"}, ["lead"]),
    # confirmed when it opens (a call point, a 119 report): the check never goes out
    ("II", True, set(), set(), ["fire_brigade", "alert"]),
    ("I", True, set(), set(), ["fire_brigade", "alert", "medical"]),
])
def test_ready_steps_with_confirm(level, confirmed, planned, completed, expected):
    steps = ready_steps(confirm_playbook(), level=level, confirmed=confirmed, planned=planned,
                        completed=completed)
    assert [s.id for s in steps] == expected


def test_the_verification_task_is_marked_and_due_by_its_own_deadlines():
    pb = confirm_playbook()
    inc = incident().model_copy(update={"confirmation": "unconfirmed"})
    tasks = plan_tasks(inc, pb, LAB, T0)
    assert [(t.task_id, t.verification) for t in tasks] == [("inc-1.verify", True),
                                                            ("inc-1.alert", False)]
    verify = tasks[0]
    assert (verify.department, verify.action, verify.step) == ("property", "到场核实", "verify")
    assert verify.ack_due == T0 + timedelta(seconds=30)
    assert verify.complete_due == T0 + timedelta(minutes=3)
    assert verify.status == "dispatched" and verify.outcome is None

    later = T0 + timedelta(minutes=2)
    confirmed = inc.model_copy(update={"confirmation": "confirmed"})
    more = plan_tasks(confirmed, pb, LAB, later, planned={t.step for t in tasks})
    assert [(t.step, t.verification) for t in more] == [("fire_brigade", False)]
    assert more[0].ack_due == later + timedelta(seconds=30)


def test_a_confirmed_step_goes_out_in_a_playbook_without_confirm():
    pb = plan_playbook()   # no confirm: every incident it opens is confirmed
    tasks = plan_tasks(incident().model_copy(update={"level": "III"}), pb, LAB, T0)
    assert [t.step for t in tasks] == ["valve", "evacuate", "cordon"]
    assert not any(t.verification for t in tasks)


def _set(path: tuple, value):
    def change(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


@pytest.mark.parametrize("change,loc,says", [
    (_set(("confirm", "verify", "ack_within"), "10s"), ("confirm", "verify", "ack_within"),
     "15s to 1m"),
    (_set(("confirm", "verify", "ack_within"), "2m"), ("confirm", "verify", "ack_within"),
     "15s to 1m"),
    (_set(("confirm", "verify", "complete_within"), "4m"),
     ("confirm", "verify", "complete_within"), "within 3m"),
    (_set(("confirm", "verify", "after"), ["fire_brigade"]), ("confirm", "verify", "after"),
     "at once"),
    (_set(("confirm", "verify", "id"), "fire_brigade"), ("confirm", "verify", "id"),
     "'fire_brigade' is used by a step too"),
    (_set(("confirm", "detectors"), 1), ("confirm", "detectors"), "greater than or equal to 2"),
])
def test_confirm_is_validated_as_the_codes_say(change, loc, says):
    data = confirm_data()
    change(data)
    with pytest.raises(ValidationError) as exc:
        Playbook.model_validate(data)
    errors = exc.value.errors()
    assert [e["loc"] for e in errors] == [loc]
    assert says in errors[0]["msg"]


def test_a_verification_with_a_when_is_refused():
    data = confirm_data()
    data["confirm"]["verify"]["when"] = {"confirmed": False}
    with pytest.raises(ValidationError) as exc:
        Playbook.model_validate(data)
    assert exc.value.errors()[0]["loc"][:2] == ("confirm", "verify")


@pytest.mark.parametrize("ack,complete", [("15s", "15s"), ("1m", "3m"), ("30s", "2m")])
def test_confirm_deadlines_at_the_limits_are_accepted(ack, complete):
    data = confirm_data()
    data["confirm"]["verify"].update(ack_within=ack, complete_within=complete)
    verify = Playbook.model_validate(data).confirm.verify
    assert (verify.ack_within, verify.complete_within) == (parse_duration(ack),
                                                           parse_duration(complete))



def test_a_drills_tasks_carry_the_mark():
    pb = load_playbooks(LIBRARY).by_id["laboratory-fire"].playbook
    drill = plan_tasks(incident().model_copy(update={"drill": True}), pb, LAB, T0)
    assert drill and all(t.drill is True for t in drill)
    assert all(t.drill is None for t in plan_tasks(incident(), pb, LAB, T0))
