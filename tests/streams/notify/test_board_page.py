"""The board's page and its vendored files (no server): what the page holds, the policy it is
served with (an operator's tile server allowed only when configured), and the whitelist."""

import json
import re

from streams.notify.board import VENDORED, render, static_files, tile_origin
from streams.notify.console import headers

TILES = "http://tiles.gov.example:8080/{z}/{x}/{y}.png"


def config_of(page: str) -> dict:
    blob = re.search(r'id="whistle-config">(.*?)</script>', page, re.S).group(1)
    return json.loads(blob)


def test_the_page_holds_no_data_and_every_script_carries_the_nonce():
    page = render("N0NCE", 15.0, "")
    assert page.count('nonce="N0NCE"') == 3 and "<script>" not in page
    assert config_of(page) == {"api": "/api/v1", "ping": 15.0, "tiles": ""}
    assert re.search(r'src="/board/static/leaflet/leaflet\.js\?v=[0-9a-f]{8}"', page)
    assert re.search(r'href="/board/static/leaflet/leaflet\.css\?v=[0-9a-f]{8}"', page)
    assert "function handle(type, data, id)" in page  # stream.js, included
    assert "{%" not in page and "{{" not in page
    assert 'data-testid="action-reassign"' in page and 'data-testid="form-whistle"' in page


def test_map_tiles_are_named_in_the_config_and_allowed_by_the_policy_only_when_set():
    assert config_of(render("n", 15.0, TILES))["tiles"] == TILES
    assert tile_origin(TILES) == "http://tiles.gov.example:8080" and tile_origin("") == ""
    policy = headers("n", "'self'", tile_origin(TILES))["Content-Security-Policy"]
    assert "img-src 'self' data: http://tiles.gov.example:8080;" in policy
    assert "style-src 'self' 'nonce-n';" in policy and "script-src 'nonce-n';" in policy
    plain = headers("n", "'self'", "")["Content-Security-Policy"]
    assert "img-src 'self' data:;" in plain and "tiles" not in plain


def test_only_the_vendored_files_are_served_each_with_its_type():
    files = static_files()
    assert sorted(files) == sorted(VENDORED)
    assert files["leaflet/leaflet.js"].content_type == "text/javascript; charset=utf-8"
    assert files["leaflet/leaflet.css"].content_type == "text/css; charset=utf-8"
    assert files["leaflet/images/layers.png"].content_type == "image/png"
    assert files["leaflet/LICENSE"].content_type == "text/plain; charset=utf-8"
    assert files["leaflet/LICENSE"].body.startswith(b"BSD 2-Clause License")
    assert all(re.fullmatch(r'"[0-9a-f]{16}"', f.etag) for f in files.values())
