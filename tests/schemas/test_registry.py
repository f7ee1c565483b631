"""Registry files: sites and devices as YAML or CSV, and the problems they are refused with."""

from datetime import timedelta
from textwrap import dedent

import pytest
import yaml

from schemas import SiteRegistry
from schemas.registry import RegistryError, RegistryFile, parse_registry, read_registry
from streams.settings import DEMO_SITES


def problems(text: str, fmt: str, **kw) -> list[str]:
    with pytest.raises(RegistryError) as exc:
        parse_registry(dedent(text), f"r.{fmt}", fmt, **kw)
    return exc.value.problems


def test_the_sites_file_of_today_reads_unchanged(tmp_path):
    read = read_registry(DEMO_SITES)
    listed = yaml.safe_load(DEMO_SITES.read_text("utf-8"))["sites"]  # the demo has grids too
    expected = SiteRegistry.model_validate(listed).root
    assert read.sites == expected and read.devices == []
    assert read.sites[0].name == "银丰国际生物城 3号实验室"
    assert [g.id for g in read.grids] == ["JYH-G1", "JYH-G2", "JYH-G3"]
    as_list = tmp_path / "sites.yaml"  # a plain list of sites, as before
    as_list.write_text(yaml.safe_dump(listed, allow_unicode=True), encoding="utf-8")
    assert read_registry(as_list) == RegistryFile(expected)


def test_a_mapping_holds_sites_their_devices_and_more_devices(tmp_path):
    text = dedent("""\
        sites:
          - site_id: lab-3
            name: 银丰国际生物城 3号实验室
            type: laboratory
            overrides: {police: {unit: 巨野河派出所}}
            devices:
              - device_id: smk-1
                kind: smoke
                name: 东侧 烟感
                heartbeat: 6h
              - {device_id: btn-1, kind: manual_call_point}
        devices:
          - {device_id: gas-9, site_id: lab-3, kind: gas}
        """)
    path = tmp_path / "registry.yaml"
    path.write_text(text, encoding="utf-8")
    read = read_registry(path, known_sites=())
    assert [s.site_id for s in read.sites] == ["lab-3"]
    assert read.sites[0].overrides["police"].unit == "巨野河派出所"
    assert [(d.device_id, d.site_id, d.kind) for d in read.devices] == [
        ("smk-1", "lab-3", "smoke"), ("btn-1", "lab-3", "manual_call_point"),
        ("gas-9", "lab-3", "gas")]
    assert read.devices[0].name == "东侧 烟感"
    assert read.devices[0].heartbeat == timedelta(hours=6)
    assert read.devices[1].heartbeat == timedelta(hours=24)


def test_empty_files_declare_nothing():
    for fmt in ("yaml", "csv"):
        read = parse_registry("", f"r.{fmt}", fmt)
        assert read.sites == [] and read.devices == []


def test_a_site_csv_from_excel_with_a_bom_and_override_columns(tmp_path):
    text = ("site_id,name,type,address,grid,lat,lon,police.unit,police.contact,fire.unit\r\n"
            "lab-3,银丰国际生物城 3号实验室,laboratory,济南高新区巨野河街道,JYH-G2,"
            "36.6871,117.3702,巨野河派出所,0531-88888888,\r\n"
            ",,,,,,,,,\r\n"
            "kehui-road,科荟路 路灯线路,public_road,,,,,,,\r\n")
    path = tmp_path / "sites.csv"
    path.write_bytes(text.encode("utf-8-sig"))
    lab, road = read_registry(path).sites
    assert lab.name == "银丰国际生物城 3号实验室" and lab.lat == 36.6871
    assert lab.overrides["police"].unit == "巨野河派出所"
    assert lab.overrides["police"].contact == "0531-88888888"
    assert "fire" not in lab.overrides  # an empty cell is not given
    assert road.lat is None and road.overrides == {} and road.address == ""
    assert parse_registry("\ufeff" + text, "sites.csv", "csv").sites == [lab, road]


def test_a_device_csv():
    read = parse_registry(dedent("""\
        device_id,site_id,kind,name,heartbeat
        smk-1,lab-3,smoke,东侧 烟感,6h
        "gw-1:17",lab-3,,,
        """), "devices.csv", "csv", known_sites={"lab-3"})
    assert read.sites == []
    assert [(d.device_id, d.kind, d.heartbeat) for d in read.devices] == [
        ("smk-1", "smoke", timedelta(hours=6)), ("gw-1:17", None, timedelta(hours=24))]


SITE = "  - {site_id: a, name: 甲, type: laboratory}\n"

ERRORS = [
    ("duplicate site id", "yaml", SITE + "  - {site_id: b, name: 乙, type: school}\n" + SITE, None,
     "r.yaml:3: site_id: 'a' appears twice (first on line 1)"),
    ("duplicate device id", "csv", "device_id,site_id\nd1,a\nd2,a\nd1,b\n", None,
     "r.csv:4: device_id: 'd1' appears twice (first on line 2)"),
    ("unknown site column", "csv", "site_id,name,type,police.phone\na,甲,school,110\n", None,
     "r.csv:1: police.phone: unknown column"),
    ("unknown device column", "csv", "device_id,site_id,floor\nd1,a,3\n", None,
     "r.csv:1: floor: unknown column"),
    ("missing column", "csv", "site_id,name\na,甲\n", None, "r.csv:1: type: missing column"),
    ("bad type", "yaml", SITE + "  - site_id: b\n    name: 乙\n    type: castle\n", None,
     "r.yaml:4: type: Input should be 'laboratory'"),
    ("bad type in csv", "csv", "site_id,name,type\na,甲,castle\n", None,
     "r.csv:2: type: Input should be 'laboratory'"),
    ("bad lat", "csv",
     "site_id,name,type,lat,lon\na,甲,school,36.6,117.3\nb,乙,school,96.6,117.3\n",
     None, "r.csv:3: lat: Input should be less than or equal to 90"),
    ("lat that is no number", "yaml", "- site_id: a\n  name: 甲\n  type: school\n  lat: 北纬36度\n",
     None, "r.yaml:4: lat: Input should be a valid number"),
    ("device on an unknown site", "csv", "device_id,site_id\nd1,lab-3\nd2,nowhere\n", {"lab-3"},
     "r.csv:3: site_id: no site 'nowhere' in this file or in the registry"),
    ("device on an unknown site in yaml", "yaml",
     "sites:\n" + SITE
     + "devices:\n  - {device_id: d1, site_id: a}\n  - {device_id: d2, site_id: b}\n",
     set(), "r.yaml:5: site_id: no site 'b' in this file or in the registry"),
    ("heartbeat 0s", "csv", "device_id,site_id,heartbeat\nd1,a,0s\n", None,
     "r.csv:2: heartbeat: must be at least 1m"),
    ("heartbeat 0s of a nested device", "yaml",
     "- site_id: a\n  name: 甲\n  type: school\n"
     "  devices:\n    - device_id: d1\n      heartbeat: 0s\n",
     None, "r.yaml:6: devices.0.heartbeat: must be at least 1m"),
    ("nested device naming another site", "yaml",
     "- site_id: a\n  name: 甲\n  type: school\n  devices:\n    - {device_id: d1, site_id: b}\n",
     None, "r.yaml:5: devices.0.site_id: is 'b' but the device is listed under site 'a'"),
    ("a key given twice", "yaml", "- site_id: a\n  name: 甲\n  type: school\n  name: 乙\n", None,
     "r.yaml:4: name: given twice in one entry (first on line 2)"),
    ("unknown field", "yaml", "- site_id: a\n  name: 甲\n  type: school\n  colour: red\n", None,
     "r.yaml:4: colour: Extra inputs are not permitted"),
    ("unknown section", "yaml", "sites: []\nstreets: []\n", None,
     "r.yaml:2: streets: unknown section"),
    ("a value without a header", "csv", "site_id,name,type\na,甲,school,,x\n", None,
     "r.csv:2: column 5: a value in a column without a header"),
    ("override text too long", "csv", f"site_id,name,type,police.unit\na,甲,school,{'所' * 201}\n",
     None, "r.csv:2: police.unit: String should have at most 200 characters"),
]


@pytest.mark.parametrize("fmt,text,known,expected", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_each_problem_names_file_line_and_field(fmt, text, known, expected):
    found = problems(text, fmt, known_sites=known)
    assert any(p.startswith(expected) for p in found), found


def test_a_device_may_name_a_site_registered_before_or_go_unchecked():
    text = "device_id,site_id\nd1,lab-3\n"
    assert parse_registry(text, "r.csv", "csv", known_sites={"lab-3"}).devices[0].site_id == "lab-3"
    assert parse_registry(text, "r.csv", "csv").devices[0].site_id == "lab-3"
    assert problems(text, "csv", known_sites=set())


def test_every_problem_is_reported_at_once_in_line_order():
    found = problems("""\
        site_id,name,type,lat
        a,甲,castle,
        a,,school,100
        """, "csv")
    assert [p.split(": ")[0] for p in found] == ["r.csv:2", "r.csv:3", "r.csv:3", "r.csv:3"]
    assert {p.split(": ")[1] for p in found} == {"type", "site_id", "name", "lat"}


def test_a_row_spanning_lines_is_named_by_its_first_line():
    found = problems('site_id,name,type\na,"甲\n乙",school\nb,丙,castle\n', "csv")
    assert found[0].startswith("r.csv:4: type:")


def test_files_that_cannot_be_read(tmp_path):
    gbk = tmp_path / "sites.csv"
    gbk.write_bytes("site_id,name,type\na,甲,school\n".encode("gbk"))
    other = tmp_path / "sites.xlsx"
    other.write_bytes(b"PK")
    for path, expected in [(gbk, "sites.csv:2: encoding: not UTF-8 text"),
                           (other, "sites.xlsx:0: format:"),
                           (tmp_path / "none.yaml", "none.yaml:0: file: cannot be read")]:
        with pytest.raises(RegistryError) as exc:
            read_registry(path)
        assert exc.value.problems[0].startswith(f"{tmp_path}/{expected}"), exc.value.problems


def test_broken_yaml_names_its_line():
    assert problems("- site_id: a\n  name: [甲\n", "yaml")[0].startswith("r.yaml:3: yaml: ")
    assert problems("just text\n", "yaml")[0].startswith("r.yaml:1: registry: ")
