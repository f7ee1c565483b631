"""The campaign vocabulary: the playbook file's rules (each error naming its field), the records
of whistle.campaigns told apart by `type`, and the request bodies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from schemas.campaign import (
    CampaignCommand,
    CampaignEnd,
    CampaignFinding,
    CampaignMessage,
    CampaignPlaybook,
    CampaignStart,
    FindingRequest,
    StartCampaignRequest,
)
from schemas.codec import Rejected, decode, dump
from tests.conftest import T0


def playbook(**over) -> dict:
    data = {"id": "gas-safety", "version": 2, "title": "燃气安全专项整治",
            "targets": {"types": ["small_venue"]},
            "steps": [{"department": "gas_utility", "action": "入户安检", "within": "14d"},
                      {"department": "enforcement", "action": "执法检查", "within": "30d"}]}
    data.update(over)
    return data


def test_a_campaign_playbook_reads_days_and_a_numeric_version():
    pb = CampaignPlaybook.model_validate(playbook())
    assert pb.version == "2"
    assert [s.within for s in pb.steps] == [timedelta(days=14), timedelta(days=30)]
    assert pb.targets.grids == [] and pb.targets.sites == []


def step(**over) -> dict:
    return {"department": "gas_utility", "action": "入户安检", "within": "7d", **over}


@pytest.mark.parametrize(("over", "loc", "words"), [
    ({"targets": {}}, ("targets",), "must name its sites"),
    ({"targets": {"types": [], "grids": [], "sites": []}}, ("targets",), "must name its sites"),
    ({"targets": {"types": ["spaceport"]}}, ("targets", "types", 0), "Input should be"),
    ({"targets": {"grid": ["G1"]}}, ("targets", "grid"), "Extra inputs"),
    ({"steps": []}, ("steps",), "at least 1"),
    ({"steps": [step(within="12h")]}, ("steps", 0, "within"),
     "deadlines of a campaign are in days"),
    ({"steps": [step(within="36h")]}, ("steps", 0, "within"), "in days"),
    ({"steps": [step(within="tomorrow")]}, ("steps", 0, "within"), "is not a duration"),
    ({"steps": [step(department="Gas")]}, ("steps", 0, "department"), "should match pattern"),
    ({"steps": [step(action="")]}, ("steps", 0, "action"), "at least 1 character"),
    ({"steps": [step(), step(within="14d")]}, ("steps", 1, "action"), "this action twice"),
    ({"id": "燃气"}, ("id",), "should match pattern"),
    ({"owner": "王科长"}, ("owner",), "Extra inputs"),
])
def test_a_bad_playbook_names_the_field(over, loc, words):
    with pytest.raises(ValidationError) as caught:
        CampaignPlaybook.model_validate(playbook(**over))
    errors = caught.value.errors()
    assert any(tuple(e["loc"]) == loc and words in e["msg"] for e in errors), errors


def test_one_department_may_have_two_steps_with_different_actions():
    pb = CampaignPlaybook.model_validate(playbook(steps=[
        step(department="police", action="经保摸排"),
        step(department="police", action="配合执法")]))
    assert [s.department for s in pb.steps] == ["police", "police"]


FINDING = {"type": "finding", "update_id": "u-2", "campaign_id": "cmp-1", "site_id": "s-1",
           "department": "gas_utility", "outcome": "rectification_ordered", "by": "李师傅",
           "at": T0.isoformat()}


@pytest.mark.parametrize(("data", "kind"), [
    ({"type": "start", "update_id": "u-1", "campaign_id": "cmp-1", "playbook": "gas-safety",
      "by": "王科长", "at": T0.isoformat()}, CampaignStart),
    (FINDING, CampaignFinding),
    ({"type": "end", "update_id": "u-3", "campaign_id": "cmp-1", "by": "王科长",
      "at": T0.isoformat()}, CampaignEnd),
])
def test_a_record_of_the_topic_is_told_apart_by_its_type(data, kind):
    assert type(TypeAdapter(CampaignCommand).validate_python(data)) is kind
    decoded = decode(CampaignMessage, dump(kind.model_validate(data)))
    assert not isinstance(decoded, Rejected)
    assert decoded.root == kind.model_validate(data)


@pytest.mark.parametrize(("data", "words"), [
    ({**FINDING, "type": "pause"}, "does not match any of the expected tags"),
    ({k: v for k, v in FINDING.items() if k != "type"}, "Unable to extract tag"),
    ({**FINDING, "outcome": "warned"}, "'compliant', 'rectification_ordered', 'fined'"),
    ({**FINDING, "at": "2023-05-16 14:03"}, "RFC 3339"),
    ({**FINDING, "by": ""}, "at least 1 character"),
    ({**FINDING, "note": "x" * 4001}, "at most 4000"),
])
def test_a_bad_record_is_rejected_with_its_reason(data, words):
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(CampaignCommand).validate_python(data)
    assert words in str(caught.value)


def test_the_request_bodies_default_what_the_server_fills_in():
    start = StartCampaignRequest.model_validate({"playbook": "gas-safety"})
    assert (start.campaign_id, start.by) == (None, "")
    finding = FindingRequest.model_validate({"site_id": "s-1", "department": "gas_utility",
                                             "outcome": "fined"})
    assert (finding.note, finding.task_id) == ("", None)
    with pytest.raises(ValidationError, match="outcome"):
        FindingRequest.model_validate({"site_id": "s-1", "department": "gas_utility",
                                       "outcome": "ok"})
    with pytest.raises(ValidationError, match="campaign_id"):
        StartCampaignRequest.model_validate({"playbook": "gas-safety", "campaign_id": "a\nb"})
