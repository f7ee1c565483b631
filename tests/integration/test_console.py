"""The department console in real headless Chromium, against the real `whistle up`.

A police dispatcher signs in with the police token, a fire report at the laboratory reaches
their screen within 2 s of the gateway's 202, one click acknowledges it (the server agrees) and
the incident's timeline shows the acknowledgement. A power-supply token is refused on the
police console; in open mode the page needs no token. The screenshots in docs/ are taken here.

Chromium is Debian's (/usr/bin/chromium, `make test` installs it), driven by Playwright; a
browser or a stack that cannot start fails the test, never skips it."""

from __future__ import annotations

import html
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page

import playbooks
from schemas import Department
from streams.notify import console

from .conftest import Stack

DOCS = Path(__file__).resolve().parents[2] / "docs"
TOKENS = {"admin": "admin-token-console-0001", "gateway": "gateway-token-console-0001",
          "police": "police-token-console-0001", "power_supply": "power-token-console-0001"}
LAB = "jyh-yinfeng-lab-3"
BEIJING = timezone(timedelta(hours=8))
PHONE = {"viewport": {"width": 430, "height": 932}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}, "device_scale_factor": 1}


def cordon_action() -> str:
    """What the laboratory-fire playbook asks of the police (Chinese, from the file)."""
    path = Path(playbooks.__file__).parent / "library" / "laboratory-fire.yaml"
    book = yaml.safe_load(path.read_text(encoding="utf-8"))
    return next(s["action"] for s in book["steps"] if s["department"] == "police")


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    config = tmp / "whistle.yaml"
    config.write_text(yaml.safe_dump({"tokens": [
        {"role": "admin", "token": TOKENS["admin"]},
        {"role": "gateway", "token": TOKENS["gateway"]},
        {"role": "department", "department": "police", "token": TOKENS["police"]},
        {"role": "department", "department": "power_supply", "token": TOKENS["power_supply"]},
    ]}), encoding="utf-8")
    s = Stack(tmp, None, "--config", str(config))
    yield s
    s.stop()


class Console:
    """One browser tab on a console, and what went wrong in it."""

    def __init__(self, browser: Browser, url: str, **context) -> None:
        self.context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai",
                                           **context)
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                     if "Content Security Policy" in m.text else None)
        self.page.goto(url)

    def sign_in(self, token: str, name: str = "") -> None:
        page = self.page
        page.wait_for_selector("#signin:not([hidden])")
        page.fill("#token", token)
        page.fill("#by", name)
        page.click("#signin button[type=submit]")

    def online(self) -> None:
        self.page.wait_for_selector('#conn[data-state="online"]')
        assert self.page.is_visible("#board") and self.page.is_hidden("#signin")

    def screenshot(self, path: Path, full_page: bool) -> None:
        self.page.evaluate("() => { document.getAnimations().forEach(a => a.finish());"
                           " window.scrollTo({top: 0, behavior: 'instant'}); }")
        self.page.screenshot(path=str(path), full_page=full_page)

    def close(self) -> None:
        self.context.close()
        assert self.errors == []


def fire_report(stack: Stack, alarm_id: str, token: str | None) -> float:
    """Post a 119 fire report at the laboratory; the monotonic time its 202 arrived."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = stack.http.post("/api/v1/alarms", headers=headers, json={
        "alarm_id": alarm_id, "kind": "fire_report", "site_id": LAB,
        "occurred_at": datetime.now(BEIJING).isoformat(timespec="seconds"),
        "reporter": {"name": "实验室值班人员"}, "description": "3号实验室冒烟起火"})
    assert r.status_code == 202, r.text
    return time.monotonic()


def test_the_page_is_served_safely(secured):
    r = httpx.get(f"{secured.url}/console/police")  # public: no token
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    nonce = re.search(r"script-src 'nonce-([\w-]+)'", policy).group(1)
    page = r.text
    assert page.count(f'nonce="{nonce}"') == 2  # the one script and the one style
    assert "<title>派出所" in page and "Police station" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(""", page), \
        "the page fetches nothing from anywhere else"
    config = re.search(r'<script type="application/json" id="whistle-config">(.*?)</script>',
                       page, re.S).group(1)
    assert json.loads(config)["department"] == "police"
    assert httpx.get(f"{secured.url}/console/police").headers["content-security-policy"] \
        != policy, "a fresh nonce per answer"

    missing = httpx.get(f"{secured.url}/console/nobody")
    assert missing.status_code == 404
    assert missing.json()["details"] == [{"loc": ["department"], "msg": "unknown"}]

    # whatever a departments file says, it stays text
    evil = Department(id="evil", name="</script><script>alert(1)</script>{{nonce}}",
                      name_en="<b>&amp;")
    out = console.render(evil, {"evil": evil}, "N0NCE", 15.0)
    assert "<script>alert(1)" not in out and "</script><script>" not in out
    assert html.escape(evil.name) in out and "{{nonce}}" in out  # escaped, and not a slot
    blob = re.search(r'id="whistle-config">(.*?)</script>', out, re.S).group(1)
    assert json.loads(blob)["name"] == evil.name and "<" not in blob


def test_police_see_the_task_within_2s_acknowledge_it_and_see_the_timeline(secured, browser):
    tab = Console(browser, f"{secured.url}/console/police", **PHONE)
    page = tab.page
    tab.sign_in(TOKENS["police"], "张警官")
    tab.online()
    assert page.text_content("#who-name") == "张警官"

    answered = fire_report(secured, "console:fire:1", TOKENS["gateway"])
    card = page.wait_for_selector('article.task[data-task-id$=".cordon"]')
    took = time.monotonic() - answered
    print(f"\nconsole: the police task appeared {took * 1000:.0f} ms after the 202")
    assert took < 2.0, f"the police task appeared {took:.2f} s after the 202"

    task_id = card.get_attribute("data-task-id")
    listed = secured.http.get("/api/v1/tasks", params={"department": "police"}, headers={
        "Authorization": f"Bearer {TOKENS['admin']}"}).json()["tasks"]
    assert [t["task_id"] for t in listed] == [task_id]
    text = card.inner_text()
    assert cordon_action() in text  # the playbook's Chinese, rendered as is
    assert "银丰国际生物城 3号实验室" in text and "巨野河派出所" in text
    assert card.get_attribute("data-status") == "dispatched"
    assert re.search(r"接收倒计时\s*0[12]:\d\d", text), text
    legal = [b.get_attribute("data-action") for b in card.query_selector_all("[data-action]")]
    assert legal == ["ack", "start", "reject"]

    card.query_selector('[data-action="ack"]').click()
    page.wait_for_selector(f'article[data-task-id="{task_id}"][data-status="acknowledged"]')
    server = secured.http.get("/api/v1/tasks", params={"incident_id": listed[0]["incident_id"]},
                              headers={"Authorization": f"Bearer {TOKENS['police']}"})
    (mine,) = server.json()["tasks"]
    assert (mine["status"], mine["by"]) == ("acknowledged", "张警官")
    legal = [b.get_attribute("data-action") for b in card.query_selector_all("[data-action]")]
    assert legal == ["start", "complete", "progress", "reject"]
    assert re.search(r"完成倒计时\s*[12]:\d\d:\d\d", card.inner_text())

    # a progress report (续报) needs a note; it leaves the task where it is
    card.query_selector('[data-action="progress"]').click()
    assert "续报需在备注中写明进展" in card.query_selector(".err").inner_text()
    card.query_selector(".note").fill("已到场，正在拉警戒线")
    card.query_selector('[data-action="progress"]').click()
    page.wait_for_function("""id => [...document.querySelectorAll('article.task')].some(
        a => a.dataset.taskId === id && a.querySelector('.err').textContent === ''
             && a.querySelector('.note').value === '')""", arg=task_id)
    (mine,) = secured.http.get("/api/v1/tasks", params={"incident_id": listed[0]["incident_id"]},
                               headers={"Authorization": f"Bearer {TOKENS['police']}"}
                               ).json()["tasks"]
    assert (mine["status"], mine["note"]) == ("acknowledged", "已到场，正在拉警戒线")

    card.query_selector("[data-timeline]").click()
    entry = page.wait_for_selector('#timeline li[data-type="task_acknowledged"]')
    assert "确认接收" in entry.inner_text() and "张警官" in entry.inner_text()
    progress = page.wait_for_selector('#timeline li[data-type="task_progress"]')
    assert "续报" in progress.inner_text() and "已到场，正在拉警戒线" in progress.inner_text()
    types = page.eval_on_selector_all("#timeline li", "els => els.map(e => e.dataset.type)")
    assert types[0] == "alarm_received" and "task_dispatched" in types
    tab.screenshot(DOCS / "console.png", full_page=True)
    tab.close()

    desk = Console(browser, f"{secured.url}/console/police", **DESKTOP)
    desk.sign_in(TOKENS["police"], "张警官")
    desk.online()
    desk.page.click(f'article[data-task-id="{task_id}"] [data-timeline]')
    desk.page.wait_for_selector('#timeline li[data-type="task_acknowledged"]')
    desk.screenshot(DOCS / "console-desktop.png", full_page=False)
    desk.close()


def test_a_power_supply_token_is_refused_on_the_police_console(secured, browser):
    tab = Console(browser, f"{secured.url}/console/police", **DESKTOP)
    page = tab.page
    page.wait_for_selector("#signin:not([hidden])")  # the stream refused the page without a token

    def stream_with(token: str):
        return lambda r: (r.url.endswith("/api/v1/departments/police/stream")
                          and r.request.headers.get("authorization") == f"Bearer {token}")

    with page.expect_response(stream_with(TOKENS["power_supply"])) as answer:
        tab.sign_in(TOKENS["power_supply"], "李工")
    assert answer.value.status == 403
    error = page.wait_for_selector('#signin-error[data-status="403"]')
    assert "无权" in error.inner_text() and page.is_hidden("#board")
    assert page.evaluate("JSON.parse(sessionStorage.getItem('whistle.console.police')).token") \
        == "", "a refused token is not kept"

    with page.expect_response(stream_with("not-a-token-of-ours-000")) as answer:
        tab.sign_in("not-a-token-of-ours-000", "李工")
    assert answer.value.status == 401
    assert "令牌无效" in page.wait_for_selector('#signin-error[data-status="401"]').inner_text()
    tab.close()


def test_open_mode_needs_no_token(stack, browser):
    tab = Console(browser, f"{stack.url}/console/police", **DESKTOP)
    tab.online()  # no sign-in asked for
    page = tab.page
    fire_report(stack, "console:open:1", None)
    card = page.wait_for_selector('article.task[data-task-id$=".cordon"]')
    card.query_selector('[data-action="ack"]').click()
    page.wait_for_selector('article.task[data-task-id$=".cordon"][data-status="acknowledged"]')
    task = stack.http.get("/api/v1/tasks", params={"department": "police"}).json()["tasks"][0]
    assert (task["status"], task["by"]) == ("acknowledged", "派出所")  # the department's name

    # signing out leaves the board; a sign-in without a token works in open mode
    page.click("#signout")
    page.wait_for_selector("#signin:not([hidden])")
    tab.sign_in("", "值班员")
    tab.online()
    page.wait_for_selector('article[data-status="acknowledged"]')  # the snapshot holds it
    tab.close()
