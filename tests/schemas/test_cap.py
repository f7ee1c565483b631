"""CAP 1.2 in and out, checked against the vendored OASIS schema."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import xmlschema

from schemas.cap import CAP_NS, CapError, alarm_from_cap, incident_to_cap
from schemas.incident import Incident, PlaybookRef
from schemas.site import Site
from tests.conftest import CHINA, T0

XSD = Path(__file__).resolve().parents[2] / "schemas" / "cap" / "CAP-v1.2.xsd"
NS = {"cap": CAP_NS}
SENDER = "whistle@localhost"

FIRE_119 = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>JN119-20230516-0042</identifier>
  <sender>119@jinan-fire.example.cn</sender>
  <sent>2023-05-16T14:03:30+08:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Restricted</scope>
  <restriction>高新区应急联动单位</restriction>
  <info>
    <language>zh-CN</language>
    <category>Fire</category>
    <event>火灾报警</event>
    <responseType>Execute</responseType>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Observed</certainty>
    <eventCode><valueName>whistle:kind</valueName><value>fire_report</value></eventCode>
    <onset>2023-05-16T14:02:50+08:00</onset>
    <senderName>济南市119指挥中心</senderName>
    <headline>银丰国际生物城3号楼冒烟</headline>
    <description>群众报警：3号楼二层实验室窗口冒出浓烟，有焦糊味 &amp; 异响。</description>
    <contact>0531-8811 9119</contact>
    <parameter><valueName>site_id</valueName><value>jyh-yinfeng-lab-3</value></parameter>
    <parameter><valueName>level</valueName><value>III</value></parameter>
    <parameter><valueName>floor</valueName><value>2</value></parameter>
    <area>
      <areaDesc>济南高新区巨野河街道 银丰国际生物城 3号楼</areaDesc>
      <circle>36.6701,117.3265 0.1</circle>
    </area>
  </info>
</alert>
"""

SITE = Site(site_id="jyh-yinfeng-lab-3", name="银丰国际生物城 3号实验室", type="laboratory",
            address="济南高新区巨野河街道 银丰国际生物城 3号楼", grid="JYH-G2",
            lat=36.6701, lon=117.3265)


def cap(**swap: str) -> bytes:
    """The 119 report with some text swapped: cap(**{"<old>": "<new>"})."""
    text = FIRE_119
    for old, new in swap.items():
        assert old in text, old
        text = text.replace(old, new)
    return text.encode()


def incident(**over) -> Incident:
    data = dict(incident_id="inc-20230516-3fa9c1", level="II", site_id=SITE.site_id,
                kind="fire_report", hazard="fire",
                playbook=PlaybookRef(id="lab-fire", version="3", content_hash="ab12"),
                alarm_ids=["cap:JN119-20230516-0042"], opened_at=T0, last_alarm_at=T0)
    data.update(over)
    return Incident(**data)


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def valid(schema: xmlschema.XMLSchema, xml: bytes) -> ET.Element:
    schema.validate(io.BytesIO(xml))  # raises with the path and reason when invalid
    return ET.fromstring(xml)


def find(root: ET.Element, path: str) -> str | None:
    return root.findtext("/".join(f"cap:{part}" for part in path.split("/")), namespaces=NS)


def params(root: ET.Element) -> dict[str, str]:
    return {p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
            for p in root.iterfind("cap:info/cap:parameter", NS)}


def test_vendored_xsd_is_the_cap_1_2_schema_with_its_notice(schema):
    assert schema.target_namespace == CAP_NS
    assert XSD.read_text(encoding="utf-8").startswith(
        "<!--  Copyright OASIS Open 2010 All Rights Reserved  -->")


def test_the_example_itself_is_valid_cap(schema):
    valid(schema, cap())


def test_a_119_fire_report_becomes_an_alarm():
    alarm = alarm_from_cap(cap(), now=T0)
    assert alarm.alarm_id == "cap:JN119-20230516-0042"
    assert (alarm.kind, alarm.signal, alarm.site_id, alarm.device_id) == (
        "fire_report", "alarm", "jyh-yinfeng-lab-3", None)
    assert alarm.occurred_at == datetime(2023, 5, 16, 14, 2, 50, tzinfo=CHINA)
    assert alarm.location.address == "济南高新区巨野河街道 银丰国际生物城 3号楼"
    assert (alarm.location.lat, alarm.location.lon) == (36.6701, 117.3265)
    assert alarm.description == (
        "银丰国际生物城3号楼冒烟\n群众报警：3号楼二层实验室窗口冒出浓烟，有焦糊味 & 异响。")
    assert (alarm.reporter.name, alarm.reporter.phone) == ("济南市119指挥中心", "0531-8811 9119")
    assert alarm.attributes == {
        "cap": {"sender": "119@jinan-fire.example.cn", "identifier": "JN119-20230516-0042",
                "msgType": "Alert", "severity": "Severe", "urgency": "Immediate",
                "certainty": "Observed", "event": "火灾报警"},
        "level": "III", "floor": "2"}


@pytest.mark.parametrize(("status", "msg_type", "signal", "drill"), [
    ("Actual", "Alert", "alarm", None), ("Actual", "Update", "alarm", None),
    ("Actual", "Cancel", "restore", None), ("Test", "Alert", "test", None),
    ("Test", "Cancel", "test", None), ("Exercise", "Alert", "alarm", True),
    ("Exercise", "Update", "alarm", True), ("Exercise", "Cancel", "restore", True),
])
def test_status_and_msg_type_give_the_signal(status, msg_type, signal, drill):
    xml = cap(**{"<status>Actual</status>": f"<status>{status}</status>",
                 "<msgType>Alert</msgType>": f"<msgType>{msg_type}</msgType>"})
    alarm = alarm_from_cap(xml, now=T0)
    assert (alarm.signal, alarm.drill) == (signal, drill)


@pytest.mark.parametrize(("swap", "expected"), [
    ({"<eventCode><valueName>whistle:kind</valueName><value>fire_report</value></eventCode>":
      "<eventCode><valueName>kind</valueName><value>smoke</value></eventCode>"}, "smoke"),
    ({"<eventCode><valueName>whistle:kind</valueName><value>fire_report</value></eventCode>": "",
      "<category>Fire</category>": "<category>CBRNE</category>"}, "hazmat"),
    ({"<eventCode><valueName>whistle:kind</valueName><value>fire_report</value></eventCode>": "",
      "<category>Fire</category>": "<category>Met</category>"}, "other"),
])
def test_kind_from_event_code_else_from_category(swap, expected):
    assert alarm_from_cap(cap(**swap), now=T0).kind == expected


def test_occurred_at_falls_back_to_effective_then_sent():
    no_onset = cap(**{"<onset>2023-05-16T14:02:50+08:00</onset>":
                      "<effective>2023-05-16T14:02:55+08:00</effective>"})
    assert alarm_from_cap(no_onset, now=T0).occurred_at.second == 55
    neither = cap(**{"<onset>2023-05-16T14:02:50+08:00</onset>": ""})
    assert alarm_from_cap(neither, now=T0).occurred_at.second == 30


def test_a_polygon_gives_its_mean_vertex_and_a_plain_contact_is_kept_aside():
    xml = cap(**{"<circle>36.6701,117.3265 0.1</circle>":
                 "<polygon>36.0,117.0 36.0,118.0 37.0,118.0 37.0,117.0 36.0,117.0</polygon>",
                 "<contact>0531-8811 9119</contact>": "<contact>值班室 王工</contact>",
                 "<value>III</value>": "<value>橙色</value>"})
    alarm = alarm_from_cap(xml, now=T0)
    assert (alarm.location.lat, alarm.location.lon) == (36.5, 117.5)
    assert alarm.reporter.phone is None and alarm.attributes["cap"]["contact"] == "值班室 王工"
    assert "level" not in alarm.attributes and alarm.attributes["cap"]["level"] == "橙色"


def test_a_long_identifier_is_hashed_with_its_sender():
    long_id = "JN119-" + "9" * 200
    alarm = alarm_from_cap(cap(**{"JN119-20230516-0042": long_id}), now=T0)
    assert alarm.alarm_id.startswith("cap:") and len(alarm.alarm_id) == 36
    other = alarm_from_cap(cap(**{"JN119-20230516-0042": long_id,
                                  "119@jinan-fire.example.cn": "12345@jinan.example.cn"}), now=T0)
    assert other.alarm_id != alarm.alarm_id


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&c;</identifier></alert>"""


@pytest.mark.parametrize(("xml", "element"), [
    pytest.param(b"119 says: fire!", "alert", id="not-xml"),
    pytest.param(cap(**{"cap:1.2": "cap:1.1"}), "alert", id="wrong-namespace"),
    pytest.param(b"<alert><identifier>x</identifier></alert>", "alert", id="no-namespace"),
    pytest.param(BOMB, "alert", id="dtd-entity-bomb"),
    pytest.param(cap(**{"<sent>2023-05-16T14:03:30+08:00</sent>": ""}), "alert/sent",
                 id="missing-sent"),
    pytest.param(cap(**{"14:03:30+08:00": "14:03:30"}), "alert/sent", id="sent-without-offset"),
    pytest.param(cap(**{"<status>Actual</status>": "<status>Draft</status>"}), "alert/status",
                 id="draft"),
    pytest.param(cap(**{"<msgType>Alert</msgType>": "<msgType>Ack</msgType>"}), "alert/msgType",
                 id="ack"),
    pytest.param(cap(**{"<category>Fire</category>": ""}), "alert/info/category",
                 id="missing-category"),
    pytest.param(cap(**{"<urgency>Immediate</urgency>": "<urgency>Now!</urgency>"}),
                 "alert/info/urgency", id="bad-urgency"),
    pytest.param(cap(**{"36.6701,117.3265 0.1": "36.6701;117.3265"}), "alert/info/area/circle",
                 id="bad-circle"),
    pytest.param(cap(**{"36.6701,117.3265 0.1": "96.6701,117.3265 0.1"}),
                 "alert/info/area/circle", id="circle-off-the-globe"),
    pytest.param(cap(**{"2023-05-16T14:02:50+08:00": "2023-05-16T18:02:50+08:00"}),
                 "alert/info/onset", id="onset-in-the-future"),
    pytest.param(cap(**{"<value>jyh-yinfeng-lab-3</value>": f"<value>{'x' * 129}</value>"}),
                 "alert/info/parameter", id="site-id-too-long"),
])
def test_refusals_name_the_element(xml, element):
    with pytest.raises(CapError) as exc:
        alarm_from_cap(xml, now=T0)
    assert exc.value.element == element
    assert str(exc.value) == f"{element}: {exc.value.msg}"
    assert exc.value.details() == [{"loc": element.split("/"), "msg": exc.value.msg}]


def test_an_open_first_revision_is_a_valid_cap_alert(schema):
    root = valid(schema, incident_to_cap(incident(), site=SITE, title="实验室火警",
                                         confirmed=True, sender=SENDER, sent=T0))
    assert find(root, "identifier") == "inc-20230516-3fa9c1-r1"
    assert (find(root, "sent"), find(root, "msgType"), find(root, "references")) == (
        "2023-05-16T14:03:07+08:00", "Alert", None)
    assert (find(root, "scope"), find(root, "restriction")) == (
        "Restricted", "subdistrict departments (街道各部门)")
    assert [find(root, f"info/{name}") for name in (
        "language", "category", "event", "responseType", "urgency", "severity", "certainty",
        "senderName", "headline")] == [
        "zh-CN", "Fire", "实验室火警", "Execute", "Immediate", "Severe", "Observed",
        "Whistle 街道应急协同", "实验室火警 — 银丰国际生物城 3号实验室"]
    assert params(root) == {"incident_id": "inc-20230516-3fa9c1", "site_id": SITE.site_id,
                            "level": "II", "status": "open", "playbook": "lab-fire@3",
                            "alarm_count": "1"}
    assert find(root, "info/area/circle") == "36.6701,117.3265 0"


def test_a_closed_update_references_the_first_message(schema):
    closed = incident(status="closed", revision=4, level="IV", hazard="gas",
                      closed_at=T0 + timedelta(hours=2), alarm_ids=["a1", "a2", "a3"])
    sent = T0 + timedelta(hours=2, microseconds=123456)
    root = valid(schema, incident_to_cap(closed, site=SITE, title="燃气泄漏", confirmed=False,
                                         sender=SENDER, sent=sent))
    assert find(root, "identifier") == "inc-20230516-3fa9c1-r4"
    assert find(root, "sent") == "2023-05-16T16:03:07+08:00"
    assert find(root, "msgType") == "Update"
    assert find(root, "references") == f"{SENDER},inc-20230516-3fa9c1-r1,2023-05-16T14:03:07+08:00"
    assert [find(root, f"info/{name}") for name in (
        "category", "responseType", "urgency", "severity", "certainty")] == [
        "CBRNE", "AllClear", "Past", "Minor", "Possible"]
    assert params(root)["status"] == "closed" and params(root)["alarm_count"] == "3"


def test_a_site_without_coordinates_has_an_area_without_circle(schema):
    site = Site.ad_hoc("jyh-village-7")
    root = valid(schema, incident_to_cap(incident(site_id=site.site_id, hazard="flood"),
                                         site=site, title="积水", confirmed=True, sender=SENDER,
                                         sent=T0))
    assert find(root, "info/area/areaDesc") == "jyh-village-7"
    assert find(root, "info/area/circle") is None
    assert find(root, "info/category") == "Other"


def test_round_trip_keeps_kind_site_and_text(schema):
    alarm = alarm_from_cap(cap(**{"银丰国际生物城3号楼冒烟": "3号楼冒烟 &lt;b&gt;&amp;&lt;/b&gt;"}),
                           now=T0)
    title = alarm.description.splitlines()[0]
    assert title == "3号楼冒烟 <b>&</b>"
    opened = incident(kind=alarm.kind, site_id=alarm.site_id, alarm_ids=[alarm.alarm_id],
                      level=alarm.attributes["level"], opened_at=alarm.occurred_at,
                      last_alarm_at=alarm.occurred_at)
    out = incident_to_cap(opened, site=SITE, title=title, confirmed=True, sender=SENDER,
                          sent=T0)
    valid(schema, out)
    back = alarm_from_cap(out, now=T0)
    assert (back.kind, back.site_id, back.signal) == ("fire_report", SITE.site_id, "alarm")
    assert back.description == f"{title} — {SITE.name}"
    assert back.attributes["level"] == "III"
    assert back.attributes["incident_id"] == opened.incident_id
    assert back.alarm_id == "cap:inc-20230516-3fa9c1-r1"


def test_script_text_survives_as_text_and_is_escaped_on_the_way_out(schema):
    script = "<script>alert(1)</script>"
    alarm = alarm_from_cap(cap(**{"群众报警：": "&lt;script&gt;alert(1)&lt;/script&gt;"}), now=T0)
    assert script in alarm.description
    out = incident_to_cap(incident(), site=SITE, title=script, confirmed=True, sender=SENDER,
                          sent=T0)
    assert b"<script>" not in out
    assert b"<event>&lt;script&gt;alert(1)&lt;/script&gt;</event>" in out
    valid(schema, out)
    assert alarm_from_cap(out, now=T0).attributes["cap"]["event"] == script


def test_output_is_utf8_with_cap_as_default_namespace():
    out = incident_to_cap(incident(), site=SITE, title="火警", confirmed=True, sender=SENDER,
                          sent=T0)
    assert out.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<alert xmlns=\"" +
                          CAP_NS.encode() + b'">')
    assert "银丰国际生物城".encode() in out


def test_a_naive_sent_time_is_refused():
    with pytest.raises(ValueError, match="offset"):
        incident_to_cap(incident(), site=SITE, title="火警", confirmed=True, sender=SENDER,
                        sent=T0.replace(tzinfo=None))


def test_control_characters_in_a_registry_name_leave_the_alert_well_formed(schema):
    """Ids cannot hold control characters (schemas.common), but a site's name and address are
    free text from a registry file: what XML 1.0 cannot hold becomes U+FFFD."""
    hostile = SITE.model_copy(update={"name": "实验室\x00\x1b[2J\x0b", "address": "巨野河\x01路"})
    out = incident_to_cap(incident(), site=hostile, title="火警\x08", confirmed=True,
                          sender=SENDER, sent=T0)
    root = valid(schema, out)
    assert find(root, "info/headline") == "火警\ufffd — 实验室\ufffd\ufffd[2J\ufffd"
    assert find(root, "info/area/areaDesc") == "巨野河\ufffd路"


def test_a_drill_goes_out_as_an_exercise(schema):
    root = valid(schema, incident_to_cap(incident(drill=True), site=SITE, title="演练",
                                         confirmed=True, sender=SENDER, sent=T0))
    assert find(root, "status") == "Exercise"
    assert find(valid(schema, incident_to_cap(incident(), site=SITE, title="火警",
                                              confirmed=True, sender=SENDER, sent=T0)),
                "status") == "Actual"
