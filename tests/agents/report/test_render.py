"""The four forms of the after-action review (agents.report.render): the contract's JSON, CSV for
Excel, Markdown and the printable HTML page; and that nothing from an alarm, a reporter or a
department name can become markup, a formula or a new table column in any of them."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from html.parser import HTMLParser

import pytest

from agents.logic.timelines import entry
from agents.report.render import CSV_HEADER, to_csv, to_html, to_json, to_markdown
from agents.report.review import ENTRY_NAMES, review
from agents.report.wording import duration_rows
from schemas import ENTRY_TYPES, Timeline
from tests.agents.report.test_review import INC, NAMES, NOTICE, at, lab_fire, tid

HOSTILE = '<script>alert(1)</script> | `rm -rf` \n "><img src=x onerror=alert(1)>'
REPORTER = '"><img src=x onerror=alert(2)>'
DEPT_NAME = "</title><script>alert(3)</script>"
SITE = '<b onmouseover="alert(4)">实验室</b>'
ODD_DEPT = 'x" onmouseover="alert(5)'


@pytest.fixture(scope="module")
def lab():
    return review(lab_fire(), NAMES)


# --- a small DOM from python's html.parser, strict about nesting ---------------------------

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "area", "base", "source"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []
        self.text_parts: list[str] = []

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()

    def walk(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [n for n in self.walk() if (tag is None or n.tag == tag)
                and (cls is None or cls in n.classes)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def one(self, *args, **kwargs) -> Node:
        found = self.find(*args, **kwargs)
        assert len(found) == 1, (args, kwargs, len(found))
        return found[0]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class Dom(HTMLParser):
    """Parses a page into Nodes and fails on an end tag that does not close the open element."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.at = Node("#root", {}, None)
        self.doctype = None
        self.feed(page)
        self.close()
        assert self.at is self.root, f"unclosed <{self.at.tag}>"

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.at)
        self.at.children.append(node)
        if tag not in VOID:
            self.at = node

    def handle_startendtag(self, tag, attrs):
        self.at.children.append(Node(tag, dict(attrs), self.at))

    def handle_endtag(self, tag):
        assert tag == self.at.tag, f"</{tag}> closes <{self.at.tag}>"
        self.at = self.at.parent

    def handle_data(self, data):
        self.at.children.append(data)


# --- JSON ----------------------------------------------------------------------------------

def _no_nulls(value) -> bool:
    if isinstance(value, dict):
        return all(v is not None and _no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_nulls(v) for v in value)
    return True


def test_json_is_the_contract_form_and_round_trips():
    timeline = lab_fire()
    shuffled = timeline.model_copy(update={"entries": random.Random(7).sample(
        timeline.entries, len(timeline.entries))})
    data = json.loads(to_json(shuffled))
    assert set(data) == {"incident", "entries"}
    times = [e["at"] for e in data["entries"]]
    assert len(times) == 29 and [e.at for e in Timeline.model_validate(data).entries] == sorted(
        e.at for e in timeline.entries)
    assert _no_nulls(data)
    allowed = {"entry_id", "incident_id", "at", "type", "department", "task_id", "alarm_id", "by",
               "detail"}
    assert all(set(e) <= allowed and {"at", "type"} <= set(e) for e in data["entries"])
    assert all(e["type"] in ENTRY_TYPES for e in data["entries"])
    assert data["entries"][0]["at"] == "2023-05-16T14:03:07+08:00"
    back = Timeline.model_validate(data)
    assert back.incident == timeline.incident
    assert {e.entry_id: e for e in back.entries} == {e.entry_id: e for e in timeline.entries}
    assert json.loads(to_json(back)) == data


# --- CSV -----------------------------------------------------------------------------------

def _csv_rows(blob: bytes) -> list[list[str]]:
    assert blob.startswith("\ufeff".encode("utf-8"))
    return list(csv.reader(io.StringIO(blob.decode("utf-8-sig"), newline="")))


def test_csv_has_a_bom_a_header_and_one_row_per_entry(lab):
    blob = to_csv(lab)
    rows = _csv_rows(blob)
    assert rows[0] == CSV_HEADER
    assert len(rows) == 1 + len(lab.entries) and all(len(r) == len(CSV_HEADER) for r in rows)
    assert b"\r\n" in blob
    col = {name: i for i, name in enumerate(CSV_HEADER)}
    first, police_ack = rows[1], rows[9]
    assert first[col["at"]] == "2023-05-16T14:03:07+08:00"
    assert first[col["本地时间"]] == "2023-05-16 14:03:07"
    assert (first[col["type"]], first[col["类型"]]) == ("alarm_received", "收到报警")
    assert (json.loads(first[col["detail"]])["description"]
            == "实验室烟感报警 (仪器线路老化短路引燃易燃物)")
    assert (police_ack[col["类型"]], police_ack[col["部门"]], police_ack[col["by"]]) == (
        "确认接收", "派出所", "巨野河派出所 王警官")
    assert [r[col["type"]] for r in rows[1:]] == [e.type for e in lab.entries]
    assert {r[col["类型"]] for r in rows[1:]} <= set(ENTRY_NAMES.values())


def test_csv_cells_never_start_a_formula():
    t = lab_fire(description='=HYPERLINK("http://evil.example","点我")', reporter="+1-cmd")
    t.entries.append(entry(INC, "task_acknowledged", at(50), task_id=tid("cordon"),
                           department="police", by="@SUM(A1:A9)", alarm_id="-2+3", revision=7))
    rows = _csv_rows(to_csv(review(t, {**NAMES, "police": "=cmd|' /C calc'!A0"})))
    cells = [c for r in rows for c in r]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    assert "'=cmd|' /C calc'!A0" in cells and "'@SUM(A1:A9)" in cells and "'-2+3" in cells
    detail = json.loads(rows[1][CSV_HEADER.index("detail")])
    assert detail["description"].startswith("=HYPERLINK")  # inside JSON it is only data


# --- Markdown ------------------------------------------------------------------------------

def _cells(line: str) -> list[str]:
    """A table row split on its live pipes (a backslash escapes the next character)."""
    cells, cur, i = [], "", 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            cur += line[i:i + 2]
            i += 2
            continue
        if line[i] == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += line[i]
        i += 1
    cells.append(cur)
    return [c.strip() for c in cells[1:-1]]


def _tables(md: str) -> dict[str, list[list[str]]]:
    """Each table under its `## heading`, rows without the header and the rule."""
    found, heading = {}, None
    for line in md.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("|"):
            found.setdefault(heading, []).append(_cells(line))
    for rows in found.values():
        assert len({len(r) for r in rows}) == 1, rows   # every row as wide as the header
        assert set("".join(rows[1])) <= set("-")
    return {h: rows[2:] for h, rows in found.items()}


def test_markdown_has_its_tables_with_the_right_rows(lab):
    md = to_markdown(lab)
    assert md.startswith("# 事后倒查报告：银丰国际生物城 3号实验室\n")
    tables = _tables(md)
    assert list(tables) == ["基本情况", "关键时长", "各部门处置情况", "事件记录"]
    assert len(tables["基本情况"]) == 13
    durations = {(r[0], r[1]): r[2] for r in tables["关键时长"]}
    assert len(tables["关键时长"]) == len(duration_rows(lab)) == 19
    assert durations[("报警 → 首次派发", "")] == "2 s"
    assert durations[("派发 → 确认接收", "供电所")] == "6 min 58 s"
    assert durations[("派发 → 处置完成", "安委会办公室（督办）")] == "2 min 00 s"
    assert durations[("立案 → 结案", "")] == "45 min 00 s"
    assert [r[0] for r in tables["各部门处置情况"]] == [
        "安委会办公室", "安委会办公室", "派出所", "供电所", "综合行政执法", "急救中心 (120)"]
    assert "确认接收超时 2 min 00 s" in tables["各部门处置情况"][3]
    log = tables["事件记录"]
    assert len(log) == len(lab.entries) == 29
    assert [r[1] for r in log] == [ENTRY_NAMES[e.type] for e in lab.entries]


def test_a_pipe_backtick_or_newline_in_a_description_stays_in_its_cell():
    md = to_markdown(review(lab_fire(description="A|B `code` \\| C\nsecond line\r\n| D"), NAMES))
    log = _tables(md)["事件记录"]
    assert len(log) == 29 and all(len(r) == 7 for r in log)
    assert "A\\|B \\`code\\` \\\\\\| C second line \\| D" in log[0][6]
    assert "\nsecond" not in md and "`code`" not in md


# --- HTML ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def page(lab):
    return to_html(lab)


@pytest.fixture(scope="module")
def dom(page):
    return Dom(page).root


def test_html_is_one_self_contained_page(page, dom):
    assert page.startswith("<!DOCTYPE html>")
    assert dom.one("html").attrs["lang"] == "zh-CN"
    assert dom.find("meta", charset="utf-8")
    style = dom.one("style").text()
    assert "@page { size: A4; margin: 12mm; }" in style
    assert '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Microsoft YaHei", ' \
           '"PingFang SC", sans-serif' in style
    assert "<script" not in page.lower() and "javascript:" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    for node in dom.walk():
        assert not {"src", "href", "xlink:href", "srcset"} & set(node.attrs), node.tag
        assert not [a for a in node.attrs if a.startswith("on")], node.tag
    policy = dom.one("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in policy and "script-src" not in policy


def test_html_swimlanes_have_a_lane_per_department_and_a_bar_per_task(lab, dom):
    svg = dom.one("svg", id="swimlanes")
    assert re.fullmatch(r"0 0 720 \d+", svg.attrs["viewbox"])
    lanes = svg.find("g", cls="lane")
    assert [g.attrs["data-department"] for g in lanes] == [
        "safety_office", "police", "power_supply", "enforcement", "medical"]
    assert [g.find("title")[0].text() for g in lanes] == [lane.name for lane in lab.lanes]
    bars = {g.attrs["data-department"]: [b.attrs["data-task-id"] for b in g.find("rect", "bar")]
            for g in lanes}
    assert bars == {"safety_office": [tid("lead"), NOTICE], "police": [tid("cordon")],
                    "power_supply": [tid("isolate_power")], "enforcement": [tid("investigate")],
                    "medical": [tid("medical")]}
    assert "notice" in svg.one("rect", "bar", data_task_id=NOTICE).classes
    overdue = svg.find("rect", "overdue")
    assert len(overdue) == 1 and overdue[0] in lanes[2].walk()
    assert overdue[0].attrs["data-deadline"] == "ack"
    marks = svg.find(cls="escalation")
    assert len(marks) == 1 and marks[0] in lanes[2].walk()
    assert "通知 安委会办公室" in marks[0].text()
    assert len(svg.find("circle", "alarm")) == 2
    assert [r.attrs["data-level"] for r in svg.find("rect", "level")] == ["II", "I"]
    ticks = [t.text() for t in svg.find("text", "tick")]
    assert ticks[:2] == ["14:05", "14:10"] and ticks[-1] == "14:45"   # Beijing time


def test_html_durations_and_log(lab, dom):
    table = dom.one("table", id="durations")
    got = {tr.attrs["data-key"]: tr.find("td")[-1].text() for tr in table.find("tr")
           if "data-key" in tr.attrs}
    assert got == {key: value for key, _, _, value in duration_rows(lab)}
    assert got["alarm_to_dispatch"] == "2 s" and got["total"] == "45 min 00 s"
    assert got[f"ack:{tid('isolate_power')}"] == "6 min 58 s"
    assert got[f"complete:{tid('cordon')}"] == "29 min 58 s"
    assert got["overdue_tasks"] == "1" and got["escalations"] == "1"
    assert "late" in table.one("tr", data_key=f"ack:{tid('isolate_power')}").classes
    log = dom.one("table", id="log").find("tr")[1:]
    assert [tr.attrs["data-type"] for tr in log] == [e.type for e in lab.entries]
    assert log[0].find("td")[0].text() == "14:03:07"
    assert log[0].find("td")[1].text() == "收到报警"
    assert len(dom.one("table", id="departments").find("tr")) == 1 + 6


def _hostile():
    t = lab_fire(description=HOSTILE, reporter=REPORTER, site_name=SITE)
    t.entries.append(entry(INC, "task_dispatched", at(20), task_id=f"{INC}.odd",
                           department=ODD_DEPT, revision=1,
                           detail={"step": "odd", "action": "</text><script>alert(6)</script>"}))
    return review(t, {**NAMES, "police": DEPT_NAME})


def test_hostile_text_is_only_text_in_html():
    page = to_html(_hostile())
    dom = Dom(page).root
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert not dom.find("script") and not dom.find("img") and not dom.find("b")
    for node in dom.walk():
        assert not [a for a in node.attrs if a.startswith("on")], (node.tag, node.attrs)
    text = dom.text()
    for hostile in ("<script>alert(1)</script>", REPORTER, DEPT_NAME, SITE,
                    "</text><script>alert(6)</script>"):
        assert hostile in text
    assert dom.one("g", cls="lane", data_department=ODD_DEPT)
    assert dom.one("g", cls="lane", data_department="police").find("title")[0].text() \
        == DEPT_NAME
    assert dom.one("head").one("title").text().startswith("事后倒查报告 · " + SITE)


def test_hostile_text_is_only_text_in_markdown_and_csv():
    r = _hostile()
    md = to_markdown(r)
    assert "<" not in md and ">" not in md.replace("→", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "&lt;img src=x" in md
    tables = _tables(md)
    assert all(len(row) == 7 for row in tables["事件记录"])
    assert len(tables["事件记录"]) == len(r.entries)
    rows = _csv_rows(to_csv(r))
    assert all(len(row) == len(CSV_HEADER) for row in rows) and len(rows) == 1 + len(r.entries)
    detail = json.loads(rows[1][CSV_HEADER.index("detail")])
    assert detail["description"] == HOSTILE                 # data, verbatim, one cell
    assert DEPT_NAME in [row[CSV_HEADER.index("部门")] for row in rows]


def test_a_bare_or_long_timeline_still_renders_in_every_form():
    full = lab_fire(closed=False)
    bare = Timeline(incident=full.incident, entries=[])
    days = Timeline(incident=full.incident, entries=[*full.entries, entry(
        INC, "task_rejected", at(60 * 50), task_id=tid("investigate"), department="enforcement",
        by="执法队", revision=2, detail={"status": "rejected", "note": "非本部门职责"}),
        entry(INC, "delivery_failed", at(60 * 50), by="whistle", key="fb",
              detail={"target": "feedback", "attempts": 5, "error": "HTTP 500"})])
    for timeline, lanes in ((bare, 0), (days, 4)):
        r = review(timeline, NAMES)
        dom = Dom(to_html(r)).root
        assert len(dom.find("g", cls="lane")) == lanes
        assert len(dom.one("table", id="log").find("tr")) == 1 + len(timeline.entries)
        assert len(_tables(to_markdown(r))["事件记录"]) == len(timeline.entries)
        assert len(_csv_rows(to_csv(r))) == 1 + len(timeline.entries)
        assert Timeline.model_validate_json(to_json(timeline)).entries == sorted(
            timeline.entries, key=lambda e: e.at)
    ticks = [t.text() for t in Dom(to_html(review(days, NAMES))).root.find("text", "tick")]
    assert ticks and all(re.fullmatch(r"05-1[678] \d\d:\d\d", t) for t in ticks)
    svg = Dom(to_html(review(days, NAMES))).root.one("svg", id="swimlanes")
    assert "rejected" in svg.one("rect", "bar", data_task_id=tid("investigate")).classes
    top = [m for m in svg.find(cls="escalation") if not any(
        m in g.walk() for g in svg.find("g", cls="lane"))]
    assert len(top) == 1 and "推送至 feedback 失败（5 次）：HTTP 500" in top[0].text()
