"""Playbook, site and department file models."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from schemas import DepartmentRegistry, Playbook, SiteRegistry, parse_duration
from schemas.common import format_duration


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("15m", 900), ("1h30m", 5400),
                                          ("1d", 86400), ("PT1H", 3600), (45, 45), ("500ms", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["soon", "15 minutes", "-5m", "", "P", True])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_duration_formats_back_to_the_short_form():
    assert format_duration(timedelta(hours=72, minutes=30)) == "3d30m"


def playbook(**over) -> dict:
    data = {"id": "lab", "version": 1, "title": "实验室", "level": "II",
            "steps": [{"id": "a", "department": "police", "action": "警戒",
                       "ack_within": "1m", "complete_within": "1h"}]}
    data.update(over)
    return data


def test_playbook_version_is_text():
    assert Playbook.model_validate(playbook()).version == "1"


def test_step_ids_must_be_unique():
    step = playbook()["steps"][0]
    with pytest.raises(ValidationError) as exc:
        Playbook.model_validate(playbook(steps=[step, step]))
    assert exc.value.errors()[0]["loc"] == ("steps", 1, "id")


def test_completion_cannot_be_due_before_acknowledgement():
    step = {**playbook()["steps"][0], "ack_within": "1h", "complete_within": "1m"}
    with pytest.raises(ValidationError) as exc:
        Playbook.model_validate(playbook(steps=[step]))
    assert exc.value.errors()[0]["loc"] == ("steps", 0, "complete_within")


def test_fallback_must_not_narrow_its_match():
    with pytest.raises(ValidationError) as exc:
        Playbook.model_validate(playbook(fallback=True, match={"kinds": ["smoke"]}))
    assert exc.value.errors()[0]["loc"] == ("match",)


def test_department_ids_name_topics():
    step = {**playbook()["steps"][0], "department": "Police Station"}
    with pytest.raises(ValidationError) as exc:
        Playbook.model_validate(playbook(steps=[step]))
    assert exc.value.errors()[0]["loc"] == ("steps", 0, "department")


def test_site_registry_refuses_duplicates_and_unknown_types():
    site = {"site_id": "a", "name": "甲", "type": "laboratory"}
    assert SiteRegistry.model_validate([site]).by_id()["a"].name == "甲"
    with pytest.raises(ValidationError, match="appears twice"):
        SiteRegistry.model_validate([site, site])
    with pytest.raises(ValidationError) as exc:
        SiteRegistry.model_validate([{**site, "type": "castle"}])
    assert exc.value.errors()[0]["loc"] == (0, "type")


def test_shipped_files_validate():
    import yaml

    from playbooks.departments import DEPARTMENTS
    from streams.settings import DEMO_SITES

    departments = DepartmentRegistry.model_validate(yaml.safe_load(DEPARTMENTS.read_text("utf-8")))
    assert {"safety_office", "police", "power_supply", "enforcement", "fire_brigade"} <= set(
        departments.by_id())
    sites = SiteRegistry.model_validate(yaml.safe_load(DEMO_SITES.read_text("utf-8"))["sites"]
                                        ).by_id()
    assert sites["jyh-yinfeng-lab-3"].type == "laboratory"
