"""Device health rules (agents/logic/health.py), as pure functions with a fixed clock: signs of
life, offline reports, the due index, and false alarms counted per site and local day."""

import random
from datetime import datetime, timedelta

import pytest

from agents.logic.correlation import SiteState
from agents.logic.health import (
    FALSE_ALARMS_PER_DAY,
    HYSTERESIS,
    DeviceState,
    DueIndex,
    battery_alarm,
    count_false_alarm,
    false_alarm_flag,
    is_battery_report,
    is_offline_report,
    offline_alarm,
    seen,
)
from agents.logic.incidents import facts_of
from playbooks import LIBRARY, load_playbooks, match
from schemas import Alarm, Site, SiteEvent
from tests.conftest import CHINA, T0, alarm_data

DAY = timedelta(hours=24)
EPOCH = int(T0.timestamp())
PLAYBOOKS = load_playbooks(LIBRARY)
LAB = Site(site_id="jyh-yinfeng-lab-3", name="3号实验室", type="laboratory")
HOME = Site(site_id="jyh-home-7", name="7号楼", type="residential")
ROAD = Site(site_id="jyh-lamp-12", name="12号路灯", type="public_road")


def alarm(at: datetime = T0, **over) -> Alarm:
    return Alarm.model_validate(alarm_data(occurred_at=at.isoformat(), **over),
                                context={"now": at})


def first_state() -> DeviceState:
    state = seen(None, alarm(), site_id="lab-3", silence=DAY)
    assert state is not None
    return state


# seen: what a message says about its device

def test_the_first_message_creates_the_state():
    state = seen(None, alarm(signal="test"), site_id="lab-3", silence=DAY)
    assert state == DeviceState(site_id="lab-3", kind="smoke", last_seen=EPOCH, silence=86400,
                                reported=0, last_signal="test")
    assert state.due == EPOCH + 86400
    assert DeviceState.from_json(state.to_json()) == state


def test_a_newer_message_moves_last_seen():
    state = seen(first_state(), alarm(T0 + timedelta(hours=1), signal="test"), site_id="lab-3",
                 silence=DAY)
    assert state is not None
    assert (state.last_seen, state.last_signal) == (EPOCH + 3600, "test")
    assert state.due == EPOCH + 3600 + 86400


@pytest.mark.parametrize("at", [T0, T0 - timedelta(seconds=1), T0 - timedelta(hours=5)],
                         ids=["replay", "a second older", "hours older"])
def test_an_older_or_replayed_message_writes_nothing(at):
    state = first_state()
    before = state.to_json()
    assert seen(state, alarm(at, signal="test"), site_id="lab-3", silence=DAY) is None
    assert state.to_json() == before


@pytest.mark.parametrize("site_id,silence,expected", [
    ("lab-4", DAY, ("lab-4", 86400)),                      # the device moved to another site
    ("lab-3", timedelta(hours=6), ("lab-3", 21600)),       # the registry changed its interval
])
def test_a_new_site_or_interval_is_written_even_for_an_older_message(site_id, silence, expected):
    state = seen(first_state(), alarm(T0 - timedelta(hours=1)), site_id=site_id,
                 silence=silence)
    assert state is not None
    assert (state.site_id, state.silence) == expected
    assert state.last_seen == EPOCH  # the older message is no newer sign of life


def test_our_own_offline_report_is_not_a_sign_of_life():
    state = first_state()
    report = offline_alarm("smk-1", state)
    # as triage gets it: through the alarms topic, as JSON
    report = Alarm.model_validate_json(report.model_dump_json(),
                                       context={"now": report.occurred_at})
    after = seen(state, report, site_id="lab-3", silence=DAY)
    assert after is not None
    assert (after.reported, after.last_seen) == (EPOCH, EPOCH)
    assert after.last_signal == "alarm"
    assert seen(after, report, site_id="lab-3", silence=DAY) is None  # reported once
    # the device speaks again, goes silent again: a new report for the new last_seen
    back = seen(after, alarm(T0 + 2 * DAY, signal="test"), site_id="lab-3", silence=DAY)
    assert back is not None and back.last_seen > back.reported
    again = seen(back, offline_alarm("smk-1", back), site_id="lab-3", silence=DAY)
    assert again is not None and again.reported == again.last_seen == EPOCH + 2 * 86400


def test_an_offline_report_of_an_unknown_device_writes_nothing():
    report = offline_alarm("smk-1", first_state())
    assert seen(None, report, site_id="lab-3", silence=DAY) is None


# offline_alarm: the synthetic trouble alarm

def test_the_offline_alarm_is_deterministic_trouble_at_the_due_time():
    state = first_state()
    report = offline_alarm("smk-1", state)
    assert report.alarm_id == f"offline:smk-1:{EPOCH}" == "offline:smk-1:1684216987"
    assert offline_alarm("smk-1", state) == report  # another check, another worker: same alarm
    assert (report.signal, report.kind, report.site_id, report.device_id) == (
        "trouble", "smoke", "lab-3", "smk-1")
    assert report.occurred_at == T0 + DAY
    assert report.attributes["trouble"] == "offline"
    assert report.attributes["last_seen_epoch"] == EPOCH
    assert report.description.startswith("设备离线: smk-1 超过 1d 未上报")
    wire = report.model_dump(mode="json")
    assert Alarm.model_validate(wire, context={"now": T0 + DAY}) == report


# DueIndex: devices by the minute they fall due

def test_rescheduling_moves_a_device_between_buckets():
    index = DueIndex()
    index.schedule("smk-1", due=1_700_000_000)
    index.schedule("smk-1", due=1_700_003_600)  # it spoke: due an hour later
    assert len(index) == 1
    assert index.pop_due(now=1_700_000_060) == []
    index.schedule("smk-1", due=1_700_000_000)  # and back
    assert len(index) == 1
    assert index.pop_due(now=1_700_000_060) == ["smk-1"]
    assert len(index) == 0


def test_only_buckets_that_fully_passed_are_popped():
    index = DueIndex()
    due = 1_700_000_000                # bucket [1_699_999_980, 1_700_000_040)
    index.schedule("smk-1", due=due)
    assert index.pop_due(now=due) == []
    assert index.pop_due(now=1_700_000_039) == []
    assert index.pop_due(now=1_700_000_040) == ["smk-1"]
    assert index.pop_due(now=1_700_000_040) == []  # popped means removed


def test_a_device_scheduled_after_popping_comes_back():
    index = DueIndex()
    index.schedule("smk-1", due=1_700_000_000)
    assert index.pop_due(now=1_700_000_100) == ["smk-1"]
    index.schedule("smk-1", due=1_700_000_000)  # the same due: not ignored as "unchanged"
    assert len(index) == 1
    assert index.pop_due(now=1_700_000_100) == ["smk-1"]


def test_ten_thousand_devices_pop_exactly_the_due_ones():
    rng = random.Random(5)
    base, index, dues = 1_700_000_000, DueIndex(), {}
    for i in range(10_000):
        dues[f"dev-{i}"] = base + rng.randrange(0, 7200)
        index.schedule(f"dev-{i}", dues[f"dev-{i}"])
    for device_id in rng.sample(sorted(dues), 3000):  # heartbeats move some of them
        dues[device_id] = base + rng.randrange(0, 7200)
        index.schedule(device_id, dues[device_id])
    assert len(index) == 10_000
    popped: set[str] = set()
    for now in (base - 60, base + 1, base + 1799, base + 3600, base + 3630, base + 7260):
        got = index.pop_due(now)
        expected = {d for d, due in dues.items() if due // 60 < now // 60} - popped
        assert len(got) == len(set(got))
        assert set(got) == expected, now
        popped |= expected
        assert len(index) == 10_000 - len(popped)
    assert len(index) == 0


# count_false_alarm: once per incident per local day

def closed(incident_id: str, at: datetime) -> SiteEvent:
    return SiteEvent(event_id=f"{incident_id}:closed", site_id=LAB.site_id,
                     type="incident_closed", incident_id=incident_id, family="fire",
                     reason="false_alarm", devices=["smk-1"], at=at)


def count(state: SiteState, event: SiteEvent) -> tuple[SiteState, tuple[bool, str | None]]:
    """Count as the site-events agent does: the state goes through the table as JSON."""
    state = SiteState.from_json(state.to_json())
    result = count_false_alarm(state, event)
    return state, result


@pytest.mark.parametrize("at,day", [
    ("2023-05-16T23:30:00+08:00", "2023-05-16"),
    ("2023-05-17T00:10:00+08:00", "2023-05-17"),
    ("2023-05-16T16:00:00Z", "2023-05-17"),           # 00:00 in Shanghai
    ("2023-05-16T15:59:59Z", "2023-05-16"),
])
def test_false_alarms_count_by_the_local_day(at, day):
    event = SiteEvent.model_validate({**closed("inc-1", T0).model_dump(mode="json"), "at": at})
    state, result = count(SiteState(), event)
    assert result == (True, None)
    assert state.false_alarms == {day: ["inc-1"]}


def test_the_sixth_false_alarm_of_a_day_flags_it_once_and_each_day_on_its_own():
    state, results = SiteState(), []
    at = datetime(2023, 5, 16, 8, 0, tzinfo=CHINA)
    for i in range(1, 8):
        state, result = count(state, closed(f"inc-16-{i}", at + timedelta(minutes=i)))
        results.append(result)
    assert FALSE_ALARMS_PER_DAY == 5  # GB 50440: more than 5
    assert results == [(True, None)] * 5 + [(True, "2023-05-16"), (True, None)]
    next_day = datetime(2023, 5, 17, 0, 10, tzinfo=CHINA)
    results = []
    for i in range(1, 8):
        state, result = count(state, closed(f"inc-17-{i}", next_day + timedelta(minutes=i)))
        results.append(result)
    assert results == [(True, None)] * 5 + [(True, "2023-05-17"), (True, None)]
    assert [len(state.false_alarms[d]) for d in ("2023-05-16", "2023-05-17")] == [7, 7]


def test_a_replayed_close_is_not_counted_twice():
    state = SiteState()
    for i in range(1, 6):
        event = closed(f"inc-{i}", T0 + timedelta(minutes=i))
        state, first = count(state, event)
        state, again = count(state, event)
        assert (first, again) == ((True, None), (False, None))
    assert state.false_alarms == {"2023-05-16": [f"inc-{i}" for i in range(1, 6)]}
    state, result = count(state, closed("inc-6", T0 + timedelta(minutes=6)))
    assert result == (True, "2023-05-16")
    state, result = count(state, closed("inc-6", T0 + timedelta(minutes=6)))
    assert result == (False, None)  # a replay of the sixth does not flag again


def test_only_the_last_seven_days_are_kept():
    state = SiteState()
    for d in range(10):
        state, _ = count(state, closed(f"inc-{d}", T0 + timedelta(days=d)))
    assert sorted(state.false_alarms) == [f"2023-05-{day}" for day in range(19, 26)]


# false_alarm_flag: the daily notice, and the playbook that takes it

def test_the_flag_is_one_alarm_per_site_and_day_for_the_safety_office():
    ids = [f"inc-{i}" for i in range(1, 7)]
    at = T0 + timedelta(hours=2)
    flag = false_alarm_flag(LAB.site_id, "2023-05-16", ids, at)
    assert flag.alarm_id == "false-alarms:jyh-yinfeng-lab-3:2023-05-16"
    assert (flag.kind, flag.signal, flag.site_id, flag.occurred_at) == (
        "repeated_false_alarms", "alarm", LAB.site_id, at)
    assert flag.attributes == {"day": "2023-05-16", "false_alarms": 6, "incidents": ids}
    assert Alarm.model_validate(flag.model_dump(mode="json"), context={"now": at}) == flag
    for site in (LAB, HOME, ROAD):
        assert match(PLAYBOOKS, facts_of(flag, site)).winner.playbook.id == "repeated-false-alarms"


# device-maintenance takes every fault, whatever the kind and the site

@pytest.mark.parametrize("site", [LAB, HOME, ROAD], ids=lambda s: s.type)
@pytest.mark.parametrize("kind", ["smoke", "gas", "electrical", "power_trip"])
@pytest.mark.parametrize("signal", ["trouble", "supervisory", "alarm"])
def test_faults_go_to_maintenance_and_alarms_never_do(site, kind, signal):
    a = alarm(kind=kind, signal=signal, site_id=site.site_id)
    winner = match(PLAYBOOKS, facts_of(a, site)).winner.playbook
    if signal == "alarm":
        assert winner.id != "device-maintenance"
    else:
        assert winner.id == "device-maintenance"
        assert winner.confirm is None  # a fault is never held back for a fire check


def test_the_offline_report_goes_to_maintenance():
    report = offline_alarm("smk-1", first_state())
    assert match(PLAYBOOKS, facts_of(report, LAB)).winner.playbook.id == "device-maintenance"


# battery: readings kept, one maintenance alarm per low period (GB 20517 battery fault)

def beat(state: DeviceState | None, hours: float, battery: float | None = None,
         **attributes) -> DeviceState:
    if battery is not None:
        attributes["battery"] = battery
    got = seen(state, alarm(T0 + timedelta(hours=hours), signal="test", attributes=attributes),
               site_id="lab-3", silence=DAY)
    assert got is not None
    return got


def test_readings_are_kept_from_the_newest_message():
    state = beat(None, 0, 80, signal=-71)
    assert (state.battery, state.signal) == (80.0, -71.0)
    state = beat(state, 1)  # a message without readings keeps the last ones
    assert (state.battery, state.signal) == (80.0, -71.0)
    assert seen(state, alarm(T0, signal="test", attributes={"battery": 5}), site_id="lab-3",
                silence=DAY) is None  # an older message changes nothing
    assert state.battery == 80.0


def test_a_low_battery_raises_one_maintenance_alarm_per_low_period():
    state = beat(None, 0, 80)
    assert battery_alarm("smk-1", state, 20) is None
    state = beat(state, 1, 20)  # at the threshold: low
    low = battery_alarm("smk-1", state, 20)
    assert low is not None and low.alarm_id == f"battery:smk-1:{EPOCH + 3600}"
    assert (low.signal, low.attributes["trouble"], low.attributes["battery"]) == \
        ("trouble", "battery", 20.0)
    assert is_battery_report(low) and not is_offline_report(low)
    state = beat(state, 2, 14)  # still low, not reported yet: the same alarm again
    assert battery_alarm("smk-1", state, 20).alarm_id == low.alarm_id
    reported = seen(state, low, site_id="lab-3", silence=DAY)  # triage sees it: not a beat
    assert reported is not None and reported.battery_reported == EPOCH + 3600
    assert reported.last_seen == EPOCH + 7200
    assert seen(reported, low, site_id="lab-3", silence=DAY) is None  # a replay
    state = beat(reported, 3, 12)
    assert battery_alarm("smk-1", state, 20) is None


def test_a_battery_must_recover_past_the_hysteresis_to_rearm():
    state = beat(None, 0, 15)
    low = battery_alarm("smk-1", state, 20)
    assert low is not None
    state = seen(state, low, site_id="lab-3", silence=DAY)
    assert state is not None
    state = beat(state, 1, 20 + HYSTERESIS)  # wavering about the threshold: the same period
    assert battery_alarm("smk-1", state, 20) is None and state.low_since == EPOCH
    state = beat(state, 2, 18)
    assert battery_alarm("smk-1", state, 20) is None
    state = beat(state, 3, 90)  # a new battery
    assert battery_alarm("smk-1", state, 20) is None and state.low_since == 0
    state = beat(state, 4, 10)  # a second low period: a second alarm
    again = battery_alarm("smk-1", state, 20)
    assert again is not None and again.alarm_id == f"battery:smk-1:{EPOCH + 4 * 3600}"


def test_the_battery_alarm_goes_to_maintenance_never_a_fire_playbook():
    state = beat(None, 0, 10)
    low = battery_alarm("smk-1", state, 20)
    assert low is not None
    for site in (LAB, HOME, ROAD):
        assert match(PLAYBOOKS, facts_of(low, site)).winner.playbook.id == "device-maintenance"


def test_an_old_stored_state_loads_without_readings():
    old = ["lab-3", "smoke", EPOCH, 86400, 0, 2, "test"]  # as stored before readings
    state = DeviceState.from_json(old)
    assert state is not None and (state.battery, state.signal, state.low_since) == (None, None, 0)
    assert battery_alarm("smk-1", state, 20) is None
    assert DeviceState.from_json(state.to_json()) == state


def test_a_reading_of_the_same_second_is_taken():
    state = beat(None, 0, 80)
    same = seen(state, alarm(T0, signal="test", attributes={"battery": 15}), site_id="lab-3",
                silence=DAY)
    assert same is not None and same.battery == 15.0
    assert seen(same, alarm(T0, signal="test", attributes={"battery": 15}), site_id="lab-3",
                silence=DAY) is None
