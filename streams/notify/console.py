"""The department console: `GET /console/{department}`, one HTML page a dispatcher keeps open.

The page holds no data. It signs in with the department's token (kept in the browser's
sessionStorage), reads `GET /api/v1/departments/{department}/stream` with fetch() and acts
through `POST /api/v1/tasks/{task_id}/...`; so it is public, like the probes. The server only
fills in who the page is for (a Jinja2 template, autoescaped), escaped for where it goes:

    >>> police = Department(id="police", name="派出所", name_en="Police station")
    >>> '<h1>派出所<span class="en">Police station</span></h1>' in render(police, {}, "n", 15.0)
    True

The inline script and style carry a per-response nonce that the Content-Security-Policy names,
so nothing but the page's own code runs and nothing is fetched from anywhere else.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from schemas import Department
from streams.http.errors import Refusal, problem
from streams.http.views import ApiView

__all__ = ["PAGE", "PATH", "Console", "config_json", "headers", "page_template", "render",
           "template"]

PAGE = Path(__file__).parent / "console.html"


def config_json(value: Any) -> str:
    """JSON that can stand inside <script type="application/json">: no `<`, `>` or `&` can
    close the element or open a comment, whatever the department file says."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


@functools.cache
def page_template(name: str) -> jinja2.Template:
    """A page's template beside this file (`console.html`, `board.html`), read and compiled
    once. Every value is HTML-escaped (autoescape) unless a filter says what it is:
    `script_json` for the config element."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(PAGE.parent), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["script_json"] = lambda value: markupsafe.Markup(config_json(value))
    return env.get_template(name)


def template() -> jinja2.Template:
    """The console's template."""
    return page_template(PAGE.name)


def render(department: Department, departments: Mapping[str, Department], nonce: str,
           ping: float) -> str:
    """The page for one department: its names HTML-escaped in the markup, JSON in the config
    element (a name that looks like a template stays text: values are never templates)."""
    config = {"department": department.id, "name": department.name,
              "name_en": department.name_en, "api": "/api/v1", "ping": ping,
              "departments": {d.id: d.name for d in departments.values()}}
    return template().render(title=f"{department.name} · Whistle 部门控制台",
                             name=department.name, name_en=department.name_en, nonce=nonce,
                             config=config)


def headers(nonce: str, styles: str = "", images: str = "") -> dict[str, str]:
    """No caching (the page is the same for everyone but its nonce is not), and a policy that
    lets only the page's own nonce-bearing script and style run, and talk only to this origin
    (`styles`, `images`: more sources, e.g. the board's own style sheet and map tiles)."""
    policy = "; ".join((
        "default-src 'self'", f"script-src 'nonce-{nonce}'",
        " ".join(filter(None, ("style-src", styles, f"'nonce-{nonce}'"))), "connect-src 'self'",
        " ".join(filter(None, ("img-src 'self' data:", images))), "font-src 'none'",
        "object-src 'none'",
        "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"))
    return {"Cache-Control": "no-store", "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY"}


PATH = "/console/{department}"


class Console(ApiView):
    """`GET /console/{department}`: the department's console page (it holds no data)."""

    rights: dict[str, str] = {}  # public: the page signs in with a department token

    async def get(self, request: Any, department: str) -> Any:
        w = self.whistle
        found = w.departments.get(department)
        if found is None:
            raise Refusal(404, f"no department {department}",
                          problem("department", "unknown"))
        nonce = secrets.token_urlsafe(18)
        page = render(found, w.departments, nonce, w.settings.stream_ping)
        return self.raw(page.encode("utf-8"), "text/html; charset=utf-8",
                        headers=headers(nonce))
