"""CAP 1.2 (OASIS Common Alerting Protocol) in and out.

A CAP alert from a 119/12345 platform or a warning system becomes an Alarm. An Incident becomes a
CAP alert that any CAP-speaking department system can read. Both are pure functions, bytes to a
model and back. Parsing goes through defusedxml, so DTDs and entities are refused. Output is
built with ElementTree, so every text is escaped. How large a body may be is up to the caller.
The XSD the output is tested against is vendored in `schemas/cap/`.

Why this module is long: its first half is the mapping table, both ways, that an integrator
reads; reading and writing share the element names and the escaping rules, so they stay
together.

    >>> alarm = alarm_from_cap(body)            # a CapError names the element at fault
    >>> alarm.alarm_id, alarm.kind, alarm.signal
    ('cap:JN119-20230516-0042', 'fire_report', 'alarm')

Reading: a CAP alert becomes an Alarm. Only the first <info> and its first <area> are used.

| CAP element                             | Alarm field                                          |
|-----------------------------------------|------------------------------------------------------|
| identifier, sender                      | alarm_id: "cap:" + identifier when that fits in 128   |
|                                         | characters, else "cap:" + sha256("sender|identifier") |
|                                         | cut to 32 hex digits                                  |
| status + msgType                        | signal: Actual Alert/Update -> alarm, Actual Cancel  |
|                                         | -> restore, Exercise Alert/Update -> a drill's alarm  |
|                                         | (drill: true, 演练), Exercise Cancel -> the drill's |
|                                         | restore, Test -> test. System, Draft, Ack and Error   |
|                                         | are refused                                           |
| info/eventCode whistle:kind (or kind)   | kind; without it, from the first info/category:      |
|                                         | Fire fire_report, CBRNE hazmat, Infra power_trip,     |
|                                         | any other category other                              |
| info/onset, else info/effective, else   | occurred_at (CAP times carry an offset; one without  |
| sent                                    | an offset is refused)                                 |
| info/parameter site_id, device_id       | site_id, device_id (whistle:site_id, whistle:device_id |
|                                         | also work)                                            |
| info/area/areaDesc                      | location.address                                     |
| info/area/circle "lat,lon radius", else | location.lat, location.lon                           |
| the mean vertex of info/area/polygon    |                                                      |
| info/headline + "\\n" + info/description | description, cut to 4000 characters                  |
| info/senderName                         | reporter.name                                        |
| info/contact, if it looks like a phone  | reporter.phone (any other contact goes to            |
| number (digits, + - and spaces)         | attributes.cap.contact)                               |
| sender, identifier, msgType, severity,  | attributes.cap                                       |
| urgency, certainty, event               |                                                      |
| every other info/parameter              | attributes[valueName] (the first one of a name wins). |
|                                         | `level` counts only as I..IV. Any other value goes to |
|                                         | attributes.cap.level                                  |

Writing: an Incident becomes a CAP alert. Each revision is a new message.

| Incident (or argument)       | CAP element                                                   |
|------------------------------|---------------------------------------------------------------|
| incident_id, revision        | identifier "<incident_id>-r<revision>"; incidents             |
| sender, sent (arguments)     | sender, sent (with offset, whole seconds)                     |
| revision                     | msgType Alert for revision 1. Otherwise Update, and references |
|                              | "<sender>,<incident_id>-r1,<opened_at>" (opened_at stands for |
|                              | the first message's sent time)                                 |
|                              | status Actual (Exercise for a drill); scope Restricted;       |
|                              | restriction to the subdistrict departments                     |
| hazard                       | info/category: fire, electrical Fire; gas, hazmat CBRNE;      |
|                              | power, water Infra; structural Safety; anything else Other    |
| title (argument)             | info/event; info/headline "<title> — <site name>"             |
| status                       | info/responseType Execute, or AllClear once closed.            |
|                              | info/urgency Immediate, or Past once closed                    |
| level                        | info/severity: I Extreme, II Severe, III Moderate, IV Minor   |
| confirmed (argument)         | info/certainty Observed, else Possible                        |
| kind                         | info/eventCode whistle:kind                                   |
| incident_id, site_id, level, | info/parameter with those names. playbook is "<id>@<version>", |
| status, playbook, alarm_ids  | and alarm_count is how many alarms are attached                |
| site address (or name),      | info/area/areaDesc; info/area/circle "lat,lon 0" when the site |
| lat, lon                     | has coordinates                                                |
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any, Literal, overload

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydantic import ValidationError

from schemas.alarm import Alarm
from schemas.common import LEVELS, parse_timestamp
from schemas.incident import Incident
from schemas.site import Site

__all__ = ["CAP_CONTENT_TYPE", "CAP_NS", "CapError", "alarm_from_cap", "incident_to_cap"]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_CONTENT_TYPE = "application/cap+xml"

SENDER_NAME = "Whistle 街道应急协同"
RESTRICTION = "subdistrict departments (街道各部门)"

_CHOICES = {  # the CAP 1.2 code lists Whistle reads
    "status": ("Actual", "Exercise", "System", "Test", "Draft"),
    "msgType": ("Alert", "Update", "Cancel", "Ack", "Error"),
    "scope": ("Public", "Restricted", "Private"),
    "category": ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env",
                 "Transport", "Infra", "CBRNE", "Other"),
    "urgency": ("Immediate", "Expected", "Future", "Past", "Unknown"),
    "severity": ("Extreme", "Severe", "Moderate", "Minor", "Unknown"),
    "certainty": ("Observed", "Likely", "Possible", "Unlikely", "Unknown"),
}
_SIGNAL = {
    ("Actual", "Alert"): "alarm", ("Actual", "Update"): "alarm", ("Actual", "Cancel"): "restore",
    ("Exercise", "Alert"): "alarm", ("Exercise", "Update"): "alarm",
    ("Exercise", "Cancel"): "restore",
    **{("Test", kind): "test" for kind in ("Alert", "Update", "Cancel")},
}
_KIND_OF_CATEGORY = {"Fire": "fire_report", "CBRNE": "hazmat", "Infra": "power_trip"}
_CATEGORY_OF_HAZARD = {"fire": "Fire", "electrical": "Fire", "gas": "CBRNE", "hazmat": "CBRNE",
                       "power": "Infra", "water": "Infra", "structural": "Safety"}
_SEVERITY_OF_LEVEL = {"I": "Extreme", "II": "Severe", "III": "Moderate", "IV": "Minor"}
_KIND_CODES = ("whistle:kind", "kind")
_TAKEN = {"site_id", "device_id", "whistle:site_id", "whistle:device_id"}
_PHONE = re.compile(r"[0-9+\- ]*[0-9][0-9+\- ]*")
_CIRCLE = re.compile(r"(\S+)\s+\d+(?:\.\d+)?")
_MAX_ID = 128
_MAX_DESCRIPTION = 4000


class CapError(ValueError):
    """A CAP document Whistle cannot take. `element` is the path of the element at fault.

        >>> str(CapError("alert/sent", "required by CAP 1.2 but missing"))
        'alert/sent: required by CAP 1.2 but missing'
    """

    def __init__(self, element: str, msg: str) -> None:
        super().__init__(f"{element}: {msg}")
        self.element = element
        self.msg = msg

    def details(self) -> list[dict[str, Any]]:
        """The `details` of a 422 answer: [{"loc": ["alert", "sent"], "msg": "..."}]."""
        return [{"loc": self.element.split("/"), "msg": self.msg}]


def alarm_from_cap(xml: bytes, now: datetime | None = None) -> Alarm:
    """The Alarm a CAP 1.2 alert stands for. `now` is the validation clock, as in Alarm.

        >>> alarm_from_cap(body, now=received_at).site_id
        'jyh-yinfeng-lab-3'
    """
    alert = _parse(xml)
    identifier = _text(alert, "alert", "identifier", required=True)
    sender = _text(alert, "alert", "sender", required=True)
    sent = _time(alert, "alert", "sent", required=True)
    status = _text(alert, "alert", "status", required=True)
    msg_type = _text(alert, "alert", "msgType", required=True)
    _text(alert, "alert", "scope", required=True)
    if status in ("System", "Draft"):
        raise CapError("alert/status", f"{status} is not an alert to act on")
    if (status, msg_type) not in _SIGNAL:
        raise CapError("alert/msgType", f"{msg_type} answers another message; it is not an alarm")
    info = alert.find(_q("info"))
    if info is None:
        raise CapError("alert/info", "required: an alert without <info> says nothing to act on")
    at = "alert/info"
    category = _text(info, at, "category", required=True)
    event = _text(info, at, "event", required=True)
    cap = {"sender": sender, "identifier": identifier, "msgType": msg_type,
           "severity": _text(info, at, "severity", required=True),
           "urgency": _text(info, at, "urgency", required=True),
           "certainty": _text(info, at, "certainty", required=True), "event": event}

    origin: dict[tuple, str] = {("alarm_id",): "alert/identifier", ("signal",): "alert/msgType"}
    data: dict[str, Any] = {"alarm_id": _alarm_id(sender, identifier),
                            "signal": _SIGNAL[(status, msg_type)]}
    if status == "Exercise":  # 演练: the real pipeline, marked as a drill everywhere
        data["drill"] = True

    codes = _pairs(info, at, "eventCode")
    kind = next((value for name, value in codes if name in _KIND_CODES and value), None)
    data["kind"] = kind or _KIND_OF_CATEGORY.get(category, "other")
    origin[("kind",)] = f"{at}/eventCode" if kind else f"{at}/category"

    for name in ("onset", "effective"):
        if (when := _time(info, at, name)) is not None:
            data["occurred_at"], origin[("occurred_at",)] = when, f"{at}/{name}"
            break
    else:
        data["occurred_at"], origin[("occurred_at",)] = sent, "alert/sent"

    params = _pairs(info, at, "parameter")
    for field in ("site_id", "device_id"):
        value = next((v for n, v in params if n in (field, f"whistle:{field}")), None)
        if value is not None:
            data[field], origin[(field,)] = value, f"{at}/parameter"
    origin.setdefault(("site_id",), f"{at}/parameter")

    area = info.find(_q("area"))
    if area is not None:
        data["location"], where = _location(area, f"{at}/area")
        origin.update(where)

    text = "\n".join(filter(None, (_text(info, at, "headline"), _text(info, at, "description"))))
    if text:
        data["description"] = text[:_MAX_DESCRIPTION]
        origin[("description",)] = f"{at}/description"

    reporter: dict[str, str] = {}
    if sender_name := _text(info, at, "senderName"):
        reporter["name"], origin[("reporter", "name")] = sender_name, f"{at}/senderName"
    if contact := _text(info, at, "contact"):
        if len(contact) <= 40 and _PHONE.fullmatch(contact):
            reporter["phone"], origin[("reporter", "phone")] = contact, f"{at}/contact"
        else:
            cap["contact"] = contact
    if reporter:
        data["reporter"] = reporter

    attributes: dict[str, Any] = {"cap": cap}
    for name, value in params:
        if name in _TAKEN:
            continue
        if name == "level" and value not in LEVELS:
            cap.setdefault("level", value)
            continue
        attributes.setdefault(name, value)
    data["attributes"] = attributes
    return _validated(data, origin, now)


def incident_to_cap(incident: Incident, *, site: Site, title: str, confirmed: bool,
                    sender: str, sent: datetime) -> bytes:
    """One revision of an incident as a CAP 1.2 alert: UTF-8 XML, CAP as default namespace.

        >>> incident_to_cap(incident, site=site, title="火警", confirmed=True,
        ...                 sender="whistle@localhost", sent=now)[:38]
        b"<?xml version='1.0' encoding='UTF-8'?>"
    """
    first = f"{incident.incident_id}-r1"
    closed = incident.status == "closed"
    alert = ET.Element("alert", xmlns=CAP_NS)  # a literal xmlns: no global prefix registry
    _add(alert, "identifier", f"{incident.incident_id}-r{incident.revision}")
    _add(alert, "sender", sender)
    _add(alert, "sent", _cap_time(sent))
    _add(alert, "status", "Exercise" if incident.drill else "Actual")  # 演练 stays a drill
    _add(alert, "msgType", "Alert" if incident.revision == 1 else "Update")
    _add(alert, "scope", "Restricted")
    _add(alert, "restriction", RESTRICTION)
    if incident.revision != 1:
        _add(alert, "references", f"{sender},{first},{_cap_time(incident.opened_at)}")
    _add(alert, "incidents", incident.incident_id)

    info = ET.SubElement(alert, "info")
    _add(info, "language", "zh-CN")
    _add(info, "category", _CATEGORY_OF_HAZARD.get(incident.hazard, "Other"))
    _add(info, "event", title)
    _add(info, "responseType", "AllClear" if closed else "Execute")
    _add(info, "urgency", "Past" if closed else "Immediate")
    _add(info, "severity", _SEVERITY_OF_LEVEL[incident.level])
    _add(info, "certainty", "Observed" if confirmed else "Possible")
    _pair(info, "eventCode", "whistle:kind", incident.kind)
    _add(info, "senderName", SENDER_NAME)
    _add(info, "headline", f"{title} — {site.name}")
    for name, value in (("incident_id", incident.incident_id), ("site_id", incident.site_id),
                        ("level", incident.level), ("status", incident.status),
                        ("playbook", f"{incident.playbook.id}@{incident.playbook.version}"),
                        ("alarm_count", str(len(incident.alarm_ids)))):
        _pair(info, "parameter", name, value)

    area = ET.SubElement(info, "area")
    _add(area, "areaDesc", site.address or site.name)
    if site.lat is not None and site.lon is not None:
        _add(area, "circle", f"{site.lat},{site.lon} 0")
    ET.indent(alert)
    return ET.tostring(alert, encoding="UTF-8", xml_declaration=True)


def _parse(xml: bytes) -> ET.Element:
    try:
        root = SafeET.fromstring(xml, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise CapError("alert", f"DTDs and entities are refused ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise CapError("alert", f"not well-formed XML: {exc}") from None
    if root.tag != _q("alert"):
        namespace, _, name = root.tag.rpartition("}")
        namespace = namespace.lstrip("{") or "(none)"
        raise CapError("alert", f"root element is <{name}> in namespace {namespace}; "
                                f"expected <alert> in {CAP_NS}")
    return root


def _q(name: str) -> str:
    return f"{{{CAP_NS}}}{name}"


@overload
def _text(parent: ET.Element, at: str, name: str, *, required: Literal[True]) -> str: ...


@overload
def _text(parent: ET.Element, at: str, name: str, *, required: bool = False) -> str | None: ...


def _text(parent: ET.Element, at: str, name: str, *, required: bool = False) -> str | None:
    """The stripped text of the first child `name`, checked against its CAP code list."""
    child = parent.find(_q(name))
    text = (child.text or "").strip() if child is not None else ""
    if not text:
        if required:
            raise CapError(f"{at}/{name}", "required by CAP 1.2 but missing")
        return None
    choices = _CHOICES.get(name)
    if choices and text not in choices:
        raise CapError(f"{at}/{name}", f"{text!r} is not one of {', '.join(choices)}")
    return text


def _time(parent: ET.Element, at: str, name: str, *, required: bool = False) -> datetime | None:
    text = _text(parent, at, name, required=required)
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise CapError(f"{at}/{name}", f"{text!r}: {exc}") from None


def _pairs(info: ET.Element, at: str, name: str) -> list[tuple[str, str]]:
    """The (valueName, value) pairs of every <eventCode> or <parameter>, in document order."""
    pairs = []
    for child in info.findall(_q(name)):
        key = _text(child, f"{at}/{name}", "valueName", required=True)
        value = child.find(_q("value"))
        if value is None:
            raise CapError(f"{at}/{name}/value", "required by CAP 1.2 but missing")
        pairs.append((key, (value.text or "").strip()))
    return pairs


def _location(area: ET.Element, at: str) -> tuple[dict[str, Any], dict[tuple, str]]:
    """Address and point of one <area>, and which element each came from."""
    location: dict[str, Any] = {"address": _text(area, at, "areaDesc", required=True)}
    origin = {("location",): at, ("location", "address"): f"{at}/areaDesc"}
    if (circle := _text(area, at, "circle")) is not None:
        match = _CIRCLE.fullmatch(circle)
        if match is None:
            raise CapError(f"{at}/circle", f'{circle!r} is not "lat,lon radius", e.g. '
                                           '"36.6701,117.3265 0.5"')
        points, source = _points([match[1]], f"{at}/circle"), f"{at}/circle"
    elif (polygon := _text(area, at, "polygon")) is not None:
        points, source = _points(polygon.split(), f"{at}/polygon"), f"{at}/polygon"
        if len(points) > 1 and points[0] == points[-1]:
            points = points[:-1]  # CAP repeats the first vertex to close the ring
    else:
        return location, origin
    location["lat"] = sum(lat for lat, _ in points) / len(points)
    location["lon"] = sum(lon for _, lon in points) / len(points)
    origin.update({("location", "lat"): source, ("location", "lon"): source})
    return location, origin


def _points(pairs: list[str], at: str) -> list[tuple[float, float]]:
    points = []
    for pair in pairs:
        try:
            lat, lon = (float(part) for part in pair.split(","))
        except ValueError:
            raise CapError(at, f'{pair!r} is not a "lat,lon" pair in WGS 84 degrees') from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise CapError(at, f"{pair!r} lies outside -90..90 latitude, -180..180 longitude")
        points.append((lat, lon))
    return points


def _alarm_id(sender: str, identifier: str) -> str:
    readable = f"cap:{identifier}"
    if len(readable) <= _MAX_ID:
        return readable
    return "cap:" + hashlib.sha256(f"{sender}|{identifier}".encode()).hexdigest()[:32]


def _validated(data: dict[str, Any], origin: dict[tuple, str], now: datetime | None) -> Alarm:
    """The Alarm, or a CapError naming the CAP element the first bad field came from."""
    try:
        return Alarm.model_validate(data, context={"now": now} if now else None)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(str(part) for part in error["loc"])
        element = next((origin[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origin),
                       "alert")
        raise CapError(element, f"{error['msg']} (as Alarm.{'.'.join(loc)})") from None


def _cap_time(value: datetime) -> str:
    """CAP's dateTime: 2023-05-16T14:03:07+08:00, with an offset and no fraction."""
    if value.tzinfo is None:
        raise ValueError("a CAP time needs a UTC offset")
    return value.replace(microsecond=0).isoformat()


def _add(parent: ET.Element, tag: str, text: str) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = xml_text(text)
    return child


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    """`text` with what XML 1.0 cannot hold (control characters but tab, CR and LF) replaced
    by U+FFFD: ElementTree escapes markup but writes a NUL as it is, and the alert would not
    be well-formed (a site name from a registry file may hold one)."""
    return _NOT_XML.sub("\ufffd", text)


def _pair(parent: ET.Element, tag: str, name: str, value: str) -> None:
    pair = ET.SubElement(parent, tag)
    _add(pair, "valueName", name)
    _add(pair, "value", value)
