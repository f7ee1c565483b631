"""Matching, table-driven over inline YAML playbooks."""

from datetime import datetime
from pathlib import Path
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest

from playbooks import Facts, PlaybookError, PlaybookSet, load_playbooks, match
from playbooks.match import explain
from playbooks.rules import overlap
from schemas import PlaybookMatch

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
    "gas-a.yaml": "id: gas-a\nversion: 1\ntitle: 燃气甲\nlevel: III\n"
                  "match: {kinds: [gas]}\n" + STEP,
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


def test_equal_rank_that_can_fit_one_alarm_is_an_error_not_a_coin_toss(tmp_path):
    files = {k: v for k, v in SET.items() if k in ("fallback.yaml", "gas-a.yaml")}
    files["gas-0.yaml"] = SET["gas-a.yaml"].replace("id: gas-a", "id: gas-0")
    with pytest.raises(PlaybookError) as exc:
        load_playbooks(write(tmp_path, files))
    (problem,) = exc.value.problems
    assert problem.file.endswith("gas-a.yaml") and problem.line == 5
    assert "'gas-0'" in problem.message and "priority" in problem.message


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


FALLBACK = {"fallback.yaml": SET["fallback.yaml"]}


def one(tmp_path, match_yaml: str, **extra: str) -> "PlaybookSet":
    text = "id: it\nversion: 1\ntitle: t\nlevel: III\nmatch:\n" + match_yaml + STEP
    return load_playbooks(write(tmp_path, {**FALLBACK, "it.yaml": text, **extra}))


SAT_NIGHT = datetime(2024, 6, 1, 23, 30, tzinfo=ZoneInfo("Asia/Shanghai"))   # a Saturday
MON_NOON = datetime(2024, 6, 3, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.mark.parametrize("rule,facts,fits_", [
    ("  sites: [lab-3]\n", dict(site_id="lab-3"), True),
    ("  sites: [lab-3]\n", dict(site_id="lab-4"), False),
    ("  grids: [JYH-G2]\n", dict(grid="JYH-G2"), True),
    ("  grids: [JYH-G2]\n", dict(grid=""), False),
    ("  levels: [I, II]\n", dict(level="II"), True),
    ("  levels: [I, II]\n", dict(level=None), False),
    ('  hours: ["22:00-06:00"]\n', dict(at=SAT_NIGHT), True),          # wraps past midnight
    ('  hours: ["22:00-06:00"]\n', dict(at=MON_NOON), False),
    ('  hours: ["22:00-06:00"]\n', dict(at=None), False),
    ('  hours: ["08:00-18:00"]\n  timezone: UTC\n', dict(at=MON_NOON), False),  # 04:00 UTC
    ("  weekdays: [sat, sun]\n", dict(at=SAT_NIGHT), True),
    ("  weekdays: [sat, sun]\n", dict(at=MON_NOON), False),
    ("  attributes: {floors: {gte: 10}}\n", dict(attributes={"floors": 18}), True),
    ("  attributes: {floors: {gte: 10}}\n", dict(attributes={"floors": 6}), False),
    ("  attributes: {floors: {gte: 10}}\n", dict(attributes={"floors": "tall"}), False),
    ("  attributes: {floors: {gte: 10}}\n", dict(attributes={}), False),
    ("  attributes: {occupants: elderly}\n", dict(attributes={"occupants": "elderly"}), True),
    ("  attributes: {use: {in: [fuel, chemicals]}}\n", dict(attributes={"use": "fuel"}), True),
    ("  attributes: {use: {not_in: [office]}}\n", dict(attributes={"use": "office"}), False),
    ("  attributes: {sprinklers: {exists: false}}\n", dict(attributes={}), True),
    ("  attributes: {sprinklers: {exists: false}}\n", dict(attributes={"sprinklers": 1}), False),
])
def test_each_condition(tmp_path, rule, facts, fits_):
    pset = one(tmp_path, rule)
    winner = match(pset, Facts(kind="smoke", **facts)).winner.playbook.id
    assert winner == ("it" if fits_ else "fallback")


def test_specificity_weights_a_named_site_above_a_site_type(tmp_path):
    site_plan = ("id: lab3-plan\nversion: 1\ntitle: 3号实验室专项\nlevel: I\n"
                 "match: {sites: [jyh-yinfeng-lab-3]}\n" + STEP)
    pset = load_playbooks(write(tmp_path, {**SET, "lab3.yaml": site_plan}))
    facts = Facts("smoke", "alarm", "laboratory", site_id="jyh-yinfeng-lab-3")
    assert match(pset, facts).winner.playbook.id == "lab3-plan"


def test_explain_says_why_each_lost(tmp_path):
    pset = load_playbooks(write(tmp_path, SET))
    ranked = explain(pset, Facts("smoke", "alarm", "laboratory"))
    assert ranked[0].won and ranked[0].playbook.playbook.id == "lab-smoke-alarm"
    why = {c.playbook.playbook.id: c.why for c in ranked[1:]}
    assert why["lab-fire"].startswith("fits, but ranks lower (specificity 2")
    assert why["gas-a"] == "does not fit: kind smoke is not one of gas"
    assert why["fallback"].startswith("the fallback only takes")
    assert len(ranked) == len(SET)


@pytest.mark.parametrize("a,b,meet", [
    ({"kinds": ["gas"]}, {"kinds": ["smoke"]}, False),
    ({"kinds": ["gas"]}, {"site_types": ["factory"]}, True),
    ({"hours": ["08:00-12:00"]}, {"hours": ["12:00-18:00"]}, False),
    ({"hours": ["22:00-06:00"]}, {"hours": ["05:00-07:00"]}, True),
    ({"weekdays": ["sat"]}, {"weekdays": ["sun"]}, False),
    ({"attributes": {"use": "fuel"}}, {"attributes": {"use": "office"}}, False),
    ({"attributes": {"use": {"in": ["fuel", "oil"]}}}, {"attributes": {"use": "oil"}}, True),
    ({"attributes": {"floors": {"gte": 10}}}, {"attributes": {"floors": {"lt": 5}}}, True),
])
def test_overlap(a, b, meet):
    assert overlap(PlaybookMatch.model_validate(a), PlaybookMatch.model_validate(b)) is meet


@pytest.mark.parametrize("steps,message", [
    ("  - {id: a, department: police, action: x, ack_within: 1m, complete_within: 1h, "
     "after: [b]}\n",
     "waits for 'b', which is no step"),
    ("  - {id: a, department: police, action: x, ack_within: 1m, complete_within: 1h, "
     "after: [b]}\n"
     "  - {id: b, department: police, action: x, ack_within: 1m, complete_within: 1h, "
     "after: [a]}\n",
     "in a circle: a -> b -> a"),
])
def test_step_dependencies_are_checked(tmp_path, steps, message):
    text = "id: it\nversion: 1\ntitle: t\nlevel: III\nmatch: {kinds: [gas]}\nsteps:\n" + steps
    with pytest.raises(PlaybookError) as exc:
        load_playbooks(write(tmp_path, {**FALLBACK, "it.yaml": text}))
    assert message in str(exc.value) and "it.yaml:7: steps.0.after:" in str(exc.value)


def brute_force(pset: PlaybookSet, facts: Facts) -> str:
    """The definition, without indexes: the best-ranked playbook whose rule fits."""
    from playbooks.rules import fits
    from playbooks.rules import rank as _rank

    fitting = [lp for lp in pset.ranked if fits(lp.playbook.match, facts) is None]
    return min(fitting, key=_rank).playbook.id if fitting else pset.fallback.playbook.id


@pytest.mark.parametrize("size", [0, 60, 600])
def test_the_indexed_matcher_agrees_with_the_definition(size):
    import random

    from playbooks import LIBRARY
    from playbooks.bench import _facts, synthetic_set

    pset = synthetic_set(size, max(50, size // 2)) if size else load_playbooks(LIBRARY)
    rng = random.Random(size)
    for _ in range(3000):
        facts = _facts(rng, size, max(50, size // 2))
        if not size:  # the library: real site types, grids and a level now and then
            facts = Facts(**{**facts.__dict__, "grid": rng.choice(["JYH-G2", "CQ-03", ""]),
                             "level": rng.choice([None, "I", "III"]),
                             "attributes": rng.choice([{}, {"floors": 18}, {"floors": 3}])})
        assert match(pset, facts).winner.playbook.id == brute_force(pset, facts), facts
