"""Maintenance silences, pure: what a silence matches, what it holds back, what breaks
through, and that held-back alarms still count as evidence."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agents.logic.correlation import SiteState, decide
from agents.logic.silences import active, apply_record, breaks_through, check
from schemas import Alarm, Evidence, Site
from schemas.silence import Silence
from tests.conftest import T0, alarm_data

WINDOW = timedelta(minutes=10)
LAB = Site(site_id="lab-3", name="3号实验室", type="laboratory", grid="JYH-G2")
HOME = Site(site_id="b7", name="7号楼", type="residential", grid="JYH-G1")


def silence(silence_id: str = "sil-1", hours: float = 2, **matchers) -> Silence:
    return Silence(silence_id=silence_id, matchers=matchers or {"site_id": "lab-3"},
                   starts_at=T0, ends_at=T0 + timedelta(hours=hours), reason="烟感年检",
                   created_by="王值班", created_at=T0)


def alarm(alarm_id: str, **over) -> Alarm:
    over.setdefault("site_id", "lab-3")
    return Alarm.model_validate(alarm_data(alarm_id=alarm_id, **over))


@pytest.mark.parametrize(("matchers", "site", "device", "held"), [
    ({"site_id": "lab-3"}, LAB, "smk-1", True),
    ({"site_id": "lab-3"}, HOME, "smk-1", False),
    ({"device_id": "smk-1"}, LAB, "smk-1", True),
    ({"device_id": "smk-1"}, LAB, "smk-2", False),
    ({"device_id": "smk-1"}, LAB, None, False),
    ({"grid": "JYH-G2"}, LAB, None, True),
    ({"site_type": "laboratory"}, HOME, None, False),
    ({"grid": "JYH-G2", "site_type": "laboratory"}, LAB, "x", True),   # all given must match
    ({"grid": "JYH-G2", "site_type": "residential"}, LAB, "x", False),
])
def test_every_matcher_given_must_match(matchers, site, device, held):
    assert (active([silence(**matchers)], site, device, T0) is not None) == held


def test_a_silence_holds_from_its_start_until_its_end():
    s = silence(hours=1)
    assert active([s], LAB, None, T0 - timedelta(seconds=1)) is None       # pending
    assert active([s], LAB, None, T0) is s
    assert active([s], LAB, None, T0 + timedelta(minutes=59, seconds=59)) is s
    assert active([s], LAB, None, T0 + timedelta(hours=1)) is None          # expired, on time
    assert [s.state_at(T0 + d) for d in (timedelta(seconds=-1), timedelta(0), timedelta(hours=1))
            ] == ["pending", "active", "expired"]


def test_of_several_the_one_ending_last_is_named():
    assert active([silence("a", 1), silence("b", 3), silence("c", 2)], LAB, None, T0).silence_id \
        == "b"


@pytest.mark.parametrize(("over", "evidence", "breaks"), [
    ({"kind": "fire_report"}, Evidence(), True),
    ({"kind": "manual_call_point"}, Evidence(), True),
    ({"reporter": {"name": "保安"}}, Evidence(), True),
    ({}, Evidence(devices=["smk-1", "smk-2"]), True),     # confirmed: two detectors
    ({}, Evidence(devices=["smk-1"], people=True), True),
    ({}, Evidence(devices=["smk-1"]), False),
    ({"signal": "trouble"}, Evidence(devices=["smk-1"]), False),
])
def test_what_breaks_through(over, evidence, breaks):
    assert breaks_through(alarm("a", **over), evidence) == breaks


class Site3:
    """Triage at one site under the given silences: decide, then check."""

    def __init__(self, *silences: Silence) -> None:
        self.state, self.silences = SiteState(), list(silences)

    def __call__(self, a: Alarm, now=T0):
        d = decide(a, self.state, False, WINDOW, site="lab-3")
        held = check(self.silences, a, LAB, d, self.state, now)
        self.state = SiteState.from_json(self.state.to_json())  # as the table holds it
        return d, held


def test_a_trouble_signal_is_held_back_and_a_fire_report_breaks_through():
    t = Site3(silence())
    _, held = t(alarm("t1", signal="trouble", kind="smoke"))
    assert (held.silence_id, held.muted) == ("sil-1", True)
    d, held = t(alarm("f1", kind="fire_report", device_id=None))
    assert (held.silence_id, held.muted) == ("sil-1", False) and d.action == "open"


def test_a_single_detector_is_held_back_and_a_second_one_confirms_and_breaks_through():
    t = Site3(silence())
    first, held = t(alarm("s1", device_id="smk-1"))
    assert held.muted and t.state.clusters[0].muted == "sil-1"
    second, held = t(alarm("s2", device_id="smk-2"))
    assert second.incident_id == first.incident_id, "the muted alarm still counts"
    assert not held.muted and second.evidence.devices == ["smk-1", "smk-2"]
    assert t.state.clusters[0].muted is None, "its incident opens now"


def test_a_detector_joining_an_open_incident_goes_there():
    t = Site3()
    t(alarm("s1", device_id="smk-1"))               # opened before the silence
    t.silences.append(silence())
    d, held = t(alarm("s1b", device_id="smk-1"))
    assert d.action == "join" and held is None


def test_after_the_silence_the_held_back_family_opens_as_usual():
    t = Site3(silence(hours=1))
    t(alarm("t1", signal="trouble"))
    d, held = t(alarm("t2", signal="trouble"), now=T0 + timedelta(hours=1))
    assert d.action == "join" and held is None and t.state.clusters[0].muted is None


def test_a_restore_never_attaches_to_a_held_back_cluster():
    t = Site3(silence())
    t(alarm("t1", signal="trouble"))
    d = decide(alarm("r1", signal="restore"), t.state, False, WINDOW, site="lab-3")
    assert d.action == "record", "no incident holds it: nothing to attach to"


def test_the_topic_record_is_applied_and_removed():
    book: dict[str, Silence] = {}
    s = silence()
    assert apply_record(book, b"sil-1", s.model_dump_json().encode()) is None
    assert book == {"sil-1": s}
    assert "sil-2" in (apply_record(book, b"sil-2", s.model_dump_json().encode()) or "")
    assert apply_record(book, b"sil-x", b"{") is not None and list(book) == ["sil-1"]
    assert apply_record(book, b"sil-1", None) is None and book == {}
