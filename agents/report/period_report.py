"""The period report in Markdown, CSV (UTF-8 with BOM) and one self-contained HTML file with
inline SVG bar charts (pure; the HTML is `templates/period.html.j2`, autoescaped, so every
value from alarms is escaped and nothing is marked safe).

    >>> html = period_html(period_stats(timelines, start, end), names)
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta

from agents.report.period import PeriodStats
from agents.report.render import csv_cell, md_cell
from agents.report.report_html import template
from agents.report.review import format_duration

__all__ = ["BarChart", "BarRow", "bar_chart", "period_csv", "period_html", "period_markdown",
           "rows"]

_RATE = "{:.0%}".format


def rows(stats: PeriodStats, names: dict[str, str]) -> dict[str, list[list[str]]]:
    """The report's tables, by section, as text cells (header row first)."""
    depts = sorted(stats.departments.values(), key=lambda d: (-d.tasks, d.department))
    return {
        "summary": [["measure", "value"],
                    ["incidents", str(stats.incidents)], ["closed", str(stats.closed)],
                    ["alarms", str(stats.alarms)], ["escalations", str(stats.escalations)],
                    ["drills 演练 (not in these figures)", str(stats.drills)]],
        "by_kind": [["kind", "incidents"], *([k, str(n)] for k, n in stats.by_kind.most_common())],
        "by_site_type": [["site_type", "incidents"],
                         *([k, str(n)] for k, n in stats.by_site_type.most_common())],
        "by_level": [["level", "incidents"],
                     *([k, str(stats.by_level[k])] for k in sorted(stats.by_level))],
        "departments": [
            ["department", "name", "tasks", "response rate 响应率", "resolution rate 解决率",
             "deadline breach rate 超时率", "ack median", "ack p90", "completion median",
             "completion p90"],
            *([d.department, names.get(d.department, d.department), str(d.tasks),
               _RATE(d.response_rate), _RATE(d.resolution_rate), _RATE(d.breach_rate),
               format_duration(d.median_ack), format_duration(d.p90_ack),
               format_duration(d.median_completion), format_duration(d.p90_completion)]
              for d in depts)],
        "false_alarms_by_site": [["site_id", "false alarms"],
                                 *([k, str(n)] for k, n in
                                   stats.false_alarms_by_site.most_common())],
        "noisiest_devices": [["device_id", "alarms"],
                             *([k, str(n)] for k, n in stats.noisiest_devices())],
    }


_TITLES = {"summary": "概况 Summary", "by_kind": "按报警类型 By kind",
           "by_site_type": "按场所类型 By site type", "by_level": "按级别 By level",
           "departments": "部门响应 Departments (接诉即办)",
           "false_alarms_by_site": "误报场所 False alarms by site",
           "noisiest_devices": "报警最多的设备 Noisiest devices"}


def _span(stats: PeriodStats) -> str:
    """The period as people say it: first and last day, both included."""
    return f"{stats.start.isoformat()} – {(stats.end - timedelta(days=1)).isoformat()}"


def period_markdown(stats: PeriodStats, names: dict[str, str]) -> str:
    """For pasting into a written report."""
    out = [f"# 事件统计报告 {_span(stats)}", "",
           "统计范围：按立案时间（北京时间），首尾两日均含。Incidents opened in the period "
           "(Asia/Shanghai dates, both days included).", ""]
    for section, table in rows(stats, names).items():
        out += [f"## {_TITLES[section]}", ""]
        header, *body = table
        out.append("| " + " | ".join(md_cell(c) for c in header) + " |")
        out.append("|" + "---|" * len(header))
        out += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in body]
        if not body:
            out.append("| " + " | ".join("—" for _ in header) + " |")
        out.append("")
    return "\n".join(out)


def period_csv(stats: PeriodStats, names: dict[str, str]) -> bytes:
    """Long form (section, then the section's own columns), UTF-8 with a BOM for Excel."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for section, table in rows(stats, names).items():
        header, *body = table
        writer.writerow(["section", *header])
        writer.writerows([section, *(csv_cell(c) for c in r)] for r in body)
        writer.writerow([])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


@dataclass(frozen=True)
class BarRow:
    """One bar of a chart: its label and value text on `baseline`, the bar from `top`, `width`
    long, the value text at `value_x` (viewBox units): `BarRow("smoke", "3", 21, 8, 400, 596)`."""

    label: str
    text: str
    baseline: int
    top: int
    width: int
    value_x: int


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart for `period.html.j2`, its bars scaled to the largest value;
    labels end at `label_x`, bars start at `bar_x`: `bar_chart("…", items, "chart-kinds")`."""

    id: str
    title: str
    height: int
    rows: list[BarRow]
    width: int = 640
    label_x: int = 180
    bar_x: int = 190
    bar_h: int = 18


def bar_chart(title: str, items: list[tuple[str, float, str]], chart_id: str) -> BarChart | None:
    """The chart of (label, value, value text) items, or None when there is nothing to draw."""
    if not items:
        return None
    top = max(v for _, v, _ in items) or 1.0
    bars = []
    for i, (label, value, text) in enumerate(items):
        y, w = 5 + 26 * i, int(400 * value / top)
        bars.append(BarRow(label, text, y + 16, y + 3, max(w, 1), 196 + w))
    return BarChart(chart_id, title, 26 * len(items) + 10, bars)


def period_html(stats: PeriodStats, names: dict[str, str]) -> str:
    """One self-contained file: no script, no network; charts where people would rather look.
    The markup is `templates/period.html.j2`, every value escaped there."""
    depts = sorted(stats.departments.values(), key=lambda d: (-d.tasks, d.department))
    charts = [
        bar_chart("事件数（按报警类型） Incidents by kind",
                  [(k, n, str(n)) for k, n in stats.by_kind.most_common()], "chart-kinds"),
        bar_chart("确认接收用时中位数 Median time to acknowledge",
                  [(names.get(d.department, d.department),
                    d.median_ack.total_seconds() if d.median_ack else 0.0,
                    format_duration(d.median_ack)) for d in depts], "chart-ack"),
        bar_chart("超时率 Deadline breach rate",
                  [(names.get(d.department, d.department), d.breach_rate, _RATE(d.breach_rate))
                   for d in depts], "chart-breach"),
    ]
    tables = [(section, _TITLES[section], header, data)
              for section, (header, *data) in rows(stats, names).items()]
    return template("period.html.j2").render(span=_span(stats), stats=stats,
                                             charts=[c for c in charts if c], tables=tables)
