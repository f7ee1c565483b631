"""The campaign playbooks: the four shipped (seed 000) load with the real departments, and a bad
file is refused with file:line naming the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from playbooks.campaigns import CAMPAIGNS, load_campaigns, parse_campaign
from playbooks.departments import load_departments
from playbooks.load import PlaybookError

DEPARTMENTS = set(load_departments().by_id())


def test_the_four_campaigns_of_the_seed_load_with_the_real_departments():
    campaigns = load_campaigns(CAMPAIGNS, DEPARTMENTS)
    titles = {cid: lc.playbook.title for cid, lc in campaigns.items()}
    assert titles == {"refined-oil": "成品油“自流黑”专项整治", "gas-safety": "燃气安全专项整治",
                      "alcohol-fuel": "醇基燃料专项整治",
                      "rural-self-built-houses": "农村自建房专项整治"}
    oil = campaigns["refined-oil"].playbook
    assert "fuel_station" in oil.targets.types
    assert [s.department for s in oil.steps] == ["police", "safety_office", "enforcement",
                                                 "market_regulation", "police", "power_supply"]
    assert {s.department for s in campaigns["rural-self-built-houses"].playbook.steps} == {
        "district_housing", "grid_worker", "community", "enforcement"}
    for lc in campaigns.values():
        assert lc.source.endswith(f"{lc.playbook.id}.yaml")
        assert len(lc.content_hash) == 12
        assert all(s.within >= timedelta(days=7) for s in lc.playbook.steps)


GOOD = """\
id: {id}
version: 1
title: 燃气安全专项整治
targets:
  types: [small_venue]
steps:
  - department: gas_utility
    action: 入户安检
    within: 14d
"""


@pytest.mark.parametrize(("text", "where", "words"), [
    (GOOD.replace("  types: [small_venue]", "  types: []"), 5,
     "targets: Value error, a campaign must name its sites: by types, grids or sites"),
    (GOOD.replace("within: 14d", "within: 12h"), 9,
     "steps.0.within: Value error, deadlines of a campaign are in days"),
    (GOOD.replace("gas_utility", "housing_bureau"), 7,
     "steps.0.department: 'housing_bureau' is not a configured department"),
    (GOOD.replace("    action: 入户安检\n", ""), 7, "steps.0.action: Field required"),
    (GOOD.replace("types: [small_venue]", "types: [small_venue"), 6, "not valid YAML"),
    ("- a list\n", 1, "a campaign playbook is a YAML mapping"),
])
def test_a_bad_campaign_names_file_line_and_field(tmp_path: Path, text, where, words):
    (tmp_path / "bad.yaml").write_text(text.format(id="gas"), encoding="utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_campaigns(tmp_path, DEPARTMENTS)
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith(f"{tmp_path / 'bad.yaml'}:{where}: ") and words in p
               for p in problems), problems


def test_a_campaign_id_used_twice_is_refused_at_the_second_file(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(GOOD.format(id="gas"), encoding="utf-8")
    (tmp_path / "b.yaml").write_text("# the same again\n" + GOOD.format(id="gas"),
                                     encoding="utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_campaigns(tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'b.yaml'}:2: id: campaign id 'gas' is also used by {tmp_path / 'a.yaml'}"]


def test_every_problem_of_a_directory_is_reported_at_once(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(GOOD.format(id="a").replace("14d", "1h"), "utf-8")
    (tmp_path / "b.yml").write_text(GOOD.format(id="b").replace("gas_utility", "x"), "utf-8")
    (tmp_path / "c.yaml").write_bytes(b"id: \xff\n")
    with pytest.raises(PlaybookError) as caught:
        load_campaigns(tmp_path, DEPARTMENTS)
    assert sorted(Path(p.file).name for p in caught.value.problems) == ["a.yaml", "b.yml",
                                                                        "c.yaml"]


def test_without_departments_any_department_id_passes_and_the_hash_follows_the_bytes():
    one = parse_campaign(GOOD.format(id="gas").replace("gas_utility", "x"), "one.yaml")
    assert one.playbook.steps[0].department == "x"
    assert one.content_hash == parse_campaign(GOOD.format(id="gas").replace(
        "gas_utility", "x"), "two.yaml").content_hash
    assert one.content_hash != parse_campaign(GOOD.format(id="gas"), "one.yaml").content_hash
    assert one.line("steps", 0, "within") == 9


def test_a_missing_directory_is_a_problem_not_an_empty_set(tmp_path: Path):
    with pytest.raises(PlaybookError, match="not a directory"):
        load_campaigns(tmp_path / "nowhere")
