"""Chaos: schemathesis against the real stack, driven by `GET /api/v1/openapi.json`.

Every operation but the department stream (it never ends) gets generated requests: valid ones
and invalid ones (negative mode), and valid ones aimed at ids that exist (an incident, its
tasks, its site and device), so the answers that matter are checked too, not only 404s.
Checks: no 5xx; status codes, content types, headers and bodies as documented; invalid input
refused; and every 4xx JSON answer has `details` whose `loc` names a field, header or
parameter. Then the inputs a JSON schema cannot generate (nesting, lone surrogates, dates
near the ends of the calendar) are sent by hand.

    .venv/bin/pytest -s tests/chaos/test_fuzz_api.py     # prints the `chaos fuzz-api:` line
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.examples import get_strategies_from_examples

from streams.app import build
from streams.http.openapi import PATH, document
from streams.http.views import ApiView
from streams.settings import Settings
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

EXAMPLES = 50          # per operation and variant (100 took 90 s of a CI run that must stay
# well under 20 minutes, once the command center and the silences had added their operations)
OTHER_METHODS = ("HEAD", "OPTIONS", "PUT", "PATCH", "DELETE")  # sent beside each GET's cases
NEVER_ENDS = {"GET /api/v1/departments/{department}/stream", "GET /api/v1/stream"}  # SSE
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]
SITE = "jyh-yinfeng-lab-3"  # a demo site (streams/demo/sites.yaml)
# hypothesis keeps caches in ./.hypothesis; nothing of it belongs in the work tree
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "whistle-hypothesis")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("fuzz-api"))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def known(live) -> dict[str, str]:
    """Ids that exist: an incident opened by a smoke alarm from a device, one of its tasks,
    and a joint campaign."""
    device = f"fuzz-smk-{uuid.uuid4().hex[:6]}"
    answer = live.http.post("/api/v1/alarms", json={
        "alarm_id": f"fuzz-seed-{device}", "kind": "smoke", "site_id": SITE,
        "device_id": device, "occurred_at": now()})
    assert answer.status_code == 202, answer.text

    def opened():
        found = live.http.get("/api/v1/incidents", params={"site_id": SITE}).json()["incidents"]
        return next((i for i in found if i["task_ids"]), None)

    incident = live.wait_for(opened, timeout=15, what="the seed incident")
    campaign = live.http.post("/api/v1/campaigns", json={
        "playbook": "gas-safety", "campaign_id": f"fuzz-{device}", "by": "模糊测试"})
    assert campaign.status_code == 201, campaign.text
    return {"incident_id": incident["incident_id"], "task_id": incident["task_ids"][0],
            "site_id": SITE, "device_id": device, "campaign_id": f"fuzz-{device}"}


def defines(view: type, method: str) -> bool:
    """Whether the view class mounted (a per-worker subclass, streams.http.views.mount) or a
    class of its own below ApiView defines `method`."""
    return any(method in cls.__dict__ for cls in view.__mro__
               if issubclass(cls, ApiView) and cls is not ApiView)


def test_the_document_names_every_view_and_method(tmp_path):
    """Nothing served goes undocumented, nothing documented is not served (no I/O: the
    worker is built, not started)."""
    whistle = build(Settings(data=tmp_path))
    served = {(path, method) for path, view in whistle.app.web.views.items()
              for method in ("get", "post", "put", "patch", "delete")
              if defines(type(view), method)}
    doc = document(list(whistle.departments), "test", whistle.settings.max_batch)
    assert doc["openapi"] == "3.1.0"
    assert {(path, method) for path, ops in doc["paths"].items() for method in ops} == served
    assert set(doc["paths"]["/console/{department}"]["get"]["parameters"][0]["schema"]["enum"]) \
        == set(whistle.departments)


def refusal_names_a_field(response) -> str | None:
    """What is wrong with a 4xx JSON answer's `details`, or None."""
    if not 400 <= response.status_code < 500:
        return None
    kind = (response.headers.get("content-type") or [""])[0]
    if not kind.startswith("application/json"):
        return None
    details = response.json().get("details")
    if not details:
        return f"{response.status_code} without details: {response.text[:200]}"
    for d in details:
        loc = d.get("loc") if isinstance(d, dict) else None
        # a field (`[""]` is the field named "" that was not allowed), an item of a batch
        # (`[0]`), a header or a parameter (`["query", "status"]`)
        if not isinstance(loc, list) or not loc or not all(
                isinstance(p, (str, int)) and not isinstance(p, bool) for p in loc):
            return f"{response.status_code}: loc {loc!r} names no field ({response.text[:200]})"
        if not isinstance(d.get("msg"), str) or not d["msg"]:
            return f"{response.status_code}: no msg in {d!r}"
    return None


def can_be_invalid(op) -> bool:
    """Whether a request to `op` has anything to get wrong (the token aside: open mode)."""
    return bool(len(op.path_parameters) or len(op.query) or len(op.body)
                or any(h.name != "Authorization" for h in op.headers))


class Run:
    """Counts what was sent and keeps every failure (the first few per operation)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cases = 0
        self.statuses: Counter = Counter()
        self.failures: list[str] = []
        self.http = httpx.Client(base_url=base_url, timeout=15)  # one: a new one costs ~20 ms

    def operation(self, op, mode: GenerationMode, fixed: dict[str, str]) -> None:
        self.strategy(op.as_strategy(generation_mode=mode, path_parameters=fixed or None),
                      f"{op.label} [{mode.value}{' known ids' if fixed else ''}]",
                      negative=mode is GenerationMode.NEGATIVE)

    def examples(self, op) -> int:
        """Sends the document's own examples for `op` (every one, every time: random
        generation alone may never hit an alarm schemathesis cannot know the date range of)."""
        strategies = get_strategies_from_examples(op)
        for strategy in strategies:
            self.strategy(strategy, f"{op.label} [documented example]", negative=False)
        return len(strategies)

    def other_methods(self, case, sent) -> list[str]:
        """The GET `sent` (schemathesis's response) again as HEAD (GET's answer without a
        body, GET's status) and as the methods no GET path answers (405, JSON, with Allow),
        each counted as a case. Sent to the URL the GET went to, byte for byte: `case.query`
        is schemathesis's form of it (nested lists, dicts, numbers it renders its own way),
        not the wire's: sent by httpx it once made a 200 GET a 422 HEAD."""
        problems = []
        get_status = sent.status_code
        for method in OTHER_METHODS:
            self.cases += 1
            answer = self.http.request(method, sent.request.url, headers=case.headers)
            self.statuses[answer.status_code] += 1
            if answer.status_code >= 500:
                problems.append(f"{method}: {answer.status_code}")
            elif answer.status_code == 414 and (method == "HEAD" or '"loc":["url"]' in
                                                answer.text.replace(" ", "")):
                continue  # a request line near the limit: it counts the method's name too
            elif method == "HEAD" and (answer.status_code != get_status or answer.content):
                problems.append(f"HEAD: {answer.status_code} and {len(answer.content)} bytes "
                                f"where GET had {get_status}")
            elif method != "HEAD" and (answer.status_code != 405 or "GET" not in
                                       answer.headers.get("allow", "")
                                       or refusal_names_a_field(_Lists(answer)) is not None):
                problems.append(f"{method}: {answer.status_code} "
                                f"(Allow {answer.headers.get('allow')!r}) {answer.text[:200]}")
        return problems

    def strategy(self, strategy, label: str, negative: bool) -> None:
        failed: list[str] = []

        @given(case=strategy)
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def send(case) -> None:
            self.cases += 1
            try:
                response = case.call(base_url=self.base_url, timeout=15)
            except Exception as exc:  # no answer at all is a failure too
                failed.append(f"no answer: {exc!r}\n    {case.as_curl_command()}")
                return
            self.statuses[response.status_code] += 1
            problems = []
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as exc:  # a FailureGroup: every failed check
                problems.append(str(exc).strip())
            if (why := refusal_names_a_field(response)) is not None:
                problems.append(why)
            if case.method.upper() == "GET":
                problems += self.other_methods(case, response)
            if problems and len(failed) < 3:
                failed.append("\n".join(problems)[:1500] + f"\n    {case.as_curl_command()}")

        try:
            send()
        except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
            assert negative, f"{label}: no valid request"
        self.failures += [f"{label}: {f}" for f in failed]


def test_every_operation_conforms_and_no_input_is_a_server_error(live, known):
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(live.url + PATH, timeout=10)
    # open mode: a request without a token is as good as one with it, so a missing
    # Authorization is not invalid input here (tests/integration/test_auth.py covers tokens)
    schema.config.generation.update(with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /api/v1/alarms", "GET /api/v1/tasks",
                                               "POST /api/v1/tasks/{task_id}/{action}"}
    run = Run(live.url)
    fuzzed = examples = 0
    for op in operations:
        if op.label in NEVER_ENDS:
            continue
        fuzzed += 1
        examples += run.examples(op)
        names = {p.name for p in op.path_parameters}
        ids = {name: value for name, value in known.items() if name in names}
        variants = [(GenerationMode.POSITIVE, {})]
        if can_be_invalid(op):
            variants.append((GenerationMode.NEGATIVE, {}))
        if ids:
            variants.append((GenerationMode.POSITIVE, ids))
        for mode, fixed in variants:
            run.operation(op, mode, fixed)
    server_errors = sum(n for status, n in run.statuses.items() if status >= 500)
    print(f"\nchaos fuzz-api: {run.cases} cases ({examples} documented examples), "
          f"{fuzzed} operations, {server_errors} 5xx "
          f"(statuses {dict(sorted(run.statuses.items()))}, "
          f"{time.monotonic() - started:.0f} s)")
    assert not run.failures, f"{len(run.failures)} failures:\n\n" + "\n\n".join(run.failures)
    assert run.statuses[202] and run.statuses[200], "nothing generated was ever accepted"
    assert live.http.get("/readyz").status_code == 200, "the worker is no longer ready"


# What a JSON schema cannot make schemathesis generate. (name, path, raw body)
DEEP = b"[" * 100_000 + b"]" * 100_000


def alarm_json(alarm_id: str, occurred_at: str | None = None, attributes: str = "{}") -> bytes:
    return (f'{{"alarm_id": "{alarm_id}", "kind": "smoke", "site_id": "hostile-{alarm_id}", '
            f'"occurred_at": "{occurred_at or now()}", "attributes": {attributes}}}').encode()


HOSTILE = [
    ("alarm: 100,000 nested arrays", "/api/v1/alarms", DEEP),
    ("alarm: lone surrogate in an attribute", "/api/v1/alarms",
     alarm_json("h-surrogate", attributes='{"note": "\\ud800"}')),
    ("alarm: a field named by a lone surrogate", "/api/v1/alarms",
     alarm_json("h-key").replace(b'"kind"', b'"\\udc80": 1, "kind"')),
    ("alarm: attribute nested 300 deep", "/api/v1/alarms",
     alarm_json("h-nested", attributes='{"a": ' + "[" * 300 + "]" * 300 + "}")),
    ("alarm: occurred_at in year 1, +14:00", "/api/v1/alarms",
     alarm_json("h-year-1", "0001-01-01T00:00:00+14:00")),
    ("alarm: occurred_at in year 1, UTC", "/api/v1/alarms",
     alarm_json("h-year-1-utc", "0001-01-01T00:00:00Z")),
    ("task update: 100,000 nested arrays", "/api/v1/tasks/{task_id}/ack", DEEP),
    ("level change: 100,000 nested arrays", "/api/v1/incidents/{incident_id}/level", DEEP),
]


@pytest.mark.parametrize("name,path,body", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_json_is_refused_naming_the_field_or_processed(live, known, name, path, body):
    """A 4xx naming what is wrong; or, for an alarm, 202 and then an incident: an alarm the API
    accepted must not become a dead letter."""
    answer = live.http.post(path.format(**known), content=body,
                            headers={"Content-Type": "application/json"})
    assert answer.status_code < 500, f"{name}: {answer.status_code} {answer.text[:300]}"
    if answer.status_code >= 400:
        assert answer.headers["content-type"].startswith("application/json"), answer.text
        assert refusal_names_a_field(_Lists(answer)) is None, answer.text
        return
    assert answer.status_code == 202, answer.text
    alarm_id = answer.json()["accepted"][0]

    def attached():
        found = live.http.get("/api/v1/incidents", params={
            "site_id": f"hostile-{alarm_id}"}).json()["incidents"]
        return any(alarm_id in i["alarm_ids"] for i in found)

    live.wait_for(attached, timeout=5, what=f"{name}: the accepted alarm {alarm_id} on an "
                                            f"incident (it was accepted with 202)")


class _Lists:
    """An httpx answer seen the way schemathesis' Response is (header values as lists)."""

    def __init__(self, answer) -> None:
        self.status_code, self.text, self.json = answer.status_code, answer.text, answer.json
        self.headers = {k.lower(): [v] for k, v in answer.headers.items()}
