"""The playbook set in force: `GET /api/v1/playbooks` (what each worker runs with) and
`POST /api/v1/playbooks/reload` (load the directory again; the coordinator refuses a bad set
and the running one stays).

    >>> httpx.post(f"{url}/api/v1/playbooks/reload", headers=admin).json()["digest"]
"""

from __future__ import annotations

from aiohttp.web import Request
from faust.web import Response

from playbooks import PlaybookError
from streams.http.errors import Refusal
from streams.http.views import ApiView, Route

__all__ = ["ROUTES"]


class Playbooks(ApiView):
    rights = {"get": "read_playbooks"}

    async def get(self, request: Request) -> Response:
        w = self.whistle
        return self.reply(w.library.describe())


class ReloadPlaybooks(ApiView):
    rights = {"post": "change_playbooks"}

    async def post(self, request: Request) -> Response:
        w = self.whistle
        try:
            w.library.reload_and_report(w.playbook_reloads)
        except PlaybookError as exc:
            raise Refusal(422, "the playbooks were refused; the running set stays",
                          [{"loc": [p.file, p.line], "msg": p.message}
                           for p in exc.problems]) from None
        person = request["caller"].person or "an unnamed caller"
        w.app.log.info("playbooks reloaded by %s", person)
        return self.reply({**w.library.describe(), "by": person})


ROUTES: list[Route] = [
    Route("/api/v1/playbooks", Playbooks),
    Route("/api/v1/playbooks/reload", ReloadPlaybooks),
]
