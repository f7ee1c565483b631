"""The duty officer's board (值班台): `GET /board`, one HTML page on the command centre's wall
screen and on the duty officer's laptop, and `GET /board/static/leaflet/{name}` (and
`.../images/{name}`), the files it loads: Leaflet 1.9.4 vendored in `static/leaflet/`
(BSD-2-Clause, its LICENSE beside it), no CDN, no build step.

Like the console the page holds no data: it signs in with an admin token (sessionStorage; in
open mode it needs none), reads every department's tasks from `GET /api/v1/stream`
(`streams.notify.board_stream`), the incidents, departments, sites and playbooks from the
API, and acts through it. The server fills in only the API's place, the keep-alive period and
the operator's map tiles (`WHISTLE_MAP_TILES`; none by default: government networks are
closed, the map is the grid outlines on a plain background):

    >>> 'data-testid="board"' in render("n", 15.0, "")
    True

The inline script and style, and the Leaflet script, carry a per-response nonce that the
Content-Security-Policy names; the style sheet and the images are this origin's (and the tile
server's, when one is configured).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from streams.http.errors import Refusal, problem
from streams.http.views import ApiView, Route
from streams.notify.console import headers, page_template

__all__ = ["ROUTES", "STATIC", "Board", "LeafletFile", "LeafletImage", "Static", "render",
           "static_files"]

STATIC = Path(__file__).parent / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".png": "image/png", "": "text/plain; charset=utf-8"}
VENDORED = ("leaflet/leaflet.js", "leaflet/leaflet.css", "leaflet/LICENSE",
            *(f"leaflet/images/{n}" for n in ("layers.png", "layers-2x.png", "marker-icon.png",
                                              "marker-icon-2x.png", "marker-shadow.png")))
"""The files `/board/static/` serves: these and nothing else (no path is ever joined)."""
PREFIX = "/board/static/"


class Static(NamedTuple):
    body: bytes
    content_type: str
    etag: str


@functools.cache
def static_files() -> dict[str, Static]:
    """The vendored files, read once, each with its content type and a digest (its ETag, and
    the page's `?v=` so a new version is fetched at once)."""
    files = {}
    for name in VENDORED:
        body = (STATIC / name).read_bytes()
        files[name] = Static(body, TYPES[Path(name).suffix],
                             '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
    return files


def tile_origin(tiles: str) -> str:
    """The origin a tile URL template fetches from (for img-src), "" for none."""
    if not tiles:
        return ""
    parts = urlsplit(tiles)
    return f"{parts.scheme}://{parts.netloc}"


def render(nonce: str, ping: float, tiles: str) -> str:
    files = static_files()
    version = {name: files[name].etag.strip('"')[:8] for name in ("leaflet/leaflet.js",
                                                                   "leaflet/leaflet.css")}
    config = {"api": "/api/v1", "ping": ping, "tiles": tiles}
    return page_template("board.html").render(
        title="值班台 · Whistle Duty officer's board", nonce=nonce, config=config,
        leaflet_js=f"/board/static/leaflet/leaflet.js?v={version['leaflet/leaflet.js']}",
        leaflet_css=f"/board/static/leaflet/leaflet.css?v={version['leaflet/leaflet.css']}")


class Board(ApiView):
    """`GET /board`: the duty officer's board (it holds no data)."""

    rights: dict[str, str] = {}  # public: the page signs in with an admin token

    async def get(self, request: Any) -> Any:
        settings = self.whistle.settings
        nonce = secrets.token_urlsafe(18)
        page = render(nonce, settings.stream_ping, settings.map_tiles)
        return self.raw(page.encode("utf-8"), "text/html; charset=utf-8",
                        headers=headers(nonce, "'self'", tile_origin(settings.map_tiles)))


class LeafletFile(ApiView):
    """`GET /board/static/leaflet/{name}`: one of the vendored files, cached a day by browsers
    (a new version has a new `?v=` in the page), 304 for an ETag they hold; 404 for any other
    name."""

    rights: dict[str, str] = {}

    async def get(self, request: Any, name: str) -> Any:
        path = request.path.removeprefix(PREFIX)
        found = static_files().get(path)
        if found is None:
            raise Refusal(404, f"no file {path}", problem("name", "unknown"))
        cache = {"Cache-Control": "public, max-age=86400", "ETag": found.etag,
                 "X-Content-Type-Options": "nosniff"}
        if request.headers.get("If-None-Match") == found.etag:
            return self.bytes(b"", status=304, headers=cache)
        return self.raw(found.body, found.content_type, headers=cache)


class LeafletImage(LeafletFile):
    """`GET /board/static/leaflet/images/{name}`: the images Leaflet's style sheet names."""


ROUTES: list[Route] = [
    Route("/board", Board),
    Route(PREFIX + "leaflet/{name}", LeafletFile),
    Route(PREFIX + "leaflet/images/{name}", LeafletImage),
]
