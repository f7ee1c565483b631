import itertools
import random
from datetime import timedelta

import pytest

from agents.logic.correlation import (
    RETENTION,
    SiteState,
    decide,
    family_of,
    hazard_of,
    incident_id_for,
)
from schemas import Alarm
from tests.conftest import T0, alarm_data

WINDOW = timedelta(minutes=10)
SITE = "jyh-yinfeng-lab-3"


def alarm(alarm_id: str, at_seconds: float = 0, **over) -> Alarm:
    at = (T0 + timedelta(seconds=at_seconds)).isoformat()
    over.setdefault("device_id", f"dev-{alarm_id}")
    return Alarm.model_validate(alarm_data(alarm_id=alarm_id, occurred_at=at, **over),
                                context={"now": T0 + timedelta(days=3)})


class Triage:
    """What the triage agent keeps: the site state and the alarms already decided."""

    def __init__(self) -> None:
        self.state, self.seen, self.decisions = SiteState(), {}, []
        self.merged_into: dict[str, str] = {}

    def __call__(self, a: Alarm):
        d = decide(a, self.state, self.seen.get(a.alarm_id, False), WINDOW, site=SITE)
        if d.action not in ("duplicate", "record"):
            self.seen[a.alarm_id] = d.incident_id
            self.state = SiteState.from_json(self.state.to_json())  # as the table holds it
        for m in d.merges:
            self.merged_into[m] = d.incident_id
        self.decisions.append(d)
        return d

    def final(self, incident_id: str) -> str:
        while incident_id in self.merged_into:
            incident_id = self.merged_into[incident_id]
        return incident_id

    def groups(self) -> set[frozenset[str]]:
        """Alarm ids grouped by the incident they finally belong to."""
        by: dict[str, set[str]] = {}
        for alarm_id, incident_id in self.seen.items():
            by.setdefault(self.final(incident_id), set()).add(alarm_id)
        return {frozenset(g) for g in by.values()}


def test_lab_fire_alarms_join_one_incident_and_the_retry_is_a_duplicate():
    t = Triage()
    for a in [alarm("gw:1"), alarm("gw:2", 24), alarm("119:1", 55, kind="fire_report"),
              alarm("gw:1")]:
        t(a)
    assert [d.action for d in t.decisions] == ["open", "join", "join", "duplicate"]
    assert len({d.incident_id for d in t.decisions}) == 1
    assert t.decisions[0].incident_id.startswith("inc-20230516-")
    evidence = t.decisions[2].evidence
    assert evidence.devices == ["dev-gw:1", "dev-gw:2"] and evidence.people


def test_window_counts_from_the_last_alarm():
    t = Triage()
    first, joined, still, later = (t(alarm("a")), t(alarm("b", 9 * 60)), t(alarm("c", 18 * 60)),
                                   t(alarm("d", 18 * 60 + 601)))  # 10 min 1 s after c
    assert joined.incident_id == still.incident_id == first.incident_id
    assert later.opens and later.incident_id != first.incident_id


def test_other_hazards_at_the_same_site_are_other_incidents():
    t = Triage()
    fire, gas = t(alarm("a")), t(alarm("b", 5, kind="gas"))
    assert gas.opens and gas.incident_id != fire.incident_id
    assert hazard_of("fire_report") == hazard_of("smoke") == "fire"
    assert hazard_of("never-heard-of-it") == "other"


def test_a_late_alarm_joins_the_incident_it_falls_before():
    t = Triage()
    first = t(alarm("b", 600))
    early = t(alarm("a", 60))  # occurred 9 minutes before the first to arrive
    assert early.action == "join" and early.incident_id == first.incident_id


def test_a_late_alarm_that_bridges_two_incidents_merges_the_younger_into_the_older():
    t = Triage()
    a, c = t(alarm("a", 0)), t(alarm("c", 18 * 60))
    assert c.opens and c.incident_id != a.incident_id       # 18 min apart: two incidents
    b = t(alarm("b", 9 * 60))                                # 9 min from each: one fire
    assert (b.action, b.incident_id, b.merges) == ("join", a.incident_id, (c.incident_id,))
    assert t(alarm("d", 27 * 60)).incident_id == a.incident_id
    assert [cl.incident_id for cl in t.state.clusters] == [a.incident_id]


def single_linkage(times: dict[str, float]) -> set[frozenset[str]]:
    """The grouping in time order: a new group wherever the gap exceeds the window."""
    groups, current, last = [], [], None
    for alarm_id, at in sorted(times.items(), key=lambda kv: (kv[1], kv[0])):
        if last is not None and at - last > WINDOW.total_seconds():
            groups.append(current)
            current = []
        current.append(alarm_id)
        last = at
    groups.append(current)
    return {frozenset(g) for g in groups}


def test_every_arrival_order_of_a_small_set_groups_alarms_the_same():
    times = {"a": 0, "b": 540, "c": 1080, "d": 1800, "e": 2340}  # a-b-c one fire, d-e another
    expected = single_linkage(times)
    assert len(expected) == 2
    for order in itertools.permutations(times):
        t = Triage()
        for alarm_id in order:
            t(alarm(alarm_id, times[alarm_id]))
        assert t.groups() == expected, order


@pytest.mark.parametrize("seed", range(40))
def test_shuffled_arrival_with_retries_groups_as_time_order_does(seed):
    rng = random.Random(seed)
    times = {f"x{i}": rng.uniform(0, 3 * 3600) for i in range(rng.randint(5, 60))}
    arrivals = list(times) + rng.sample(list(times), len(times) // 5)  # 20% retries
    rng.shuffle(arrivals)
    t = Triage()
    for alarm_id in arrivals:
        t(alarm(alarm_id, times[alarm_id]))
    assert t.groups() == single_linkage(times)
    assert sum(d.action == "duplicate" for d in t.decisions) == len(arrivals) - len(times)
    opened = {d.incident_id for d in t.decisions if d.opens}
    merged = {m for d in t.decisions for m in d.merges}
    assert len(opened - merged) == len(single_linkage(times))


def test_trouble_and_supervisory_are_one_maintenance_incident_per_device_until_fixed():
    t = Triage()
    low = t(alarm("t1", 0, signal="trouble", device_id="smk-1", attributes={"trouble": "battery"}))
    again = t(alarm("t2", 3 * 3600, signal="trouble", device_id="smk-1"))      # hours later
    sup = t(alarm("s1", 60, signal="supervisory", device_id="smk-1"))
    other = t(alarm("t3", 0, signal="trouble", device_id="smk-2"))
    fire = t(alarm("f1", 0, device_id="smk-1"))
    assert family_of(alarm("t1", signal="trouble", device_id="smk-1")) == "maintenance:smk-1"
    assert low.opens and again.incident_id == sup.incident_id == low.incident_id
    assert other.opens and other.incident_id != low.incident_id
    assert fire.opens and fire.incident_id != low.incident_id   # a fire is not maintenance
    assert t.state.close(low.incident_id)                       # fixed
    assert t(alarm("t4", 4 * 3600, signal="trouble", device_id="smk-1")).opens


def test_restore_and_test_signals_never_open_an_incident():
    t = Triage()
    assert t(alarm("hb", 0, signal="test")).action == "record"
    assert t(alarm("r0", 0, signal="restore")).action == "record"
    fault = t(alarm("t1", 0, signal="trouble", device_id="smk-1"))
    restored = t(alarm("r1", 60, signal="restore", device_id="smk-1"))
    assert (restored.action, restored.incident_id) == ("attach", fault.incident_id)
    fire = t(alarm("f1", 100, device_id="smk-9"))
    after = t(alarm("r2", 160, signal="restore", device_id="smk-9"))
    assert (after.action, after.incident_id) == ("attach", fire.incident_id)
    assert not t.state.clusters[-1].devices.count("smk-9") > 1
    assert [d.action for d in t.decisions].count("open") == 2


def test_a_closed_incident_is_forgotten_and_the_next_alarm_opens_a_new_one():
    t = Triage()
    first = t(alarm("a", 0))
    t.state.close(first.incident_id)
    assert t(alarm("b", 60)).opens


def test_alarms_later_than_the_retention_open_their_own_incident():
    t = Triage()
    t(alarm("new", RETENTION.total_seconds() + 7200))
    old = t(alarm("old", 0))
    assert old.opens


def test_evidence_counts_distinct_detectors_and_people():
    t = Triage()
    t(alarm("a", 0, device_id="smk-1"))
    same = t(alarm("b", 5, device_id="smk-1"))
    assert same.evidence.devices == ["smk-1"] and not same.evidence.people
    nodevice = t(alarm("c", 9, device_id=None))
    assert nodevice.evidence.devices == ["smk-1", "alarm:c"]   # never held back for a gap
    person = t(alarm("d", 12, kind="manual_call_point", device_id="mcp-1"))
    assert person.evidence.people and "mcp-1" not in person.evidence.devices


def test_decisions_are_deterministic_and_survive_serialisation():
    state = SiteState()
    d1 = decide(alarm("a"), state, False, WINDOW, site=SITE)
    restored = SiteState.from_json(state.to_json())
    d2 = decide(alarm("b", 30), restored, False, WINDOW, site=SITE)
    assert d2.incident_id == d1.incident_id
    assert d1.incident_id == incident_id_for(SITE, "fire", alarm("a"))
    assert decide(alarm("a"), SiteState(), False, WINDOW, site=SITE).incident_id == d1.incident_id


def test_a_new_incident_id_is_the_first_of_its_sequence_that_lands_where_asked():
    """The stage asks for ids on its own partition: the same alarm gets the same id every
    time; the plain id when it lands (or when nothing does), else a later one of the sequence."""
    plain = incident_id_for(SITE, "fire", alarm("a"))
    assert incident_id_for(SITE, "fire", alarm("a"), lambda i: True) == plain
    assert incident_id_for(SITE, "fire", alarm("a"), lambda i: False) == plain
    tried: list[str] = []

    def third(incident_id: str) -> bool:
        tried.append(incident_id)
        return len(tried) == 3

    chosen = incident_id_for(SITE, "fire", alarm("a"), third)
    assert chosen == tried[2] != plain and len(set(tried)) == 3
    assert chosen[:13] == plain[:13]                     # inc-<local date>-, then the hash
    assert incident_id_for(SITE, "fire", alarm("a"), lambda i: i == chosen) == chosen
    opened = decide(alarm("a"), SiteState(), False, WINDOW, site=SITE,
                    lands=lambda i: i == chosen)
    assert opened.incident_id == chosen


def test_a_drill_never_joins_a_real_incident_nor_a_real_alarm_a_drill():
    t = Triage()
    drill = t(alarm("d1", drill=True))
    real = t(alarm("r1", 30))
    drill_again = t(alarm("d2", 60, drill=True))
    assert (drill.action, real.action, drill_again.action) == ("open", "open", "join")
    assert drill.family == "drill:fire" and real.family == "fire"
    assert drill_again.incident_id == drill.incident_id != real.incident_id
    # a drill's restore is attached to the drill, a real one's to the real incident
    assert t(alarm("d3", 90, drill=True, signal="restore")).incident_id == drill.incident_id
    assert t(alarm("r2", 90, signal="restore")).incident_id == real.incident_id
