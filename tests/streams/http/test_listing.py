"""Filters and pages of the incident and task lists (pure: no worker)."""

from __future__ import annotations

import pytest

from schemas import Site
from streams.http.errors import Refusal
from streams.http.listing import MAX_LIMIT, Found, decode_cursor, incident_key, task_key

LAB = Site(site_id="lab", name="银丰实验室", address="巨野河街道 3 号楼", type="laboratory",
           grid="JYH-G2")


def incident(n: int, **kw) -> dict:
    return {"incident_id": f"inc-{n:03d}", "site_id": "lab", "kind": "smoke", "level": "III",
            "opened_at": f"2026-12-06T08:{n % 60:02d}:00+08:00", "task_ids": [], **kw}


def refused(query: dict) -> list:
    with pytest.raises(Refusal) as caught:
        Found.parse(query)
    assert caught.value.status == 422
    return caught.value.details


@pytest.mark.parametrize("query, field", [
    ({"level": "V"}, "level"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
    ({"limit": str(MAX_LIMIT + 1)}, "limit"), ({"limit": "٣"}, "limit"),
    ({"since": "yesterday"}, "since"), ({"until": "2026-12-06T08:00:00"}, "until"),
    ({"since": "2026-12-06T09:00:00+08:00", "until": "2026-12-06T08:00:00+08:00"}, "until"),
    ({"limit": "5", "cursor": "not-ours"}, "cursor"), ({"cursor": "W10="}, "cursor"),
])
def test_a_bad_parameter_is_refused_naming_it(query, field):
    assert refused(query)[0]["loc"] == ["query", field]


def test_each_filter_holds():
    inc = incident(5, level="I", kind="fire_report")
    assert Found.parse({}).incident_fits(inc, LAB, {"police"})
    for query, fits in [({"level": "I"}, True), ({"level": "II"}, False),
                        ({"kind": "fire_report"}, True), ({"kind": "smoke"}, False),
                        ({"site_id": "lab"}, True), ({"site_id": "other"}, False),
                        ({"grid": "JYH-G2"}, True), ({"grid": "JYH-G1"}, False),
                        ({"department": "police"}, True), ({"department": "medical"}, False),
                        ({"since": "2026-12-06T08:05:00+08:00"}, True),
                        ({"since": "2026-12-06T00:05:01Z"}, False),
                        ({"until": "2026-12-06T00:05:00Z"}, True),
                        ({"until": "2026-12-06T08:04:59+08:00"}, False),
                        ({"q": "银丰"}, True), ({"q": "3 号楼"}, True), ({"q": "INC-005"}, True),
                        ({"q": "菜市场"}, False)]:
        assert Found.parse(query).incident_fits(inc, LAB, {"police"}) is fits, query
    assert not Found.parse({"grid": "JYH-G2"}).incident_fits(inc, None, ())


def test_pages_walk_the_whole_list_once_in_either_order():
    items = [incident(n) for n in range(23)]
    for key, newest_first in ((incident_key, True), (task_key, False)):
        if key is task_key:
            items = [{"task_id": f"t-{n:03d}", "created_at": i["opened_at"]}
                     for n, i in enumerate(items)]
        whole, cursor = Found.parse({}).page(items, key, newest_first)
        assert cursor is None and len(whole) == 23
        seen, query = [], {"limit": "5"}
        while True:
            page, cursor = Found.parse(query).page(items, key, newest_first)
            seen += page
            if cursor is None:
                break
            assert len(page) == 5 and decode_cursor(cursor) == key(page[-1])
            query = {"limit": "5", "cursor": cursor}
        assert seen == whole


def test_another_workers_more_means_a_next_page():
    items = [incident(n) for n in range(3)]
    page, cursor = Found.parse({"limit": "3"}).page(items, incident_key, True)
    assert cursor is None
    page, cursor = Found.parse({"limit": "3"}).page(items, incident_key, True,
                                                    more_elsewhere=True)
    assert cursor is not None and decode_cursor(cursor) == incident_key(page[-1])


def test_without_a_filter_nothing_is_looked_up():
    assert not Found.parse({"limit": "5"}).filters and not Found.parse({}).needs_site
    for query in ({"level": "I"}, {"grid": "X"}, {"q": "银丰"}, {"until": "2026-12-06T00:00:00Z"}):
        assert Found.parse(query).filters, query
    assert Found.parse({"grid": "X"}).needs_site and Found.parse({"q": "x"}).needs_site
    assert not Found.parse({"level": "I", "department": "police"}).needs_site
