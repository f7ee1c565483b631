"""The lab-fire after-action review page in real headless Chromium: it loads from one file with
the network cut off and asks for nothing else, the Chinese is drawn with a CJK font (not tofu),
the chart fits the page width, it prints to A4 PDF, and a hostile alarm runs nothing. The
screenshot in docs/lab-fire-report.png is taken here.

No stack is needed: the page is rendered from a fixed timeline. Chromium is Debian's
(/usr/bin/chromium) driven by Playwright; a browser that cannot start fails the test, never
skips it."""

from __future__ import annotations

import re
import struct
from pathlib import Path

from playwright.sync_api import Page

from agents.report.render import to_html
from agents.report.review import review
from tests.agents.report.test_review import NAMES, lab_fire

DOCS = Path(__file__).resolve().parents[2] / "docs"
CJK = ("Noto Sans CJK", "Noto Sans SC", "Source Han Sans", "Microsoft YaHei", "PingFang")


def _offline(browser, tmp_path: Path, html: str, **context) -> tuple[Page, str, list, list]:
    """A tab that loads `html` from a file and may fetch nothing else: every request is
    recorded, and any but the file's is aborted."""
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    url = path.as_uri()
    ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **context)
    page = ctx.new_page()
    requested, blocked = [], []
    page.on("request", lambda r: requested.append(r.url))

    def only_the_file(route):
        if route.request.url == url:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_the_file)
    page.goto(url, wait_until="load")
    return page, url, requested, blocked


def _fonts_of(page: Page, selector: str) -> list[dict]:
    """The platform fonts Chromium really used for the text of the first `selector`."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    assert node, selector
    return cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]


def _png_size(blob: bytes) -> tuple[int, int]:
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and blob[12:16] == b"IHDR"
    return struct.unpack(">II", blob[16:24])


def test_lab_fire_report_renders_offline_in_chinese_and_prints_on_a4(browser, tmp_path):
    r = review(lab_fire(), NAMES)
    page, url, requested, blocked = _offline(browser, tmp_path, to_html(r),
                                             viewport={"width": 1000, "height": 1000})
    assert requested == [url] and blocked == []
    counts = page.evaluate("""() => ({
        lanes: document.querySelectorAll('#swimlanes g.lane').length,
        bars: document.querySelectorAll('#swimlanes rect.bar').length,
        overdue: document.querySelectorAll('#swimlanes rect.overdue').length,
        escalations: document.querySelectorAll('#swimlanes .escalation').length,
        log: document.querySelectorAll('#log tbody tr').length,
        scripts: document.scripts.length,
        wide: document.documentElement.scrollWidth,
        svg: document.getElementById('swimlanes').getBoundingClientRect().width,
        body: document.body.clientWidth - 64,
    })""")
    assert counts["lanes"] == 5 and counts["bars"] == 6 and counts["log"] == len(r.entries)
    assert (counts["overdue"], counts["escalations"], counts["scripts"]) == (1, 1, 0)
    assert counts["wide"] <= 1000 and abs(counts["svg"] - counts["body"]) < 2  # fits the width
    for selector in ("h1", "#swimlanes g.lane text.lane-name", "#log tbody td:nth-child(6)"):
        fonts = _fonts_of(page, selector)
        assert fonts and all(any(c in f["familyName"] for c in CJK) for f in fonts), \
            (selector, fonts)                         # every glyph drawn by a CJK font
    # two CJK characters are one em each, unlike the fallback boxes of a font without them
    width = page.evaluate("""() => { const s = document.createElement('span');
        s.style.fontSize = '20px'; s.textContent = '倒查'; document.body.append(s);
        const w = s.getBoundingClientRect().width; s.remove(); return w; }""")
    assert 39 <= width <= 41

    shot = page.screenshot(full_page=True)
    w, h = _png_size(shot)
    assert w == 1000 and 1500 <= h <= 6000
    DOCS.mkdir(exist_ok=True)
    (DOCS / "lab-fire-report.png").write_bytes(shot)

    pdf = page.pdf(format="A4", print_background=True)
    (tmp_path / "lab-fire-report.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
    assert 1 <= pages <= 4, pages
    page.context.close()


def test_a_hostile_alarm_runs_nothing_in_the_browser(browser, tmp_path):
    hostile = ('<script>alert(1)</script>"><img src=x onerror=alert(2)>'
               '</title><svg onload=alert(3)>')
    t = lab_fire(description=hostile, reporter='"><img src=x onerror=alert(4)>',
                 site_name="<iframe src=javascript:alert(5)>")
    page_html = to_html(review(t, {**NAMES, "police": "</text><script>alert(6)</script>"}))
    dialogs = []
    path = tmp_path / "hostile"
    path.mkdir()
    page, url, requested, blocked = _offline(browser, path, page_html)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.wait_for_timeout(200)
    assert dialogs == [] and blocked == [] and requested == [url]
    live = page.evaluate("""() => document.querySelectorAll(
        'script, img, iframe, #swimlanes svg, [onerror], [onload]').length""")
    assert live == 0
    text = page.inner_text("body")
    assert "<script>alert(1)</script>" in text and "<iframe src=javascript:alert(5)>" in text
    page.context.close()
