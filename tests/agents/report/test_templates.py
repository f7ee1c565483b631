"""The HTML templates (agents/report/templates): a department name, a task's action and a note
that try to close the element they stand in and open a script or an SVG with a handler stay
text, in the after-action report and in the period report alike; and a template never renders
a value it was not given as an empty string."""

from __future__ import annotations

from datetime import date

import jinja2
import pytest

from agents.logic.timelines import entry
from agents.report.period import period_stats
from agents.report.period_report import period_html
from agents.report.report_html import report, swimlanes, template
from agents.report.review import review
from tests.agents.report.test_render import Dom
from tests.agents.report.test_review import INC, NAMES, at, lab_fire

ATTACK = '</title><script>alert(1)</script>"><svg onload=x>'
DEPT, ACTION, NOTE = "部门" + ATTACK, "任务" + ATTACK, "备注" + ATTACK


def _hostile_timeline():
    t = lab_fire()
    task = f"{INC}.evil"
    t.entries += [
        entry(INC, "task_dispatched", at(20), task_id=task, department="evil", revision=1,
              detail={"step": "evil", "action": ACTION}),
        entry(INC, "task_rejected", at(21), task_id=task, department="evil", by=DEPT,
              revision=2, detail={"status": "rejected", "note": NOTE}),
        entry(INC, "level_changed", at(22), by=DEPT, revision=6,
              detail={"from": "I", "to": "II", "note": NOTE}),
    ]
    return t.model_copy(update={"incident": t.incident.model_copy(update={"kind": ATTACK})})


def _assert_inert(page: str, svgs: set[str]) -> Dom:
    """Nothing of the attack is markup: no script, no SVG but ours, no handler, and the
    text of it only ever escaped."""
    dom = Dom(page).root                       # also fails on any element closed too early
    assert "<script" not in page.lower() and "<svg onload" not in page.lower()
    assert "</title><script>" not in page and '"><svg' not in page
    assert "&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not dom.find("script")
    assert {s.attrs.get("id") for s in dom.find("svg")} == svgs
    for node in dom.walk():
        assert not [a for a in node.attrs if a.startswith("on")], (node.tag, node.attrs)
    return dom


def test_a_hostile_department_action_and_note_are_only_text_in_the_report():
    r = review(_hostile_timeline(), {**NAMES, "evil": DEPT})
    page = report(r)
    dom = _assert_inert(page, {"swimlanes"})
    lane = dom.one("g", cls="lane", data_department="evil")
    assert lane.find("title")[0].text() == DEPT                       # the lane's name
    bar = lane.one("rect", "bar", data_task_id=f"{INC}.evil")
    assert bar.one("title").text().startswith(f"{DEPT}：{ACTION}\n")   # the bar's tooltip
    assert "rejected" in bar.classes
    level = dom.find("rect", "level")[-1].one("title").text()
    assert level.endswith(f" · {DEPT}：{NOTE}")                        # the level's tooltip
    log = {tr.attrs["data-type"]: [td.text() for td in tr.find("td")]
           for tr in dom.one("table", id="log").find("tr")[1:]}
    assert log["task_rejected"][2] == DEPT and log["task_rejected"][4] == DEPT
    assert NOTE in log["task_rejected"][5] and NOTE in log["level_changed"][5]
    task = dom.one("table", id="departments").one("tr", data_task_id=f"{INC}.evil")
    assert [td.text() for td in task.find("td")][:2] == [DEPT, ACTION]
    assert swimlanes(r) in page                                # the chart as the page has it


def test_a_hostile_department_action_and_note_are_only_text_in_the_period_report():
    stats = period_stats([_hostile_timeline()], date(2023, 5, 16), date(2023, 5, 17))
    names = {**NAMES, "evil": DEPT}
    page = period_html(stats, names)
    dom = _assert_inert(page, {"chart-kinds", "chart-ack", "chart-breach"})
    kinds = dom.one("svg", id="chart-kinds").find("text")
    assert kinds[0].text() == ATTACK                           # the incident's kind, a label
    ack = [t.text() for t in dom.one("svg", id="chart-ack").find("text")]
    assert DEPT in ack
    rows = [[td.text() for td in tr.find("td")]
            for tr in dom.one("table", id="departments").find("tr")[1:]]
    assert ["evil", DEPT] in [r[:2] for r in rows]


@pytest.mark.parametrize("name", ["report.html.j2", "swimlanes.svg.j2", "period.html.j2"])
def test_a_value_the_template_is_not_given_is_an_error(name):
    with pytest.raises(jinja2.UndefinedError):
        template(name).render()
