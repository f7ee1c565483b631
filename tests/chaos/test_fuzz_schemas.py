"""Chaos: hypothesis on the vocabulary and the playbook loader, without any I/O but temp files.

Arbitrary JSON values, and valid documents with one field mutated, go into the models that
guard the edges (`Alarm`, `TaskUpdate`, `IncidentUpdate`, `Escalation`, `Config`, `Task`);
arbitrary bytes into `schemas.codec.decode` and the CAP parser; arbitrary YAML into the
playbook loader. The only failures allowed are the documented ones, each naming where:
pydantic's ValidationError (every `loc` non-empty), `Rejected` (a reason), CapError (the
element) and PlaybookError (`file:line`). What validates must also survive `dump` and `decode`
unchanged, since that is how it travels. Text includes lone surrogates: `json.loads` makes
them from `"\\ud800"`. Inputs a generator will not reach (deep nesting, huge durations) are
listed by hand.

    .venv/bin/pytest -s tests/chaos/test_fuzz_schemas.py   # prints the `chaos fuzz-schemas:` line
"""

from __future__ import annotations

import copy
import csv
import io
import json
import tempfile
import unicodedata
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from pydantic import BaseModel, ValidationError

from agents.logic.correlation import incident_id_for
from playbooks.load import LIBRARY, PlaybookError, load_playbooks, parse_playbook
from schemas import (
    Alarm,
    Config,
    Escalation,
    IncidentUpdate,
    SiteEvent,
    Task,
    TaskUpdate,
    TimelineEntry,
    Triaged,
)
from schemas.cap import CAP_NS, CapError, alarm_from_cap
from schemas.codec import Rejected, decode, dump, error_details

NOW = datetime(2024, 3, 1, 13, 15, tzinfo=UTC)
AT = "2024-03-01T21:15:00+08:00"
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
EXAMPLES = {"n": 0}
# hypothesis keeps caches in ./.hypothesis; nothing of it belongs in the work tree
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "whistle-hypothesis")


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print(f"\nchaos fuzz-schemas: {EXAMPLES['n']} examples")


def counted() -> None:
    EXAMPLES["n"] += 1


# ---- values ------------------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=()), max_size=24)  # surrogates included
scalars = (st.none() | st.booleans() | st.integers() | text
           | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=16)


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


TASK = {"task_id": "inc-1.assess", "incident_id": "inc-1", "department": "police",
        "step": "assess", "action": "到场核实", "status": "acknowledged", "ack_due": AT,
        "complete_due": AT, "created_at": AT, "updated_at": AT, "revision": 2,
        "site_id": "lab-3", "level": "III", "unit": "巨野河派出所", "verification": True,
        "outcome": "confirmed", "by": "张警官", "note": "到场", "overdue": ["ack"],
        "escalations": ["e-1"], "notice_of": None, "notice_cause": None}
VALID: dict[type[BaseModel], dict] = {
    Alarm: {"alarm_id": "gw-1:0001", "kind": "smoke", "signal": "alarm", "site_id": "lab-3",
            "device_id": "smk-1", "occurred_at": AT, "description": "3号楼冒烟",
            "location": {"address": "巨野河街道", "lat": 36.68, "lon": 117.37},
            "reporter": {"name": "路人", "phone": "138 0000 0000"},
            "attributes": {"floor": 2, "zones": ["A", "B"]}},
    TaskUpdate: {"update_id": "u-1", "task_id": "inc-1.assess", "incident_id": "inc-1",
                 "action": "reject", "by": "值班员", "note": "不归我们管", "at": AT},
    IncidentUpdate: {"update_id": "u-2", "incident_id": "inc-1", "action": "set_level",
                     "level": "II", "by": "值班长", "note": "火势扩大", "at": AT,
                     "attempt": 0},
    Escalation: {"escalation_id": "inc-1.assess:ack:0:1", "incident_id": "inc-1",
                 "task_id": "inc-1.assess", "cause": "ack_overdue", "rule": 0, "n": 1,
                 "due": AT, "at": AT, "detail": {"notify": ["safety_office"]}},
    Config: {"tokens": [{"role": "department", "department": "police",
                         "token": "police-token-0123456789"},
                        {"role": "admin", "token_sha256": "a" * 64, "name": "值班长"}],
             "webhooks": {"police": {"url": "http://127.0.0.1:9/hook",
                                     "secret": "webhook-secret-0123", "timeout": "5s",
                                     "attempts": 3, "backoff": "1s", "max_backoff": "1m",
                                     "max_in_flight": 4}}},
    Task: TASK,
}
# a mutation of one of these fields must be refused naming that field (no cross-field rules)
NAMES_THE_FIELD = {Alarm, Escalation, Task}


def paths(value: Any, at: tuple = ()) -> list[tuple]:
    """Every place in a JSON document: keys and indexes down to the leaves."""
    found = [at] if at else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*at, i))
    return found


@st.composite
def mutated(draw, model: type[BaseModel]) -> tuple[dict, tuple, str]:
    """A valid document of `model` with one place replaced, removed, or given a stranger."""
    doc = copy.deepcopy(VALID[model])
    where = draw(st.sampled_from(paths(doc)))
    how = draw(st.sampled_from(["replace", "remove", "add"]))
    parent = doc
    for part in where[:-1]:
        parent = parent[part]
    last = where[-1]
    target = next((d for d in (parent[last], parent) if isinstance(d, dict)), None)
    if how == "add" and target is not None:
        target[draw(text.filter(lambda k: k not in target))] = draw(json_values)
    elif how == "remove":
        del parent[last]
    else:
        how, parent[last] = "replace", draw(json_values)
    return doc, where, how


def context(model: type[BaseModel]) -> dict | None:
    return {"now": NOW} if model is Alarm else None


def validated(model: type[BaseModel], value: Any) -> BaseModel | list[dict]:
    """The model, or the errors of its refusal, each naming a field (the value is a document,
    so there is always one to name). Any other exception fails the test."""
    try:
        return model.model_validate(value, context=context(model))
    except ValidationError as exc:
        errors = error_details(exc)  # what the API and the dead-letter reasons say
        if isinstance(value, dict):  # (a key that is not text at all is named "body")
            assert all(err["loc"] for err in errors), (
                f"{model.__name__}: an error names no field: {errors}")
        return errors


def written_and_read_back(model: type[BaseModel], value: BaseModel) -> None:
    """How a message travels: dump, then decode on the other side, unchanged."""
    back = decode(model, dump(value), context(model))
    assert not isinstance(back, Rejected), f"{model.__name__}: {back.reason}"
    assert back == value


# ---- the models --------------------------------------------------------------------------

MODELS = list(VALID)


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
@FUZZ
@given(value=json_values)
def test_any_json_value_is_a_model_or_a_refusal_naming_the_field(model, value):
    counted()
    validated(model, value)


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
@FUZZ
@given(data=st.data())
def test_a_valid_document_with_one_field_mutated_is_refused_naming_it_or_travels(model, data):
    counted()
    doc, where, how = data.draw(mutated(model))
    found = validated(model, doc)
    if isinstance(found, list):
        if model in NAMES_THE_FIELD and how != "add":
            assert any(tuple(err["loc"][:1]) == where[:1] for err in found), (
                f"{model.__name__}: {how} {where} refused without naming {where[0]}: {found}")
    elif model is not Config:  # a Config's secrets are not written back
        written_and_read_back(model, found)


@pytest.mark.parametrize("model", [Alarm, TaskUpdate], ids=["Alarm", "TaskUpdate"])
def test_a_field_named_by_a_lone_surrogate_is_refused_naming_it(model):
    """`{"\\ud800": 1}` in a body is refused with `loc: []` (422 naming nothing)."""
    counted()
    validated(model, {**VALID[model], "\ud800": 1})


HOSTILE_VALUES = [  # (model, field, value) that a generator does not reach
    (Alarm, "attributes", {"note": "\ud800"}),
    (Alarm, "attributes", {"\udcff": 1}),
    (Alarm, "attributes", {"deep": nested(300)}),
    (Escalation, "detail", {"why": "\udfff"}),
]


@pytest.mark.parametrize("model,name,value", HOSTILE_VALUES,
                         ids=[f"{m.__name__}.{n}-{i}" for i, (m, n, _) in
                              enumerate(HOSTILE_VALUES)])
def test_what_validates_can_be_written_and_read_back(model, name, value):
    """A value the model takes but cannot write makes the API answer 503 ("the broker did not
    acknowledge", Retry-After: 1) for what is the client's mistake: the gateway retries for ever."""
    counted()
    found = validated(model, {**VALID[model], name: value})
    if not isinstance(found, list):
        written_and_read_back(model, found)


@pytest.mark.parametrize("value", ["9999999999999d", "P9999999999D", 1e300,
                                   "99999999999999999999s"])
def test_a_duration_too_long_for_a_timedelta_is_refused_naming_the_field(value):
    counted()
    doc = copy.deepcopy(VALID[Config])
    doc["webhooks"]["police"]["timeout"] = value
    with pytest.raises(ValidationError) as refused:
        Config.model_validate(doc)
    assert refused.value.errors()[0]["loc"] == ("webhooks", "police", "timeout")


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "0001-01-01T07:59:59Z"])
def test_an_alarm_that_validates_can_be_named_by_its_local_date(when):
    """Triage names an incident by the local date of its opening alarm (`incident_id_for`,
    pure); an alarm it cannot date is accepted with 202, then dead-lettered by triage."""
    counted()
    alarm = validated(Alarm, {**VALID[Alarm], "occurred_at": when})
    if not isinstance(alarm, list):
        assert incident_id_for("lab-3", "fire", alarm).startswith("inc-")


# ---- the codec ---------------------------------------------------------------------------

TOPIC_MODELS = [Alarm, TaskUpdate, IncidentUpdate, Escalation, Task, TimelineEntry, SiteEvent,
                Triaged]
raw_values = (st.binary(max_size=200)
              | text.map(lambda t: t.encode("utf-8", "surrogatepass"))
              | json_values.map(lambda v: json.dumps(v).encode()))


def decoded(model: type[BaseModel], raw: bytes | None) -> None:
    out = decode(model, raw, context(model))
    if isinstance(out, Rejected):
        assert out.reason.strip(), "a Rejected without a reason"
        prefix = f"{model.__name__} invalid: "
        if out.reason.startswith(prefix):
            assert out.reason[len(prefix):].strip(), out.reason
    else:
        assert isinstance(out, model)


@pytest.mark.parametrize("model", TOPIC_MODELS, ids=[m.__name__ for m in TOPIC_MODELS])
@FUZZ
@given(raw=raw_values)
def test_decode_takes_any_bytes_and_answers_a_model_or_a_reason(model, raw):
    counted()
    decoded(model, raw)


@pytest.mark.parametrize("raw", [None, b"", b"\xef\xbb\xbf{}", b"[" * 100_000,
                                 b'{"a": ' * 5000 + b"1" + b"}" * 5000],
                         ids=["tombstone", "empty", "BOM", "100,000 arrays", "5,000 objects"])
def test_decode_takes_what_a_generator_does_not_make(raw):
    """`decode` promises a Rejected for whatever does not decode; json's RecursionError is
    not a ValueError (the stages catch it, but the webhook sender then reads the record again
    and again)."""
    counted()
    decoded(Alarm, raw)


# ---- CAP ---------------------------------------------------------------------------------

CAP = f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{CAP_NS}">
  <identifier>JN119-0042</identifier><sender>119@jinan.example.cn</sender>
  <sent>2024-03-01T21:15:30+08:00</sent><status>Actual</status><msgType>Alert</msgType>
  <scope>Restricted</scope>
  <info>
    <category>Fire</category><event>火灾报警</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty>
    <eventCode><valueName>whistle:kind</valueName><value>fire_report</value></eventCode>
    <onset>2024-03-01T21:15:00+08:00</onset><senderName>119指挥中心</senderName>
    <headline>3号楼冒烟</headline><contact>0531-8811 9119</contact>
    <parameter><valueName>site_id</valueName><value>lab-3</value></parameter>
    <area><areaDesc>巨野河街道 3号楼</areaDesc><circle>36.6701,117.3265 0.1</circle></area>
  </info>
</alert>""".encode()
_CAP_ELEMENTS = len(list(ET.fromstring(CAP).iter()))
xml_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)


def cap_checked(body: bytes) -> None:
    try:
        alarm = alarm_from_cap(body, NOW)
    except CapError as exc:
        loc = exc.details()[0]["loc"]
        assert loc and all(loc) and loc[0] == "alert", f"{loc}: {exc}"
    else:
        assert isinstance(alarm, Alarm)


@st.composite
def near_cap(draw) -> bytes:
    root = ET.fromstring(CAP)
    parents = {child: parent for parent in root.iter() for child in parent}
    element = list(root.iter())[draw(st.integers(0, _CAP_ELEMENTS - 1))]
    how = draw(st.sampled_from(["text", "remove", "twice"]))
    if how == "text" or element is root:
        element.text = draw(xml_text)
    elif how == "remove":
        parents[element].remove(element)
    else:
        parents[element].insert(0, copy.deepcopy(element))
    return ET.tostring(root, encoding="utf-8")


def test_the_cap_template_is_valid():
    assert alarm_from_cap(CAP, NOW).site_id == "lab-3"


@FUZZ
@given(body=st.binary(max_size=300) | xml_text.map(str.encode) | near_cap())
def test_cap_takes_any_bytes_and_answers_an_alarm_or_the_element_at_fault(body):
    counted()
    cap_checked(body)


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&b;</alert>',
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&x;</alert>',
    b"<alert>" * 50_000,
    CAP.replace(b"36.6701,117.3265 0.1", b"nan,inf 0"),
    CAP.replace(b"2024-03-01T21:15:00+08:00", b"0001-01-01T00:00:00+14:00"),
], ids=["entities", "external entity", "50,000 open elements", "nan circle", "year 1"])
def test_cap_refuses_what_a_generator_does_not_make(body):
    counted()
    cap_checked(body)


# ---- playbooks ---------------------------------------------------------------------------

FALLBACK = (LIBRARY / "fallback.yaml").read_text(encoding="utf-8")
SOURCE = "fuzz.yaml"


def playbook_checked(text_: str) -> None:
    try:
        parse_playbook(text_, SOURCE)
    except PlaybookError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.file == SOURCE and p.line >= 1 and p.message, str(p)


@st.composite
def near_playbook(draw) -> str:
    doc = yaml.safe_load(FALLBACK)
    where = draw(st.sampled_from(paths(doc)))
    parent = doc
    for part in where[:-1]:
        parent = parent[part]
    if draw(st.booleans()):
        parent[where[-1]] = draw(json_values)
    else:
        del parent[where[-1]]
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        reject()


def test_the_playbook_template_is_valid():
    assert parse_playbook(FALLBACK, SOURCE).playbook.fallback


@FUZZ
@given(text_=text | near_playbook()
       | st.lists(st.sampled_from(FALLBACK.splitlines()) | text).map("\n".join))
def test_any_yaml_is_a_playbook_or_problems_with_file_and_line(text_):
    counted()
    playbook_checked(text_)


@pytest.mark.parametrize("text_", [
    "steps: " + "[" * 3000 + "]" * 3000,
    "title: " + "{a: " * 3000 + "1" + "}" * 3000,
    FALLBACK.replace("ack_within: 5m", "ack_within: 9999999999999d"),
    FALLBACK.replace("fallback: true", "fallback: true\nmatch: {timezone: Asia}"),
    FALLBACK.replace("fallback: true", "fallback: true\nmatch: {timezone: " + "x" * 300 + "}"),
], ids=["3,000 nested lists", "3,000 nested maps", "a duration past timedelta",
        "time zone that is a directory", "time zone of 300 letters"])
def test_the_loader_refuses_what_a_generator_does_not_make(text_):
    """Anything but a PlaybookError escapes `whistle playbooks check` as a traceback, makes
    `POST /api/v1/playbooks/reload` a 500 and the playbook watcher a crash."""
    counted()
    playbook_checked(text_)


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/apply:subprocess.check_call [['touch', '{marker}']]",
    "!!python/object/new:os.system ['touch {marker}']",
    "!!python/name:os.system",
])
def test_a_python_tag_in_a_playbook_is_refused_not_run(tmp_path, tag):
    counted()
    marker = tmp_path / "ran"
    body = FALLBACK.replace("title: 兜底处置预案", "title: " + tag.format(marker=marker))
    (tmp_path / "fallback.yaml").write_text(body, encoding="utf-8")
    with pytest.raises(PlaybookError) as refused:
        load_playbooks(tmp_path)
    assert not marker.exists(), "the YAML tag was executed"
    problem = refused.value.problems[0]
    assert problem.file.endswith("fallback.yaml") and problem.line == 4, str(problem)


@FUZZ
@given(files=st.lists(st.binary(max_size=120) | text.map(
    lambda t: t.encode("utf-8", "surrogatepass")), min_size=1, max_size=3))
def test_a_directory_of_arbitrary_files_is_a_set_or_problems_with_file_and_line(files):
    counted()
    with tempfile.TemporaryDirectory() as tmp:
        for i, content in enumerate(files):
            Path(tmp, f"p{i}.yaml").write_bytes(content)
        try:
            load_playbooks(tmp)
        except PlaybookError as exc:
            assert exc.problems and all(p.file and p.line >= 0 and p.message
                                        for p in exc.problems)


# ---- identifiers: what travels into keys, CSV and XML --------------------------------------

ID_FIELDS = ("alarm_id", "site_id", "device_id", "kind")
ALARM = {"alarm_id": "gw-1:0001", "kind": "smoke", "site_id": "jyh-yinfeng-lab-3",
         "device_id": "smk-1", "occurred_at": AT}


@pytest.mark.parametrize("field", ID_FIELDS)
@settings(max_examples=600, deadline=None, database=None)
@given(value=st.text(st.characters(exclude_categories=()), min_size=1, max_size=40)
       | st.sampled_from(["a/b\x00c", "x\r\ny", "\x1b[31mred", "tab\there", "del\x7f",
                          "c1\x85", "\ud800", "消防\u2028行"]))
def test_an_id_with_a_control_character_is_refused_naming_it_and_any_other_is_safe(field,
                                                                                   value):
    """Refused with a 422-style error naming the field when it holds a control character (or a
    lone surrogate, which pydantic refuses itself); otherwise it round-trips through CAP's XML
    (well-formed) and a CSV cell."""
    from agents.report.render import csv_cell
    from schemas.cap import xml_text

    counted()
    bad = [c for c in value if unicodedata.category(c) in ("Cc", "Cs")]
    try:
        alarm = Alarm.model_validate({**ALARM, field: value}, context={"now": NOW})
    except ValidationError as exc:
        errors = exc.errors()
        assert errors and all(e["loc"] and e["loc"][0] == field for e in errors), errors
        kinds = {unicodedata.category(c) for c in value}
        if "Cc" in kinds and "Cs" not in kinds:
            assert any("control characters" in e["msg"] for e in errors), errors
        return
    assert not bad, f"{value!r} was accepted"
    held = getattr(alarm, field)
    element = ET.Element("value")
    element.text = xml_text(held)
    parsed = ET.fromstring(ET.tostring(element, encoding="UTF-8", xml_declaration=True))
    assert parsed.text == xml_text(held)
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerow([csv_cell(held), "next"])
    assert next(csv.reader(io.StringIO(out.getvalue(), newline=""))) == [csv_cell(held), "next"]
