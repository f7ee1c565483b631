"""The board's directory (no broker): grid outlines in the registry file and on the registry
topic, the site search behind `GET /api/v1/sites?q=`, and the departments as the board reads
them."""

from textwrap import dedent

import pytest

from agents.logic.locate import Registry, registry_from
from playbooks.departments import load_departments
from schemas import Site
from schemas.registry import RegistryError, parse_registry, read_registry
from schemas.site import Grid
from streams.http.directory import SEARCH_LIMIT, department_json, grids_for, search, site_json
from streams.runtime.registry import apply_record, records
from streams.settings import DEMO_SITES

SQUARE = "[[36.68, 117.36], [36.68, 117.37], [36.69, 117.37], [36.69, 117.36]]"


def refused(text: str) -> list[str]:
    with pytest.raises(RegistryError) as exc:
        parse_registry(dedent(text), "r.yaml", "yaml")
    return exc.value.problems


def test_a_registry_file_may_outline_its_grids():
    read = parse_registry(dedent(f"""\
        sites:
          - {{site_id: a, name: 甲, type: school, grid: G1}}
        grids:
          - id: G1
            name: 第一网格
            outline: {SQUARE}
        """), "r.yaml", "yaml")
    (grid,) = read.grids
    assert (grid.id, grid.name, grid.outline[0]) == ("G1", "第一网格", (36.68, 117.36))
    assert [s.site_id for s in read.sites] == ["a"]
    assert parse_registry("- {site_id: a, name: 甲, type: school}\n", "r.yaml", "yaml").grids == []


@pytest.mark.parametrize("grid,expected", [
    ("{id: G1, outline: [[36.68, 117.36], [36.69, 117.37]]}",
     "r.yaml:3: outline: List should have at least 3 items"),
    ("{id: G1, outline: [[36.68, 117.36], [36.68, 117.36], [36.68, 117.36]]}",
     "r.yaml:3: outline: needs at least 3 different points"),
    ("{id: G1, outline: [[96.68, 117.36], [36.68, 117.37], [36.69, 117.37]]}",
     "r.yaml:3: outline.0.0: Input should be less than or equal to 90"),
    ("{id: G1, outline: [[36.68, 117.36, 5], [36.68, 117.37], [36.69, 117.37]]}",
     "r.yaml:3: outline.0: Tuple should have at most 2 items"),
    ("{id: G1, outline: [[北纬, 117.36], [36.68, 117.37], [36.69, 117.37]]}",
     "r.yaml:3: outline.0.0: Input should be a valid number"),
    ("{name: 第一网格, outline: " + SQUARE + "}", "r.yaml:3: id: Field required"),
    ("{id: G1, outline: " + SQUARE + ", colour: red}",
     "r.yaml:3: colour: Extra inputs are not permitted"),
    ("[36.68, 117.36]", "r.yaml:3: grid: each grid is a mapping (id: ...)"),
])
def test_a_bad_grid_is_refused_naming_its_line_and_field(grid, expected):
    found = refused(f"sites: []\ngrids:\n  - {grid}\n")
    assert any(p.startswith(expected) for p in found), found


def test_a_grid_given_twice_and_grids_that_are_no_list_are_refused():
    twice = refused(f"grids:\n  - {{id: G1, outline: {SQUARE}}}\n"
                    f"  - {{id: G1, outline: {SQUARE}}}\n")
    assert twice == ["r.yaml:3: id: 'G1' appears twice (first on line 2)"]
    assert refused("grids: {id: G1}\n") == ["r.yaml:1: grids: grids is a list"]


def test_grids_travel_on_the_registry_topic_and_can_be_removed():
    file = read_registry(DEMO_SITES)
    registry = Registry()
    for key, value in records(file):
        assert apply_record(registry, key, value) is None
    assert list(registry.grids) == ["JYH-G1", "JYH-G2", "JYH-G3"]
    assert registry.grids["JYH-G2"] == file.grids[1]
    assert [s.site_id for s in registry.sites()] == [s.site_id for s in file.sites]
    assert apply_record(registry, b"grid:JYH-G1", None) is None
    assert list(registry.grids) == ["JYH-G2", "JYH-G3"]
    assert "grid:<id>" in apply_record(registry, b"street:x", b"{}")
    assert "outline" in apply_record(registry, b"grid:x", b'{"id": "x", "outline": []}')


def test_the_demo_grids_hold_their_sites():
    demo = registry_from(read_registry(DEMO_SITES))
    for site in demo.sites():
        if site.lat is not None and site.grid in demo.grids:
            assert inside(site.lat, site.lon, demo.grids[site.grid].outline), site.site_id


def inside(lat: float, lon: float, outline: list[tuple[float, float]]) -> bool:
    """Ray casting, good enough for a small polygon."""
    hit = False
    for (a_lat, a_lon), (b_lat, b_lon) in zip(outline, outline[1:] + outline[:1], strict=True):
        if (a_lon > lon) != (b_lon > lon):
            if lat < a_lat + (b_lat - a_lat) * (lon - a_lon) / (b_lon - a_lon):
                hit = not hit
    return hit


SITES = [Site(site_id=i, name=n, type="school", address=a, grid=g) for i, n, a, g in [
    ("lab-3", "3号实验室", "巨野河街道 银丰国际生物城", "JYH-G2"),
    ("school-1", "巨野河小学", "巨野河街道 科荟路 1号", "JYH-G3"),
    ("yinfeng-canteen", "银丰食堂", "巨野河街道", "JYH-G2"),
    ("lab", "Lab Annex", "", "X-1"),
]]


def ids(found: list[Site]) -> list[str]:
    return [s.site_id for s in found]


def test_search_looks_at_name_address_id_and_grid_folding_case_and_width():
    assert ids(search(SITES, "实验室")) == ["lab-3"]
    assert ids(search(SITES, "科荟路")) == ["school-1"]                   # the address
    assert ids(search(SITES, "jyh-g2")) == ["lab-3", "yinfeng-canteen"]   # the grid, any case
    assert ids(search(SITES, "ＹＩＮＦＥＮＧ")) == ["yinfeng-canteen"]       # full-width letters
    assert ids(search(SITES, "３号")) == ["lab-3"]
    assert ids(search(SITES, " 巨野河 小学 ")) == ["school-1"]              # spaces do not count
    assert search(SITES, "") == [] and search(SITES, "   ") == []
    assert search(SITES, "消防站") == []


def test_search_ranks_the_id_then_names_that_start_with_it_and_stops_at_its_limit():
    assert ids(search(SITES, "lab")) == ["lab", "lab-3"]  # the id itself, then the rest
    assert ids(search(SITES, "巨野河")) == ["school-1", "lab-3", "yinfeng-canteen"]
    many = [Site(site_id=f"s-{i:03}", name=f"小区 {i:03}", type="residential")
            for i in range(120, 0, -1)]
    found = search(many, "小区")
    assert len(found) == SEARCH_LIMIT and ids(found)[:2] == ["s-001", "s-002"]
    assert len(search(many, "小区", limit=5)) == 5


def test_the_grids_of_a_search_are_those_of_its_sites_and_those_it_names():
    grids = {g: Grid(id=g, name=f"网格 {g}", outline=[(0, 0), (0, 1), (1, 1)])
             for g in ("JYH-G2", "JYH-G3", "HT-08")}
    assert [g.id for g in grids_for(grids, search(SITES, "实验室"), "实验室")] == ["JYH-G2"]
    assert [g.id for g in grids_for(grids, [], "ht-08")] == ["HT-08"]
    assert grids_for(grids, [], "") == []


def test_what_the_board_reads_of_sites_and_departments():
    site = Site(site_id="a", name="甲", type="school", lat=36.6, lon=117.3,
                overrides={"police": {"unit": "巨野河派出所", "contact": "0531-1"}})
    assert site_json(site) == {"site_id": "a", "name": "甲", "type": "school", "address": "",
                               "grid": "", "lat": 36.6, "lon": 117.3}
    by_id = load_departments().by_id()
    fire = department_json(by_id["district_fire"])
    assert (fire["tier"], fire["report_within"], fire["report_within_seconds"]) == ("区", "15m",
                                                                                    900)
    assert department_json(by_id["safety_office"])["lead"] is True
