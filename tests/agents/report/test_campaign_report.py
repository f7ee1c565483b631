"""A campaign's report: the CSV Excel opens (BOM, a row per site and task, Chinese labels, no
formula runs) and the HTML page (title, every site, the counts, everything escaped)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from agents.logic.campaigns import record, start
from agents.report.campaign_report import (
    CSV_HEADER,
    campaign_csv,
    campaign_html,
    campaign_markdown,
)
from playbooks.campaigns import CAMPAIGNS, load_campaigns
from playbooks.departments import load_departments
from schemas.campaign import CampaignFinding
from schemas.site import Site
from tests.conftest import T0

NAMES = {d.id: d.name for d in load_departments().root}
ALCOHOL = load_campaigns(CAMPAIGNS)["alcohol-fuel"]   # 3 steps: 14d, 14d, 30d
REGISTRY = [
    Site(site_id="sv-1", name="老王烧烤", type="small_venue", grid="JYH-G1"),
    Site(site_id="sv-2", name="<script>alert(1)</script>", type="small_venue", grid="JYH-G2"),
    Site(site_id="mk-1", name="黄金谷农贸市场", type="market"),
    Site(site_id="lab-3", name="3号实验室", type="laboratory", grid="JYH-G1"),
]
NOW = T0 + timedelta(days=20)


def found(site_id: str, department: str, outcome: str, note: str = "") -> CampaignFinding:
    return CampaignFinding(update_id=f"u-{site_id}-{department}", campaign_id="cmp-alc",
                           site_id=site_id, department=department, outcome=outcome,
                           note=note, by="李队", at=T0 + timedelta(days=3))


@pytest.fixture
def campaign():
    campaign, sites = start(ALCOHOL, "cmp-alc", REGISTRY, "王科长", T0)
    by_id = {s.site_id: s for s in sites}
    by_id["sv-1"] = record(by_id["sv-1"], found("sv-1", "market_regulation", "compliant"))
    by_id["sv-1"] = record(by_id["sv-1"], found("sv-1", "enforcement", "closed", "=HYPERLINK(1)"))
    by_id["sv-2"] = record(by_id["sv-2"], found("sv-2", "market_regulation",
                                                "rectification_ordered", "燃料无合格证"))
    by_id["mk-1"] = record(by_id["mk-1"], found("mk-1", "fire_brigade", "fined"))
    return campaign, list(by_id.values())


def test_the_csv_opens_in_excel_with_a_row_per_task_and_chinese_labels(campaign):
    data = campaign_csv(*campaign, NAMES, NOW)
    assert data.startswith(b"\xef\xbb\xbf")
    header, *rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert header == CSV_HEADER
    assert len(rows) == 3 * 3
    assert [r[0] for r in rows[::3]] == ["sv-1", "sv-2", "mk-1"]
    by_task = {(r[0], r[3]): r for r in rows}
    assert by_task["sv-1", "市场监管所"][6:9] == ["合格", "李队", "2023-05-19 14:03"]
    assert by_task["sv-2", "市场监管所"][6] == "责令整改"
    assert by_task["mk-1", "消防救援站 (119)"][6] == "罚款"
    assert by_task["sv-1", "综合行政执法"][6:] == ["关停取缔", "李队", "2023-05-19 14:03",
                                                  "'=HYPERLINK(1)"]
    # day 20: the 14-day steps without a finding are late, the 30-day one is not checked yet
    assert by_task["sv-2", "消防救援站 (119)"][5:7] == ["2023-05-30 14:03", "已超期"]
    assert by_task["sv-2", "综合行政执法"][6] == "未检查"
    assert by_task["sv-2", "综合行政执法"][1] == "<script>alert(1)</script>"   # CSV is data


def test_the_html_names_the_campaign_every_site_and_the_counts(campaign):
    page = campaign_html(*campaign, NAMES, NOW)
    assert "<title>醇基燃料专项整治 · cmp-alc</title>" in page
    assert f"方案 alcohol-fuel 第 1 版（{ALCOHOL.content_hash}）" in page
    for site_id in ("sv-1", "sv-2", "mk-1"):
        assert f'<tr data-site-id="{site_id}"' in page
    assert "lab-3" not in page and "黄金谷农贸市场" in page
    totals = dict(re.findall(r'<td data-key="(\w+)">(\d+)</td>', page))
    assert totals == {"sites": "3", "sites_done": "0", "tasks": "9", "done": "4",
                      "compliant": "1", "rectification_ordered": "1", "fined": "1",
                      "closed": "1", "open": "2", "overdue": "3"}
    enforcement = re.search(r'<tr data-department="enforcement">(.*?)</tr>', page).group(1)
    assert re.findall(r">([^<]+)</td>", enforcement) == [
        "综合行政执法", "3", "1", "0", "0", "0", "0", "1", "33%"]
    assert '<tr data-grid="">' in page and "（未划网格）" in page


def test_the_html_escapes_what_sites_and_departments_wrote(campaign):
    page = campaign_html(*campaign, NAMES, NOW)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'title="李队 2023-05-19 14:03 =HYPERLINK(1)"' in page


def test_an_ended_campaign_reports_as_at_its_end(campaign):
    started, sites = campaign
    ended = started.model_copy(update={"status": "ended", "ended_at": T0 + timedelta(days=10),
                                       "ended_by": "王科长"})
    page = campaign_html(ended, sites, NAMES, NOW)
    assert "已结束（王科长 结束于 2023-05-26 14:03）" in page
    assert 'data-key="overdue">0<' in page
    assert "已超期" not in campaign_csv(ended, sites, NAMES, NOW).decode("utf-8-sig")


def test_the_markdown_keeps_every_cell_in_its_table(campaign):
    text = campaign_markdown(*campaign, NAMES, NOW)
    assert text.splitlines()[0] == "# 醇基燃料专项整治"
    assert "| 3 | 9 | 4 | 1 | 1 | 1 | 1 | 3 |" in text
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert len([line for line in text.splitlines() if line.startswith("| sv-")]) == 6
