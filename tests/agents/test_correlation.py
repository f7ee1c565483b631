from datetime import timedelta

from agents.correlation import SiteState, decide, hazard_of, incident_id_for, site_key
from schemas import Alarm
from tests.conftest import T0, alarm_data

WINDOW = timedelta(minutes=10)


def alarm(alarm_id: str, at_seconds: float = 0, **over) -> Alarm:
    at = (T0 + timedelta(seconds=at_seconds)).isoformat()
    return Alarm.model_validate(alarm_data(alarm_id=alarm_id, occurred_at=at, **over),
                                context={"now": T0 + timedelta(days=1)})


def test_lab_fire_alarms_join_one_incident_and_the_retry_is_a_duplicate():
    state, seen = SiteState(), {}
    decisions = []
    for a in [alarm("gw:1"), alarm("gw:2", 24), alarm("119:1", 55, kind="fire_report"),
              alarm("gw:1")]:
        d = decide(a, state, seen.get(a.alarm_id), WINDOW)
        if not d.duplicate:
            seen[a.alarm_id] = d.incident_id
        decisions.append(d)
    assert [d.opens for d in decisions] == [True, False, False, False]
    assert [d.duplicate for d in decisions] == [False, False, False, True]
    assert len({d.incident_id for d in decisions}) == 1
    assert decisions[0].incident_id.startswith("inc-20230516-")


def test_window_counts_from_the_last_alarm():
    state = SiteState()
    first = decide(alarm("a"), state, None, WINDOW)
    joined = decide(alarm("b", 9 * 60), state, None, WINDOW)       # 9 min after a
    still = decide(alarm("c", 18 * 60), state, None, WINDOW)       # 9 min after b
    later = decide(alarm("d", 18 * 60 + 601), state, None, WINDOW)  # 10 min 1 s after c
    assert joined.incident_id == still.incident_id == first.incident_id
    assert later.opens and later.incident_id != first.incident_id


def test_other_hazards_at_the_same_site_are_other_incidents():
    state = SiteState()
    fire = decide(alarm("a"), state, None, WINDOW)
    gas = decide(alarm("b", 5, kind="gas"), state, None, WINDOW)
    assert gas.opens and gas.incident_id != fire.incident_id
    assert hazard_of("fire_report") == hazard_of("smoke") == "fire"
    assert hazard_of("never-heard-of-it") == "other"


def test_decisions_are_deterministic_and_survive_serialisation():
    state = SiteState()
    d1 = decide(alarm("a"), state, None, WINDOW)
    restored = SiteState.from_json(state.to_json())
    d2 = decide(alarm("b", 30), restored, None, WINDOW)
    assert d2.incident_id == d1.incident_id
    assert d1.incident_id == incident_id_for("jyh-yinfeng-lab-3", "fire", alarm("a"))
    assert decide(alarm("a"), SiteState(), None, WINDOW).incident_id == d1.incident_id


def test_located_reports_without_a_site_get_a_stable_ad_hoc_key():
    a = alarm("p1", site_id=None, kind="fire_report", location={"address": "科荟路 12号"})
    b = alarm("p2", site_id=None, kind="fire_report", location={"address": "科荟路 12号"})
    assert site_key(a) == site_key(b) and site_key(a).startswith("adhoc-")
