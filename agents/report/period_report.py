"""The period report in Markdown, CSV (UTF-8 with BOM) and one self-contained HTML file with
inline SVG bar charts (pure string building; every value from alarms is escaped).

    >>> html = period_html(period_stats(timelines, start, end), names)
"""

from __future__ import annotations

import csv
import html
import io
from datetime import timedelta

from agents.report.period import PeriodStats
from agents.report.render import csv_cell, md_cell
from agents.report.review import format_duration

__all__ = ["period_csv", "period_html", "period_markdown", "rows"]

_RATE = "{:.0%}".format


def rows(stats: PeriodStats, names: dict[str, str]) -> dict[str, list[list[str]]]:
    """The report's tables, by section, as text cells (header row first)."""
    depts = sorted(stats.departments.values(), key=lambda d: (-d.tasks, d.department))
    return {
        "summary": [["measure", "value"],
                    ["incidents", str(stats.incidents)], ["closed", str(stats.closed)],
                    ["alarms", str(stats.alarms)], ["escalations", str(stats.escalations)]],
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


def _bars(title: str, items: list[tuple[str, float, str]], chart_id: str) -> str:
    """A horizontal bar chart: (label, value, value text) per bar, scaled to the largest."""
    if not items:
        return ""
    top = max(v for _, v, _ in items) or 1.0
    height, width = 26 * len(items) + 10, 640
    parts = [f'<figure><figcaption>{html.escape(title)}</figcaption>'
             f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{html.escape(title, quote=True)}">']
    for i, (label, value, text) in enumerate(items):
        y, w = 5 + 26 * i, int(400 * value / top)
        parts.append(f'<text x="180" y="{y + 16}" text-anchor="end">{html.escape(label)}</text>'
                     f'<rect class="bar" x="190" y="{y + 3}" width="{max(w, 1)}" height="18"/>'
                     f'<text x="{196 + w}" y="{y + 16}">{html.escape(text)}</text>')
    return "".join(parts) + "</svg></figure>"


_CSS = """
@page { size: A4; margin: 12mm }
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Microsoft YaHei",
       "PingFang SC", sans-serif; color: #1b1f24; margin: 24px; font-size: 13px }
h1 { font-size: 20px; margin: 0 0 4px } h2 { font-size: 15px; margin: 22px 0 8px;
  border-bottom: 2px solid #1b1f24; padding-bottom: 3px }
table { border-collapse: collapse; width: 100%; page-break-inside: auto }
th, td { border: 1px solid #c9cfd6; padding: 4px 6px; text-align: left; vertical-align: top }
th { background: #eef1f4 } tr { page-break-inside: avoid }
figure { margin: 8px 0 } figcaption { font-weight: 600; margin-bottom: 4px }
svg.chart { width: 100%; max-width: 720px; height: auto; font-size: 12px }
svg.chart rect.bar { fill: #c2410c } .muted { color: #5b6570 }
"""


def period_html(stats: PeriodStats, names: dict[str, str]) -> str:
    """One self-contained file: no script, no network; charts where people would rather look."""
    tables = rows(stats, names)
    depts = sorted(stats.departments.values(), key=lambda d: (-d.tasks, d.department))
    charts = [
        _bars("事件数（按报警类型） Incidents by kind",
              [(k, n, str(n)) for k, n in stats.by_kind.most_common()], "chart-kinds"),
        _bars("确认接收用时中位数 Median time to acknowledge",
              [(names.get(d.department, d.department),
                d.median_ack.total_seconds() if d.median_ack else 0.0,
                format_duration(d.median_ack)) for d in depts], "chart-ack"),
        _bars("超时率 Deadline breach rate",
              [(names.get(d.department, d.department), d.breach_rate, _RATE(d.breach_rate))
               for d in depts], "chart-breach"),
    ]
    body = [f"<h1>事件统计报告 {_span(stats)}</h1>",
            '<p class="muted">统计范围：按立案时间（北京时间），首尾两日均含。Incidents opened in '
            f'the period (Asia/Shanghai dates, both days included): {stats.incidents} incidents, '
            f'{stats.alarms} alarms.</p>', *charts]
    for section, table in tables.items():
        header, *data = table
        body.append(f'<h2>{html.escape(_TITLES[section])}</h2><table id="{section}"><thead><tr>'
                    + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr></thead>"
                    + "<tbody>" + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r)
                                          + "</tr>" for r in data) + "</tbody></table>")
    return ('<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>事件统计报告 {_span(stats)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>")
