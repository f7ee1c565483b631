"""Matching, table-driven over inline YAML playbooks."""

from pathlib import Path
from textwrap import dedent

import pytest

from playbooks import Facts, PlaybookError, load_playbooks, match

STEP = """
steps:
  - {id: s, department: safety_office, action: 处置, ack_within: 1m, complete_within: 1h}
"""

SET = {
    "fallback.yaml": "id: fallback\nversion: 1\ntitle: 兜底\nlevel: IV\nfallback: true\n" + STEP,
    "any-fire.yaml": "id: any-fire\nversion: 1\ntitle: 火\nlevel: III\n"
                     "match: {kinds: [smoke, fire_report]}\n" + STEP,
    "lab-fire.yaml": "id: lab-fire\nversion: 2\ntitle: 实验室火灾\nlevel: II\n"
                     "match: {kinds: [smoke, fire_report], site_types: [laboratory]}\n" + STEP,
    "lab-smoke-alarm.yaml": "id: lab-smoke-alarm\nversion: 1\ntitle: 实验室烟感\nlevel: II\n"
                            "match: {kinds: [smoke], signals: [alarm], site_types: [laboratory]}\n"
                            + STEP,
    "gas-a.yaml": "id: gas-a\nversion: 1\ntitle: 燃气甲\nlevel: III\nmatch: {kinds: [gas]}\n" + STEP,
    "gas-b.yaml": "id: gas-b\nversion: 1\ntitle: 燃气乙\nlevel: III\npriority: 5\n"
                  "match: {kinds: [gas]}\n" + STEP,
}


def write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(dedent(text), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("kind,signal,site_type,winner", [
    ("smoke", "alarm", "laboratory", "lab-smoke-alarm"),   # three lists beat two
    ("smoke", "trouble", "laboratory", "lab-fire"),        # signal list excludes trouble
    ("fire_report", "alarm", "laboratory", "lab-fire"),
    ("smoke", "alarm", "residential", "any-fire"),         # site type list excludes it
    ("gas", "alarm", "residential", "gas-b"),              # equal specificity: priority wins
    ("alien_slime", "alarm", "laboratory", "fallback"),    # unknown kind: never dropped
    ("heat", "alarm", "unknown", "fallback"),
])
def test_most_specific_then_priority_then_fallback(tmp_path, kind, signal, site_type, winner):
    pset = load_playbooks(write(tmp_path, SET))
    result = match(pset, Facts(kind=kind, signal=signal, site_type=site_type))
    assert result.winner.playbook.id == winner
    assert ("fallback" in result.why) == (winner == "fallback")


def test_equal_rank_is_decided_by_id_not_by_file_order(tmp_path):
    files = {k: v for k, v in SET.items() if k in ("fallback.yaml", "gas-a.yaml")}
    files["gas-0.yaml"] = SET["gas-a.yaml"].replace("id: gas-a", "id: gas-0")
    pset = load_playbooks(write(tmp_path, files))
    assert match(pset, Facts("gas", "alarm", "factory")).winner.playbook.id == "gas-0"


def test_versions_and_content_hashes_are_recorded(tmp_path):
    pset = load_playbooks(write(tmp_path, SET))
    lab = pset.by_id["lab-fire"]
    assert lab.playbook.version == "2"
    assert len(lab.content_hash) == 12
    (tmp_path / "lab-fire.yaml").write_text(SET["lab-fire.yaml"] + "# changed\n", "utf-8")
    assert load_playbooks(tmp_path).by_id["lab-fire"].content_hash != lab.content_hash


@pytest.mark.parametrize("files,expected", [
    ({"fallback.yaml": SET["fallback.yaml"], "bad.yaml": "id: bad\nversion: 1\ntitle: x\n"
      "level: V\n" + STEP}, ["bad.yaml:4: level:"]),
    ({"fallback.yaml": SET["fallback.yaml"], "bad.yaml": "id: bad\nversion: 1\ntitle: x\n"
      "level: II\nsteps:\n  - {id: s, department: police, action: a, ack_within: soon, "
      "complete_within: 1h}\n"}, ["bad.yaml:6: steps.0.ack_within:"]),
    ({"fallback.yaml": SET["fallback.yaml"], "bad.yaml": "id: bad\n  version: [\n"},
     ["bad.yaml:2: not valid YAML"]),
    ({"any-fire.yaml": SET["any-fire.yaml"]}, ["(set):0: exactly one fallback playbook is needed"]),
    ({"fallback.yaml": SET["fallback.yaml"],
      "fallback2.yaml": SET["fallback.yaml"].replace("id: fallback", "id: other")},
     ["(set):0: exactly one fallback"]),
    ({"fallback.yaml": SET["fallback.yaml"], "a.yaml": SET["gas-a.yaml"],
      "b.yaml": SET["gas-a.yaml"]}, ["b.yaml:1: playbook id 'gas-a' is also used by"]),
])
def test_problems_name_file_and_line(tmp_path, files, expected):
    with pytest.raises(PlaybookError) as exc:
        load_playbooks(write(tmp_path, files))
    lines = [str(p).replace(str(tmp_path) + "/", "") for p in exc.value.problems]
    for want in expected:
        assert any(line.startswith(want) for line in lines), (want, lines)


def test_the_shipped_library_loads_and_covers_the_seed_cases():
    from playbooks import LIBRARY

    pset = load_playbooks(LIBRARY)
    assert pset.fallback.playbook.id == "fallback"
    lab = match(pset, Facts("smoke", "alarm", "laboratory")).winner.playbook
    assert lab.id == "laboratory-fire"
    assert {"safety_office", "police", "power_supply", "enforcement", "fire_brigade"} <= {
        s.department for s in lab.steps}
    assert match(pset, Facts("smoke", "alarm", "residential")).winner.playbook.id == \
        "residential-smoke"
