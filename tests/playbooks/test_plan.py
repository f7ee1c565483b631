from datetime import timedelta

import pytest

from playbooks import LIBRARY, load_playbooks, plan_tasks, task_id_for
from playbooks.plan import ready_steps, unit_for
from schemas import Incident, PlaybookRef, Site
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


def plan_playbook():
    import yaml

    from schemas import Playbook
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
    inc = incident().model_copy(update={"level": "III", "confirmed": False})
    site = Site(site_id="site-a", name="甲", type="factory", grid="G1")
    first = plan_tasks(inc, pb, site, T0)
    seen = {t.step for t in first}
    for change in ({"confirmed": True}, {"level": "II"}, {"level": "I"}, {"confirmed": True}):
        inc = inc.model_copy(update=change)
        more = plan_tasks(inc, pb, site, T0 + timedelta(minutes=5), planned=seen)
        assert not seen & {t.step for t in more}
        seen |= {t.step for t in more}
    assert seen == {"valve", "evacuate", "medical", "cordon"}
