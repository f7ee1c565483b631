"""The HTTP API described as OpenAPI 3.1: `GET /api/v1/openapi.json` (public, like the probes).

The document is built from the schemas' pydantic models, so it cannot drift from what the
views validate; `document` is a pure function of the departments and the version:

    >>> doc = document(["police", "safety_office"], "0.1.0")
    >>> doc["paths"]["/api/v1/tasks/{task_id}/{action}"]["post"]["parameters"][1]["schema"]
    {'type': 'string', 'enum': ['ack', 'start', 'complete', 'reject']}

Every refusal is the contract's `Error`: `{"error": str, "details": [{"loc": [...], "msg":
str}]}`. `tests/chaos/test_fuzz_api.py` runs schemathesis against the real stack with it.

Why this module is long: it is one table, a path per entry with its answers and an example
body; splitting it would only scatter what a reader compares side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from pydantic.json_schema import models_json_schema

from agents.report.handover_report import FORMATS as HANDOVER_FORMATS
from schemas import (
    INCIDENT_STATUSES,
    LEVELS,
    TASK_ACTIONS,
    TASK_STATUSES,
    AddTaskRequest,
    Alarm,
    CancelTaskRequest,
    CloseRequest,
    ContainRequest,
    Device,
    DrillRequest,
    Incident,
    LevelRequest,
    OpenIncidentRequest,
    ReassignRequest,
    Site,
    Task,
    TaskUpdateRequest,
    Timeline,
    WhistleRequest,
)
from schemas.campaign import (
    CAMPAIGN_STATUSES,
    Campaign,
    CampaignPlaybook,
    CampaignProgress,
    CampaignSite,
    CampaignSummary,
    EndCampaignRequest,
    FindingRequest,
    StartCampaignRequest,
)
from schemas.cap import CAP_CONTENT_TYPE, CAP_NS
from schemas.codec import json_bytes
from schemas.silence import SILENCE_STATES, ExpireRequest, SilenceAnswer, SilenceRequest
from streams.http.campaigns import REPORT_FORMATS, SITE_STATES
from streams.http.devices import DEVICE_STATUSES
from streams.http.listing import MAX_LIMIT
from streams.http.views import JSON, ApiView
from streams.reports import FORMATS

__all__ = ["PATH", "OpenApi", "body", "document"]

PATH = "/api/v1/openapi.json"
REF = "#/components/schemas/{model}"

_REQUESTS = (Alarm, TaskUpdateRequest, LevelRequest, CloseRequest, ContainRequest,
             OpenIncidentRequest, DrillRequest, AddTaskRequest, ReassignRequest, CancelTaskRequest,
             WhistleRequest, SilenceRequest, ExpireRequest, StartCampaignRequest, FindingRequest,
             EndCampaignRequest)
_ANSWERS = (Incident, Task, Timeline, Site, Device, SilenceAnswer, Campaign, CampaignProgress,
            CampaignSite, CampaignSummary, CampaignPlaybook)

_REFUSALS = {
    400: "the body is not JSON (or the Last-Event-ID is malformed)",
    401: "no token, or an unknown one",
    403: "the token does not carry the right",
    404: "unknown id (or action)",
    409: "an illegal transition, or the change lost a race",
    413: "the body is over the size limit",
    415: "the Content-Type is not one this operation takes",
    422: "a field or parameter is invalid; `details[].loc` names it",
    429: "over the token's (or the address's) request rate",
    503: "the broker did not take the message; retry",
    504: "the broker took the update but the worker did not apply it in time",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "schema": {"type": "string", "pattern": r"^\d+$"}}}
_HEADERS = {401: {"WWW-Authenticate": {"schema": {"type": "string"}}}, 429: _RETRY_AFTER,
            503: _RETRY_AFTER}

_GUARDED = (401, 403, 429)       # every operation that needs a token
_BODY = (400, 413, 415, 422)     # every operation that reads a JSON body
_SUBMIT = (404, 409, 503, 504)   # updates that go through a topic and wait for the agent


def _ref(name: str) -> dict:
    return {"$ref": REF.format(model=name)}


def _array(items: dict, **kw: Any) -> dict:
    return {"type": "array", "items": items, **kw}


def _obj(required: Sequence[str], **properties: dict) -> dict:
    return {"type": "object", "required": list(required), "properties": properties}


_ALARM = {"alarm_id": "gw-1:0001", "kind": "smoke", "site_id": "jyh-yinfeng-lab-3",
          "device_id": "smk-3-01", "occurred_at": "2023-05-16T14:03:07+08:00"}
_TEXT = {"type": "string"}
_CURSOR = {"type": ["string", "null"],
           "description": "with limit: the cursor of the next page, null on the last"}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_ERROR = _obj(
    ("error", "details"), error=_TEXT,
    details=_array(_obj(("loc", "msg"), loc=_array({"type": ["string", "integer"]}, minItems=1),
                        msg=_TEXT)))
_PLAYBOOKS = _obj(("digest", "directory", "playbooks"), digest=_TEXT, directory=_TEXT,
                  playbooks=_array(_obj(("id", "version", "content_hash", "title", "fallback",
                                         "source"), id=_TEXT, version=_TEXT, content_hash=_TEXT,
                                        title=_TEXT, fallback={"type": "boolean"},
                                        source=_TEXT)))
_CHECKS = ("topics", "consuming", "registry", "broker", "brokers", "writes")
_SECTIONS = ("opened", "closed", "escalated", "still_open", "overdue", "overdue_by_department")
_INT = {"type": "integer"}
_READINGS = {
    "battery": {"type": ["number", "null"], "description": "percent, the newest reading"},
    "signal": {"type": ["number", "null"], "description": "RSSI in dBm, the newest reading"},
    "status": _array({"type": "string", "enum": list(DEVICE_STATUSES)})}
_EXTRA = {
    "Error": _ERROR,
    "Accepted": _obj(("accepted",), accepted=_array({"type": "string"})),
    "Incidents": _obj(("incidents",), incidents=_array(_ref("Incident")), next_cursor=_CURSOR),
    "Tasks": _obj(("tasks",), tasks=_array(_ref("Task")), next_cursor=_CURSOR),
    "SiteState": _obj(("site", "open_incidents", "false_alarms", "flagged"),
                      site={"anyOf": [_ref("Site"), {"type": "null"}]},
                      open_incidents=_array(_TEXT),
                      false_alarms={"type": "object", "additionalProperties": {"type": "integer"}},
                      flagged=_NULLABLE_TEXT),
    "DeviceState": _obj(("device", "site_id", "grid", "last_seen", "last_signal", "battery",
                         "signal", "status", "offline_due", "reported_offline", "false_alarms"),
                        device={"anyOf": [_ref("Device"), {"type": "null"}]},
                        site_id=_NULLABLE_TEXT, grid=_TEXT, last_seen=_NULLABLE_TEXT,
                        last_signal=_NULLABLE_TEXT, **_READINGS, offline_due=_NULLABLE_TEXT,
                        reported_offline={"type": "boolean"}, false_alarms={"type": "integer"}),
    "Devices": _obj(("devices",), devices=_array(_obj(
        ("device_id", "site_id", "grid", "kind", "name", "registered", "last_seen",
         "last_signal", "battery", "signal", "status"), device_id=_TEXT, site_id=_TEXT,
        grid=_TEXT, kind=_NULLABLE_TEXT, name=_TEXT, registered={"type": "boolean"},
        last_seen=_NULLABLE_TEXT, last_signal=_NULLABLE_TEXT, **_READINGS)),
        next_cursor=_CURSOR),
    "Playbooks": _PLAYBOOKS,
    "Departments": _obj(("departments",), departments=_array(_obj(
        ("id", "name", "name_en", "tier", "report_within", "report_within_seconds", "lead"),
        id=_TEXT, name=_TEXT, name_en=_TEXT, tier={"type": "string", "enum": ["街道", "区"]},
        report_within=_TEXT, report_within_seconds=_INT, lead={"type": "boolean"}))),
    "Sites": _obj(("sites", "grids"), sites=_array(_obj(
        ("site_id", "name", "type", "address", "grid", "lat", "lon"), site_id=_TEXT, name=_TEXT,
        type=_TEXT, address=_TEXT, grid=_TEXT, lat={"type": ["number", "null"]},
        lon={"type": ["number", "null"]})), grids=_array(_obj(
            ("id", "name", "outline"), id=_TEXT, name=_TEXT,
            outline=_array(_array({"type": "number"}, minItems=2, maxItems=2), minItems=3)))),
    "Summoned": _obj(("incident", "tasks"), incident=_ref("Incident"),
                     tasks=_array(_ref("Task"))),
    "Reported": _obj(("alarm_id", "incident_id"), alarm_id=_TEXT, incident_id={"type": "null"}),
    "Handover": _obj(("since", "until", "now", "counts", *_SECTIONS), since=_TEXT, until=_TEXT,
                     now=_TEXT, counts={"type": "object", "additionalProperties": _INT},
                     **{name: _array({"type": "object"}) for name in _SECTIONS}),
    "Silences": _obj(("silences",), silences=_array(_ref("SilenceAnswer"))),
    "CampaignAnswer": _obj(("campaign", "progress"), campaign=_ref("Campaign"),
                           progress=_ref("CampaignProgress")),
    "Campaigns": _obj(("campaigns",), campaigns=_array(_ref("CampaignSummary"))),
    "CampaignSites": _obj(("sites",), sites=_array(_ref("CampaignSite")), next_cursor=_CURSOR),
    "CampaignPlaybooks": _obj(("playbooks",), playbooks=_array(_obj(
        ("id", "version", "title", "description", "targets", "steps", "content_hash", "sites"),
        id=_TEXT, version=_TEXT, title=_TEXT, description=_TEXT, targets=_ref("CampaignTargets"),
        steps=_array(_ref("CampaignStep")), content_hash=_TEXT,
        sites={"type": "integer", "description": "registered sites it would cover now"}))),
    "Readiness": _obj(("ready", *_CHECKS, "why"),
                      **{name: {"type": "boolean"} for name in ("ready", *_CHECKS)},
                      why={"type": "array", "items": _TEXT}),
}


def components() -> dict[str, dict]:
    """Every schema the document names: the models (requests as validated, answers as
    serialized) and the envelopes around them."""
    _, defs = models_json_schema([*((m, "validation") for m in _REQUESTS),
                                  *((m, "serialization") for m in _ANSWERS)], ref_template=REF)
    return {**defs["$defs"], **_EXTRA}


def _json(schema: dict, example: Any = None) -> dict:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _ok(description: str, content: dict[str, dict] | None = None, status: int = 200) -> dict:
    answer: dict[str, Any] = {"description": description}
    if content:
        answer["content"] = content
    return {str(status): answer}


def _refused(*statuses: int) -> dict:
    return {str(s): {"$ref": f"#/components/responses/{s}"} for s in sorted(set(statuses))}


def _param(name: str, where: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path",
            "description": description, "schema": schema}


def _id(name: str, what: str) -> dict:
    return _param(name, "path", {"type": "string", "minLength": 1}, what)


def _enum(values: Sequence[str]) -> dict:
    return {"type": "string", "enum": list(values)}


_TIME = {"type": "string", "format": "date-time"}
_FOUND = [  # streams.http.listing: every filter optional, all hold at once
    _param("level", "query", _enum(LEVELS), "only this level"),
    _param("kind", "query", {"type": "string"}, "only this kind"),
    _param("site_id", "query", {"type": "string"}, "only this site"),
    _param("grid", "query", {"type": "string"}, "only sites of this grid"),
    _param("department", "query", {"type": "string"},
           "only incidents with a task for it / its tasks"),
    _param("since", "query", _TIME, "opened (a task: created) at or after, with offset"),
    _param("until", "query", _TIME, "opened (a task: created) at or before, with offset"),
    _param("q", "query", {"type": "string"},
           "text in ids, site name or address, kind, a task's action"),
    _param("drill", "query", _enum(("true", "false")),
           "true: only drills (演练); false: only real incidents"),
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
           "a page of at most this many, with next_cursor (without: the whole list)"),
    _param("cursor", "query", {"type": "string"}, "next_cursor of the page before (with limit)"),
]


def _op(op_id: str, summary: str, answers: dict, *, params: Sequence[dict] = (),
        body: dict | None = None, public: bool = False, tag: str = "api") -> dict:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag],
                          "responses": answers}
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if public:
        op["security"] = []
    return op


def paths(departments: Sequence[str], max_batch: int = 1000) -> dict[str, dict]:
    """Every path the worker serves, with its operations."""
    department = _param("department", "path", _enum(departments), "a configured department")
    incident_id = _id("incident_id", "the incident")
    alarms = {"anyOf": [_ref("Alarm"), _array(_ref("Alarm"), minItems=1, maxItems=max_batch)]}
    cap = {"type": "string", "description": "one CAP 1.2 alert (mapping in schemas/cap.py)",
           "xml": {"name": "alert", "namespace": CAP_NS}}
    cursor = {"type": "string", "pattern": r"^\d+(-\d+)*$"}
    text = {"schema": {"type": "string"}}
    resume = [_param("Last-Event-ID", "header", cursor, "resume after this cursor"),
              _param("last_event_id", "query", cursor, "the same, for EventSource")]
    stream = _ok("task, reset and ready events; ping comments", {"text/event-stream": text})
    vendored = {**_ok("the file", {"text/javascript": text, "text/css": text, "text/plain": text,
                                   "image/png": {"schema": {"type": "string",
                                                            "format": "binary"}}}),
                "304": {"description": "not modified (If-None-Match)"}, **_refused(404)}
    return {
        "/api/v1/alarms": {"post": _op(
            "postAlarms", f"Post one alarm, a batch of at most {max_batch}, or one CAP alert",
            {**_ok("every alarm is on the broker", _json(_ref("Accepted")), 202),
             **_refused(*_GUARDED, *_BODY, 503)},
            body={**_json(alarms, _ALARM), CAP_CONTENT_TYPE: {"schema": cap}})},
        "/api/v1/incidents": {"get": _op(
            "listIncidents", "Incidents, newest first (a department: those it has a task in)",
            {**_ok("the incidents", _json(_ref("Incidents"))), **_refused(*_GUARDED, 422)},
            params=[_param("status", "query", _enum(INCIDENT_STATUSES), "only this status"),
                    *_FOUND]), "post": _op(
            "openIncident", "Open an incident from a call (社区派单), matched as any alarm",
            {**_ok("the incident it opened or joined", _json(_ref("Incident")), 201),
             **_ok("on the broker; the incident is held elsewhere or not yet applied",
                   _json(_ref("Reported")), 202),
             **_refused(*_GUARDED, *_BODY, 503)},
            body=_json(_ref("OpenIncidentRequest"), {"site_id": "jb-wenshao-jiayuan",
                                                     "description": "居民来电：楼道冒烟"}))},
        "/api/v1/drills": {"post": _op(
            "startDrill", "Run a playbook as an exercise (演练) on a site: every task is marked",
            {**_ok("the drill's incident", _json(_ref("Incident")), 201),
             **_ok("on the broker; the incident is held elsewhere or not yet applied",
                   _json(_ref("Reported")), 202),
             **_refused(*_GUARDED, *_BODY, 503)},
            body=_json(_ref("DrillRequest"), {"site_id": "jyh-yinfeng-lab-3",
                                              "playbook": "laboratory-fire",
                                              "description": "演练：3号实验室通风橱冒烟"}))},
        "/api/v1/incidents/{incident_id}/tasks": {"post": _op(
            "addTask", "Add a task for any department (加派)",
            {**_ok("the new task", _json(_ref("Task")), 201),
             **_refused(*_GUARDED, *_BODY, *_SUBMIT)},
            params=[incident_id], body=_json(_ref("AddTaskRequest"), {
                "department": "community", "action": "组织居民疏散", "ack_within": "5m"}))},
        "/api/v1/incidents/{incident_id}/whistle": {"post": _op(
            "blowWhistle", "Call departments in (吹哨): each must report for duty (报到)",
            {**_ok("the summons", _json(_ref("Summoned")), 201),
             **_refused(*_GUARDED, *_BODY, *_SUBMIT)},
            params=[incident_id], body=_json(_ref("WhistleRequest"), {
                "departments": ["district_emergency"], "reason": "实验室火灾，请区应急到场"}))},
        "/api/v1/tasks/{task_id}/reassign": {"post": _op(
            "reassignTask", "Re-assign a task (转派): a new task takes its step over",
            {**_ok("the new task", _json(_ref("Task")), 201),
             **_refused(*_GUARDED, *_BODY, *_SUBMIT)},
            params=[_id("task_id", "the task")], body=_json(_ref("ReassignRequest"), {
                "department": "enforcement", "note": "供电所无权处置"}))},
        "/api/v1/tasks/{task_id}/cancel": {"post": _op(
            "cancelTask", "Cancel a task that is not needed (the steps after it go on)",
            {**_ok("the cancelled task", _json(_ref("Task"))),
             **_refused(*_GUARDED, *_BODY, *_SUBMIT)},
            params=[_id("task_id", "the task")],
            body=_json(_ref("CancelTaskRequest"), {"note": "已由企业自行断电"}))},
        "/api/v1/incidents/{incident_id}": {"get": _op(
            "getIncident", "One incident, as JSON or as a CAP 1.2 alert",
            {**_ok("the incident", {**_json(_ref("Incident")), CAP_CONTENT_TYPE: text}),
             **_refused(*_GUARDED, 404, 422)},
            params=[incident_id, _param("format", "query", _enum(("json", "cap")),
                                        "json (default) or cap")])},
        "/api/v1/incidents/{incident_id}/timeline": {"get": _op(
            "getTimeline", "The after-action timeline",
            {**_ok("the timeline", {**_json(_ref("Timeline")), "text/csv": text,
                                    "text/markdown": text, "text/html": text}),
             **_refused(*_GUARDED, 404, 422)},
            params=[incident_id, _param("format", "query", _enum(FORMATS), "json (default), "
                                                                            "csv, md or html")])},
        "/api/v1/incidents/{incident_id}/level": {"post": _op(
            "setLevel", "Set an incident's level (dispatches the steps the level reaches)",
            {**_ok("the changed incident", _json(_ref("Incident"))),
             **_refused(*_GUARDED, *_BODY, *_SUBMIT)},
            params=[incident_id],
            body=_json(_ref("LevelRequest"), {"level": "II", "by": "值班长", "note": "火势扩大"}))},
        "/api/v1/incidents/{incident_id}/close": {"post": _op(
            "closeIncident", "Close an incident by hand (结案 / 撤销): its open tasks cancelled",
            {**_ok("the closed incident", _json(_ref("Incident"))),
             **_refused(*_GUARDED, *_BODY, *_SUBMIT)},
            params=[incident_id],
            body=_json(_ref("CloseRequest"), {"reason": "handled", "by": "值班员",
                                              "note": "明火已扑灭"}))},
        "/api/v1/incidents/{incident_id}/contain": {"post": _op(
            "containIncident", "Mark an incident under control (控制); it stays open",
            {**_ok("the contained incident", _json(_ref("Incident"))),
             **_refused(*_GUARDED, *_BODY, *_SUBMIT)},
            params=[incident_id], body=_json(_ref("ContainRequest"), {"by": "值班员"}))},
        "/api/v1/handover": {"get": _op(
            "getHandover", "The shift handover (交接班): opened, closed, escalated in the shift; "
                           "still open at its end; overdue now (admin)",
            {**_ok("the handover", {**_json(_ref("Handover")), "text/markdown": text,
                                    "text/html": text}), **_refused(*_GUARDED, 422)},
            params=[_param("since", "query", _TIME, "shift began, with offset", required=True),
                    _param("until", "query", _TIME, "shift ended, with offset (default now)"),
                    _param("format", "query", _enum(HANDOVER_FORMATS), "default json")])},
        "/api/v1/tasks": {"get": _op(
            "listTasks", "Tasks (a department token: its own)",
            {**_ok("the tasks", _json(_ref("Tasks"))), **_refused(*_GUARDED, 422)},
            params=[_param("status", "query", _enum(TASK_STATUSES), "only this status"),
                    _param("incident_id", "query", {"type": "string"}, "only this incident"),
                    *_FOUND])},
        "/api/v1/tasks/{task_id}/{action}": {"post": _op(
            "changeTask", "Acknowledge, start, complete or reject a task",
            {**_ok("the changed task", _json(_ref("Task"))),
             **_refused(*_GUARDED, *_BODY, *_SUBMIT)},
            params=[_id("task_id", "the task"),
                    _param("action", "path", _enum(TASK_ACTIONS), "what the department does")],
            body=_json(_ref("TaskUpdateRequest"), {"by": "张警官", "note": "已到场"}))},
        "/api/v1/sites/{site_id}": {"get": _op(
            "getSite", "A site: the registry's entry and triage's state",
            {**_ok("the site", _json(_ref("SiteState"))), **_refused(*_GUARDED, 404)},
            params=[_id("site_id", "the site")])},
        "/api/v1/devices": {"get": _op(
            "listDevices", "The device fleet: readings and status, in id order (admin)",
            {**_ok("the devices", _json(_ref("Devices"))), **_refused(*_GUARDED, 422)},
            params=[_FOUND[2], _FOUND[3],
                    _param("status", "query", _enum(DEVICE_STATUSES), "only devices with it"),
                    *(p for p in _FOUND if p["name"] in ("limit", "cursor"))])},
        "/api/v1/devices/{device_id}": {"get": _op(
            "getDevice", "A device: the registry's entry and its signs of life",
            {**_ok("the device", _json(_ref("DeviceState"))), **_refused(*_GUARDED, 404)},
            params=[_id("device_id", "the device")])},
        "/api/v1/silences": {"get": _op(
            "listSilences", "Maintenance silences (检修屏蔽), newest first (admin)",
            {**_ok("the silences", _json(_ref("Silences"))), **_refused(*_GUARDED, 422)},
            params=[_param("state", "query", _enum(SILENCE_STATES), "only this state")]),
            "post": _op(
            "addSilence", "Silence a site, device, grid or site type's maintenance noise; a "
                          "person's report, a call point or two detectors break through",
            {**_ok("the silence", _json(_ref("SilenceAnswer")), 201),
             **_refused(*_GUARDED, *_BODY, 503)},
            body=_json(_ref("SilenceRequest"), {
                "matchers": {"grid": "YS-01"}, "reason": "烟感年检",
                "ends_at": "2099-12-06T12:00:00+08:00"}))},
        "/api/v1/silences/{silence_id}": {"get": _op(
            "getSilence", "One silence and the alarms it held back (admin)",
            {**_ok("the silence", _json(_ref("SilenceAnswer"))), **_refused(*_GUARDED, 404)},
            params=[_id("silence_id", "the silence")])},
        "/api/v1/silences/{silence_id}/expire": {"post": _op(
            "expireSilence", "End a silence now (admin)",
            {**_ok("the expired silence", _json(_ref("SilenceAnswer"))),
             **_refused(*_GUARDED, *_BODY, 404, 409, 503)},
            params=[_id("silence_id", "the silence")], body=_json(_ref("ExpireRequest"), {}))},
        **_campaign_paths(),
        "/api/v1/playbooks": {"get": _op(
            "listPlaybooks", "The playbook set in force",
            {**_ok("the set", _json(_ref("Playbooks"))), **_refused(*_GUARDED)})},
        "/api/v1/playbooks/reload": {"post": _op(
            "reloadPlaybooks", "Reload the playbook directory (refused whole: the set stays)",
            {**_ok("the set now in force", _json(_ref("Playbooks"))),
             **_refused(*_GUARDED, 422)})},
        "/api/v1/departments/{department}/stream": {"get": _op(
            "streamTasks", "Server-Sent Events: every task created or changed (never ends)",
            {**stream, **_refused(*_GUARDED, 400, 404)}, params=[department, *resume])},
        "/console/{department}": {"get": _op(
            "console", "The department console page (holds no data)",
            {**_ok("the page", {"text/html": text}), **_refused(404)},
            params=[department], public=True, tag="probes")},
        "/api/v1/stream": {"get": _op(
            "streamAll", "Server-Sent Events: every department's tasks, for the duty officer's "
                         "board (admin; never ends)",
            {**stream, **_refused(*_GUARDED, 400)}, params=resume)},
        "/api/v1/departments": {"get": _op(
            "listDepartments", "The departments, in their file's order (any token but a "
                               "gateway's)",
            {**_ok("the departments", _json(_ref("Departments"))), **_refused(*_GUARDED)})},
        "/api/v1/sites": {"get": _op(
            "listSites", "The registry's sites and grid outlines (admin); with q, the sites "
                         "whose name, address, id or grid holds it (at most 50)",
            {**_ok("the sites", _json(_ref("Sites"))), **_refused(*_GUARDED, 422)},
            params=[_param("q", "query", {"type": "string", "maxLength": 200},
                           "text to find (case and width folded)")])},
        "/board": {"get": _op(
            "board", "The duty officer's board page (值班台; holds no data)",
            _ok("the page", {"text/html": text}), public=True, tag="probes")},
        "/board/static/leaflet/{name}": {"get": _op(
            "leafletFile", "The board's vendored Leaflet (leaflet.js, leaflet.css, LICENSE)",
            vendored, params=[_id("name", "the file")], public=True, tag="probes")},
        "/board/static/leaflet/images/{name}": {"get": _op(
            "leafletImage", "The images Leaflet's style sheet names", vendored,
            params=[_id("name", "the file")], public=True, tag="probes")},
        "/healthz": {"get": _op(
            "health", "Liveness", _ok("alive", _json(_obj(("status",), status=_enum(["ok"])))),
            public=True, tag="probes")},
        "/readyz": {"get": _op(
            "ready", "Readiness: 200 only when alarms can be accepted",
            {**_ok("ready", _json(_ref("Readiness"))),
             "503": {"description": "not ready: the checks say why",
                     "content": _json(_ref("Readiness"))}}, public=True, tag="probes")},
        "/metrics": {"get": _op(
            "metrics", "Prometheus metrics", _ok("text exposition format", {"text/plain": text}),
            public=True, tag="probes")},
        PATH: {"get": _op(
            "openapi", "This document", _ok("OpenAPI 3.1", _json({"type": "object"})),
            public=True, tag="probes")},
    }


def _campaign_paths() -> dict[str, dict]:
    """Joint campaigns (专项整治, `streams.http.campaigns`)."""
    campaign_id = _id("campaign_id", "the campaign")
    answer = _json(_ref("CampaignAnswer"))
    text = {"schema": {"type": "string"}}
    return {
        "/api/v1/campaigns": {"get": _op(
            "listCampaigns", "Joint campaigns (专项整治), newest first, with their totals (a "
                             "department: those it has a step in)",
            {**_ok("the campaigns", _json(_ref("Campaigns"))), **_refused(*_GUARDED, 422)},
            params=[_param("status", "query", _enum(CAMPAIGN_STATUSES), "only this status")]),
            "post": _op(
            "startCampaign", "Start a campaign playbook: a task per step at every target site "
                             "(admin)",
            {**_ok("the campaign and its progress", answer, 201),
             **_refused(*_GUARDED, *_BODY, 409, 503, 504)},
            body=_json(_ref("StartCampaignRequest"), {"playbook": "gas-safety",
                                                      "by": "王科长"}))},
        "/api/v1/campaigns/{campaign_id}": {"get": _op(
            "getCampaign", "A campaign and its progress per department and per grid",
            {**_ok("the campaign", answer), **_refused(*_GUARDED, 404)},
            params=[campaign_id])},
        "/api/v1/campaigns/{campaign_id}/sites": {"get": _op(
            "listCampaignSites", "A campaign's target sites with their tasks and findings, in "
                                 "the campaign's order",
            {**_ok("the sites", _json(_ref("CampaignSites"))), **_refused(*_GUARDED, 404, 422)},
            params=[campaign_id, _param("grid", "query", {"type": "string"}, "only this grid"),
                    _param("department", "query", {"type": "string"},
                           "the state of this department's tasks (one with a step)"),
                    _param("state", "query", _enum(SITE_STATES),
                           "done: every task found; overdue: one past due; else open"),
                    *(p for p in _FOUND if p["name"] in ("limit", "cursor"))])},
        "/api/v1/campaigns/{campaign_id}/report": {"get": _op(
            "getCampaignReport", "The campaign report (专项整治工作报告): HTML, CSV for Excel "
                                 "(UTF-8 with a BOM) or Markdown",
            {**_ok("the report", {"text/html": text, "text/csv": text, "text/markdown": text}),
             **_refused(*_GUARDED, 404, 422)},
            params=[campaign_id, _param("format", "query", _enum(REPORT_FORMATS),
                                        "html (default), csv or md")])},
        "/api/v1/campaigns/{campaign_id}/findings": {"post": _op(
            "recordFinding", "What a department found at a site (合格, 责令整改, 罚款, "
                             "关停取缔); a later one replaces it (a department token: its own)",
            {**_ok("the site with the finding", _json(_ref("CampaignSite"))),
             **_refused(*_GUARDED, *_BODY, *_SUBMIT)},
            params=[campaign_id], body=_json(_ref("FindingRequest"), {
                "site_id": "jb-wenshao-jiayuan", "department": "gas_utility",
                "outcome": "rectification_ordered", "note": "软管老化，责令更换",
                "by": "李师傅"}))},
        "/api/v1/campaigns/{campaign_id}/end": {"post": _op(
            "endCampaign", "End a campaign: no finding is taken after (admin)",
            {**_ok("the ended campaign", answer), **_refused(*_GUARDED, *_BODY, *_SUBMIT)},
            params=[campaign_id], body=_json(_ref("EndCampaignRequest"), {"by": "王科长"}))},
        "/api/v1/campaign-playbooks": {"get": _op(
            "listCampaignPlaybooks", "The campaign playbooks loaded at start (for a start form)",
            {**_ok("the campaign playbooks", _json(_ref("CampaignPlaybooks"))),
             **_refused(*_GUARDED)})},
    }


def document(departments: Sequence[str], version: str, max_batch: int = 1000) -> dict:
    """The OpenAPI 3.1 document of a worker with these departments (and batch limit)."""
    responses = {str(status): {"description": why, "content": _json(_ref("Error")),
                               **({"headers": _HEADERS[status]} if status in _HEADERS else {})}
                 for status, why in _REFUSALS.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Whistle", "version": version,
                 "description": "Event-driven emergency coordination: alarms in, department "
                                "tasks out. The contract is docs/contract.md."},
        "security": [{"bearer": []}],
        "tags": [{"name": "api"}, {"name": "probes", "description": "need no token"}],
        "paths": paths(departments, max_batch),
        "components": {
            "schemas": components(),
            "responses": responses,
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "a gateway, department or admin token (none in open mode)"}},
        },
    }


def _version() -> str:
    try:
        return metadata.version("whistle")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def body(departments: list[str], max_batch: int) -> bytes:
    """The document this worker serves, as bytes."""
    return json_bytes(document(departments, _version(), max_batch))


class OpenApi(ApiView):
    """`GET /api/v1/openapi.json`."""

    body: bytes  # the worker's document, set by `mount`
    rights: dict[str, str] = {}  # public: it says what exists, not what anyone holds

    async def get(self, request: Any) -> Any:
        return self.raw(self.body, JSON)
