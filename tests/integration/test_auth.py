"""Every endpoint x every role on the real stack: 200/202, 401 or 403 as the contract says.

Roles: no token, an unknown token, the gateway, the police (which has a task in the incident),
the community (which has none) and the admin."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.integration.conftest import Stack

TOKENS = {"gateway": "gateway-token-0000001", "police": "police-token-00000001",
          "community": "community-token-00001", "admin": "admin-token-000000001"}
ROLES = ("none", "unknown", "gateway", "police", "community", "admin")
SITE, DEVICE = "jyh-yinfeng-lab-3", "mcp-lab3-01"
QUIET = "ps-wenhui-community"  # silenced in the matrix: no test here alarms there


def headers(role: str) -> dict[str, str]:
    if role == "none":
        return {}
    token = TOKENS.get(role, "an-unknown-token-000000")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    config = tmp / "whistle.yaml"
    config.write_text("tokens:\n"
                      f"  - {{role: gateway, token: {TOKENS['gateway']}}}\n"
                      f"  - {{role: department, department: police, token: {TOKENS['police']}}}\n"
                      f"  - {{role: department, department: community, "
                      f"token: {TOKENS['community']}}}\n"
                      f"  - {{role: admin, token: {TOKENS['admin']}, name: 值班员}}\n",
                      encoding="utf-8")
    # a burst large enough for the matrices (the limits are tests/chaos/test_intruders.py's)
    stack = Stack(tmp, {"WHISTLE_RATE_BURST": "1000"}, "--config", str(config))
    yield stack
    stack.stop()


def fire_report(alarm_id: str) -> dict:
    return {"alarm_id": alarm_id, "kind": "fire_report", "site_id": SITE,
            "occurred_at": datetime.now(UTC).isoformat(timespec="seconds")}


def police_task(stack: Stack) -> dict:
    def found():
        tasks = stack.http.get("/api/v1/tasks", headers=headers("admin")).json()["tasks"]
        return next((t for t in tasks if t["department"] == "police"), None)
    return stack.wait_for(found, 10, "the police task")


def status_of(stack: Stack, method: str, path: str, role: str, body) -> int:
    if path.endswith("/stream"):
        with stack.http.stream(method, path, headers=headers(role), timeout=5) as answer:
            return answer.status_code
    answer = stack.http.request(method, path, headers=headers(role), json=body)
    return answer.status_code


def test_the_ready_line_says_which_tokens_are_configured(secured):
    assert "tokens: 1 admin, 2 department, 1 gateway" in secured.ready_line


def test_every_endpoint_answers_every_role_as_the_contract_says(secured):
    answer = secured.http.post("/api/v1/alarms", json={**fire_report("auth-setup"),
                                                       "device_id": DEVICE},
                               headers=headers("gateway"))
    assert answer.status_code == 202, answer.text
    task = police_task(secured)
    inc, tid = task["incident_id"], task["task_id"]
    anyone = (200,) * len(ROLES)
    quiet = {"matchers": {"site_id": QUIET}, "ends_at": datetime.now(UTC).replace(
        year=2099).isoformat(), "reason": "检修"}
    made = secured.http.post("/api/v1/silences", json=quiet, headers=headers("admin"))
    assert made.status_code == 201, made.text
    sid = made.json()["silence_id"]
    # a joint campaign (issue 20): the community has a step in gas-safety, the police none
    started = secured.http.post("/api/v1/campaigns", headers=headers("admin"),
                                json={"playbook": "gas-safety", "campaign_id": "cmp-auth"})
    assert started.status_code == 201, started.text
    cmp, at = "/api/v1/campaigns/cmp-auth", started.json()["campaign"]["sites"][0]
    matrix = [  # (method, path, body), then: none unknown gateway police community admin
        (("POST", "/api/v1/alarms", "alarm"), (401, 401, 202, 403, 403, 202)),
        (("GET", "/api/v1/incidents", None), (401, 401, 403, 200, 200, 200)),
        (("GET", f"/api/v1/incidents/{inc}", None), (401, 401, 403, 200, 403, 200)),
        (("GET", f"/api/v1/incidents/{inc}?format=cap", None), (401, 401, 403, 200, 403, 200)),
        (("GET", f"/api/v1/incidents/{inc}/timeline", None), (401, 401, 403, 200, 403, 200)),
        (("POST", f"/api/v1/incidents/{inc}/level", {"level": "I", "by": "值班员"}),
         (401, 401, 403, 403, 403, 200)),
        (("GET", "/api/v1/tasks", None), (401, 401, 403, 200, 200, 200)),
        (("GET", "/api/v1/tasks?department=police", None), (401, 401, 403, 200, 403, 200)),
        # the police acknowledge and start; the admin, coming later, finds it done (409)
        (("POST", f"/api/v1/tasks/{tid}/ack", {"by": "李警官"}), (401, 401, 403, 200, 403, 409)),
        (("POST", f"/api/v1/tasks/{tid}/start", {"by": "李警官"}),
         (401, 401, 403, 200, 403, 409)),
        (("POST", f"/api/v1/tasks/{tid}/progress", {"by": "李警官", "note": "警戒中"}),
         (401, 401, 403, 200, 403, 200)),
        (("POST", f"/api/v1/incidents/{inc}/contain", {"by": "值班员"}),
         (401, 401, 403, 403, 403, 200)),
        # the duty officer's hand (issue 19): admin only
        (("POST", "/api/v1/incidents", {"site_id": SITE, "description": "来电"}),
         (401, 401, 403, 403, 403, 201)),
        (("POST", "/api/v1/drills", {"site_id": SITE, "description": "演练"}),
         (401, 401, 403, 403, 403, 201)),
        (("POST", f"/api/v1/incidents/{inc}/tasks", {"department": "grid_worker",
                                                     "action": "巡查"}),
         (401, 401, 403, 403, 403, 201)),
        (("POST", f"/api/v1/tasks/{inc}.added-1/reassign", {"department": "property"}),
         (401, 401, 403, 403, 403, 201)),
        (("POST", f"/api/v1/tasks/{inc}.added-1.r2/cancel", {"note": "不需要了"}),
         (401, 401, 403, 403, 403, 200)),
        (("POST", f"/api/v1/incidents/{inc}/whistle", {"departments": ["district_emergency"],
                                                       "reason": "区级支援"}),
         (401, 401, 403, 403, 403, 201)),
        # a department may not close; the admin may, with what a close needs (a duplicate's of)
        (("POST", f"/api/v1/incidents/{inc}/close", {"reason": "duplicate", "by": "值班员"}),
         (401, 401, 403, 403, 403, 422)),
        (("GET", "/api/v1/departments/police/stream", None), (401, 401, 403, 200, 403, 200)),
        (("GET", "/api/v1/departments/community/stream", None),
         (401, 401, 403, 403, 200, 200)),
        (("GET", f"/api/v1/sites/{SITE}", None), (401, 401, 403, 403, 403, 200)),
        (("GET", f"/api/v1/devices/{DEVICE}", None), (401, 401, 403, 403, 403, 200)),
        (("GET", "/api/v1/devices", None), (401, 401, 403, 403, 403, 200)),
        (("GET", "/api/v1/playbooks", None), (401, 401, 403, 403, 403, 200)),
        (("POST", "/api/v1/playbooks/reload", {}), (401, 401, 403, 403, 403, 200)),
        # maintenance silences (issue 20): admin only
        (("POST", "/api/v1/silences", quiet), (401, 401, 403, 403, 403, 201)),
        (("GET", "/api/v1/silences", None), (401, 401, 403, 403, 403, 200)),
        (("GET", f"/api/v1/silences/{sid}", None), (401, 401, 403, 403, 403, 200)),
        (("POST", f"/api/v1/silences/{sid}/expire", {}), (401, 401, 403, 403, 403, 200)),
        # joint campaigns (issue 20): an admin starts and ends; a department with a step reads
        # and records its own findings
        (("POST", "/api/v1/campaigns", {"playbook": "gas-safety", "campaign_id": "cmp-auth-2"}),
         (401, 401, 403, 403, 403, 201)),
        (("GET", "/api/v1/campaigns", None), (401, 401, 403, 200, 200, 200)),
        (("GET", "/api/v1/campaign-playbooks", None), (401, 401, 403, 200, 200, 200)),
        (("GET", cmp, None), (401, 401, 403, 403, 200, 200)),
        (("GET", f"{cmp}/sites", None), (401, 401, 403, 403, 200, 200)),
        (("GET", f"{cmp}/report?format=csv", None), (401, 401, 403, 403, 200, 200)),
        (("POST", f"{cmp}/findings", {"site_id": at, "department": "community",
                                      "outcome": "compliant", "by": "社区网格员"}),
         (401, 401, 403, 403, 200, 200)),
        (("POST", f"{cmp}/end", {}), (401, 401, 403, 403, 403, 200)),
        (("GET", "/console/police", None), anyone),
        (("GET", "/healthz", None), anyone),
        (("GET", "/readyz", None), anyone),
        (("GET", "/metrics", None), anyone),
    ]
    got, want = {}, {}
    for (method, path, body), statuses in matrix:
        for role, expected in zip(ROLES, statuses, strict=True):
            sent = fire_report(f"auth-{role}-{time.monotonic_ns()}") if body == "alarm" else body
            got[(method, path, role)] = status_of(secured, method, path, role, sent)
            want[(method, path, role)] = expected
    assert got == want


def test_a_department_sees_only_its_own(secured):
    answer = secured.http.post("/api/v1/alarms", json=fire_report("auth-own"),
                               headers=headers("gateway"))
    assert answer.status_code == 202
    police_task(secured)
    theirs = secured.http.get("/api/v1/tasks", headers=headers("police")).json()["tasks"]
    assert theirs and {t["department"] for t in theirs} == {"police"}
    everyone = secured.http.get("/api/v1/tasks", headers=headers("admin")).json()["tasks"]
    assert len({t["department"] for t in everyone}) > 1
    assert secured.http.get("/api/v1/incidents", headers=headers("community")).json() == {
        "incidents": []}
    inc = theirs[0]["incident_id"]
    entries = secured.http.get(f"/api/v1/incidents/{inc}/timeline",
                               headers=headers("police")).json()["entries"]
    assert {e.get("department") for e in entries} <= {None, "police"}
    assert any(e.get("department") == "police" for e in entries)
    refused = secured.http.get("/api/v1/tasks", headers=headers("none"))
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="whistle"'
    assert refused.json()["details"][0]["loc"] == ["Authorization"]
    wrong = secured.http.post(f"/api/v1/tasks/{theirs[0]['task_id']}/ack",
                              headers=headers("community"), json={"by": "x"})
    assert wrong.status_code == 403 and "police" in wrong.json()["error"]


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def test_every_method_on_every_route_is_decided_for_every_role(secured):
    """HEAD has exactly GET's rights (and no body); a stream has no HEAD; a method a route does
    not answer is 405, JSON, with Allow, for everyone, token or not."""
    answer = secured.http.post("/api/v1/alarms", json=fire_report("methods-setup"),
                               headers=headers("gateway"))
    assert answer.status_code == 202, answer.text
    task = police_task(secured)
    inc, tid = task["incident_id"], task["task_id"]
    routes = {  # path: the methods it answers
        "/api/v1/alarms": {"POST"}, "/api/v1/incidents": {"GET", "POST"},
        "/api/v1/drills": {"POST"},
        f"/api/v1/incidents/{inc}/tasks": {"POST"}, f"/api/v1/incidents/{inc}/whistle": {"POST"},
        f"/api/v1/tasks/{tid}/reassign": {"POST"}, f"/api/v1/tasks/{tid}/cancel": {"POST"},
        f"/api/v1/incidents/{inc}": {"GET"}, f"/api/v1/incidents/{inc}/timeline": {"GET"},
        f"/api/v1/incidents/{inc}/level": {"POST"}, "/api/v1/tasks": {"GET"},
        f"/api/v1/incidents/{inc}/close": {"POST"}, f"/api/v1/incidents/{inc}/contain": {"POST"},
        f"/api/v1/tasks/{tid}/ack": {"POST"}, "/api/v1/departments/police/stream": {"GET"},
        f"/api/v1/sites/{SITE}": {"GET"}, f"/api/v1/devices/{DEVICE}": {"GET"},
        "/api/v1/devices": {"GET"},
        "/api/v1/playbooks": {"GET"}, "/api/v1/playbooks/reload": {"POST"},
        "/api/v1/silences": {"GET", "POST"}, "/api/v1/silences/sil-none": {"GET"},
        "/api/v1/silences/sil-none/expire": {"POST"},
        "/api/v1/campaigns": {"GET", "POST"}, "/api/v1/campaigns/cmp-none": {"GET"},
        "/api/v1/campaigns/cmp-none/sites": {"GET"}, "/api/v1/campaigns/cmp-none/report": {"GET"},
        "/api/v1/campaigns/cmp-none/findings": {"POST"},
        "/api/v1/campaigns/cmp-none/end": {"POST"}, "/api/v1/campaign-playbooks": {"GET"},
        "/api/v1/openapi.json": {"GET"}, "/console/police": {"GET"}, "/healthz": {"GET"},
        "/readyz": {"GET"}, "/metrics": {"GET"}}
    wrong = []
    for path, answers in routes.items():
        stream = path.endswith("/stream")
        allowed = answers | ({"HEAD"} if "GET" in answers and not stream else set())
        for role in ROLES:
            get = status_of(secured, "GET", path, role, None) if "GET" in answers else None
            for method in METHODS:
                if method in answers:
                    continue  # the contract's matrix, above
                reply = secured.http.request(method, path, headers=headers(role))
                if method == "HEAD" and method in allowed:
                    if reply.status_code != get or reply.content:
                        wrong.append(f"HEAD {path} as {role}: {reply.status_code} "
                                     f"({len(reply.content)} bytes), GET {get}")
                    continue
                ok = (reply.status_code == 405
                      and set(reply.headers.get("allow", "").split(", ")) == allowed
                      and reply.headers["content-type"].startswith("application/json")
                      # an answer to HEAD has no body, by HTTP's rules
                      and (method == "HEAD" and not reply.content
                           or reply.json()["details"][0]["loc"] == ["method"]))
                if not ok:
                    wrong.append(f"{method} {path} as {role}: {reply.status_code} "
                                 f"Allow {reply.headers.get('allow')!r} {reply.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_an_unknown_path_answers_the_json_error_shape(secured):
    answer = secured.http.get("/api/v1/nothing-here", headers=headers("admin"))
    assert answer.status_code == 404
    assert answer.json()["details"][0]["loc"] == ["path"]
