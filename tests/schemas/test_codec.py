from datetime import timedelta

from schemas import Alarm, DeadLetter
from schemas.codec import Rejected, decode, dump
from tests.conftest import T0, alarm_data


def test_decode_names_why_a_value_was_refused():
    assert decode(Alarm, None) == Rejected("empty value (a tombstone?)")
    assert decode(Alarm, b"\xff").reason.startswith("not UTF-8")
    assert decode(Alarm, b"{").reason.startswith("not JSON")
    bad = decode(Alarm, b'{"alarm_id": "a", "kind": "smoke", "site_id": "s"}')
    assert bad == Rejected("Alarm invalid: occurred_at: Field required")


def test_decode_checks_the_future_against_the_given_clock():
    raw = dump(Alarm.model_validate(alarm_data(), context={"now": T0}))
    assert isinstance(decode(Alarm, raw, {"now": T0}), Alarm)
    assert isinstance(decode(Alarm, raw, {"now": T0 - timedelta(hours=1)}), Rejected)


def test_dump_keeps_chinese_readable_and_drops_empty_optionals():
    raw = dump(Alarm.model_validate(alarm_data(description="实验室烟感"), context={"now": T0}))
    assert "实验室烟感".encode() in raw and b"reporter" not in raw


def test_dead_letters_keep_the_original_bytes():
    letter = DeadLetter.of(b"\x00\xffjunk", b"site-1", "not UTF-8", "whistle.alarms", 2, 40, T0)
    assert letter.raw() == b"\x00\xffjunk" and letter.value_text is None
    text = DeadLetter.of(b'{"a": 1}', None, "why", "t", None, None, T0)
    assert text.value_text == '{"a": 1}' and text.key_base64 is None
