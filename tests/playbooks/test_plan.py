from datetime import timedelta

from playbooks import LIBRARY, load_playbooks, plan_tasks, task_id_for
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
    assert [t.step for t in tasks] == [s.id for s in pb.steps]
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
