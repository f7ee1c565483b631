from datetime import timedelta

import pytest
from pydantic import ValidationError

from schemas import Alarm
from tests.conftest import T0, alarm_data


def locs(exc: ValidationError) -> list[tuple]:
    return [tuple(e["loc"]) for e in exc.errors()]


def test_minimal_alarm_gets_contract_defaults():
    alarm = Alarm.model_validate(alarm_data(signal=None, device_id=None), context={"now": T0})
    assert alarm.signal == "alarm"
    assert alarm.occurred_at == T0
    assert alarm.attributes == {}
    assert alarm.known_kind


def test_unknown_kind_is_accepted_not_refused():
    alarm = Alarm.model_validate(alarm_data(kind="alien_slime"), context={"now": T0})
    assert alarm.kind == "alien_slime"
    assert not alarm.known_kind


@pytest.mark.parametrize("field", ["alarm_id", "kind", "occurred_at"])
def test_required_fields_are_named(field):
    data = alarm_data()
    del data[field]
    with pytest.raises(ValidationError) as exc:
        Alarm.model_validate(data, context={"now": T0})
    assert (field,) in locs(exc.value)


def test_site_id_required_unless_location():
    with pytest.raises(ValidationError) as exc:
        Alarm.model_validate(alarm_data(site_id=None, device_id=None), context={"now": T0})
    assert locs(exc.value) == [("site_id",)]
    assert "unless location" in exc.value.errors()[0]["msg"]
    located = Alarm.model_validate(alarm_data(site_id=None, location={"address": "科荟路 12号"}),
                                   context={"now": T0})
    assert located.site_id is None and located.location.address == "科荟路 12号"
    by_device = Alarm.model_validate(alarm_data(site_id=None), context={"now": T0})
    assert by_device.device_id == "smk-1"  # its site comes from the device registry


def test_location_needs_address_or_coordinates():
    with pytest.raises(ValidationError) as exc:
        Alarm.model_validate(alarm_data(site_id=None, location={"lat": 36.6}), context={"now": T0})
    assert exc.value.errors()[0]["loc"][0] == "location"


@pytest.mark.parametrize("stamp", ["2023-05-16T14:03:07", "2023-05-16", "yesterday", 1684217000,
                                   "2023-13-16T14:03:07+08:00", "2023-05-16T25:03:07Z"])
def test_timestamps_must_be_rfc3339_with_offset(stamp):
    with pytest.raises(ValidationError) as exc:
        Alarm.model_validate(alarm_data(occurred_at=stamp), context={"now": T0})
    assert locs(exc.value) == [("occurred_at",)]


@pytest.mark.parametrize("stamp", ["2023-05-16T06:03:07Z", "2023-05-16T14:03:07.123456789+08:00",
                                   "2023-05-16 14:03:07+08:00"])
def test_rfc3339_variants_parse_to_the_same_instant(stamp):
    alarm = Alarm.model_validate(alarm_data(occurred_at=stamp), context={"now": T0})
    assert abs(alarm.occurred_at - T0) < timedelta(seconds=1)


@pytest.mark.parametrize(("stamp", "micro"), [("2023-05-16T14:03:07.123456789+08:00", 123456),
                                              ("2023-05-16T06:03:07.1234567z", 123456),
                                              ("2023-05-16T06:03:07.5Z", 500000),
                                              ("2023-05-16T06:03:07Z", 0)])
def test_fractions_keep_their_microseconds_and_drop_what_is_finer(stamp, micro):
    occurred = Alarm.model_validate(alarm_data(occurred_at=stamp),
                                    context={"now": T0}).occurred_at
    assert (occurred.second, occurred.microsecond) == (7, micro)


def test_future_limit_is_five_minutes_by_the_given_clock():
    ok = Alarm.model_validate(alarm_data(occurred_at=(T0 + timedelta(minutes=5)).isoformat()),
                              context={"now": T0})
    assert ok.occurred_at > T0
    with pytest.raises(ValidationError) as exc:
        too_late = T0 + timedelta(minutes=5, seconds=1)
        Alarm.model_validate(alarm_data(occurred_at=too_late.isoformat()), context={"now": T0})
    assert locs(exc.value) == [("occurred_at",)]
    assert "future" in exc.value.errors()[0]["msg"]


def test_limits_and_unknown_fields_are_refused_by_name():
    with pytest.raises(ValidationError) as exc:
        Alarm.model_validate(alarm_data(description="火" * 4001, colour="red", signal="panic"),
                             context={"now": T0})
    assert set(locs(exc.value)) == {("description",), ("colour",), ("signal",)}


def test_chinese_text_round_trips_as_utf8():
    alarm = Alarm.model_validate(alarm_data(description="实验室烟感报警"), context={"now": T0})
    raw = alarm.model_dump_json().encode("utf-8")
    assert "实验室烟感报警".encode() in raw
    assert Alarm.model_validate_json(raw, context={"now": T0}) == alarm
