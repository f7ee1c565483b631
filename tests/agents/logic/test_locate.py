"""Where an alarm is: each rule of `resolve`, their order, and the registry's indexes."""

import hashlib
import math

import pytest

from agents.logic import correlation
from agents.logic.locate import Registry, distance_m, normalize, registry_from, resolve
from schemas import Alarm, Device, Location, Site
from schemas.registry import read_registry
from streams.settings import DEMO_SITES
from tests.conftest import T0

METRE_LAT = 1 / 111_195  # degrees of latitude in a metre
LAB = (36.6871, 117.3702)  # jyh-yinfeng-lab-3


def alarm(site_id=None, device_id=None, address=None, lat=None, lon=None) -> Alarm:
    """An alarm built without the model's site-or-location rule, which is being widened to
    accept a device id alone."""
    given = {k: v for k, v in {"address": address, "lat": lat, "lon": lon}.items()
             if v is not None}
    return Alarm.model_construct(alarm_id="gw-1:0001", kind="smoke", signal="alarm",
                                 site_id=site_id, device_id=device_id, occurred_at=T0,
                                 location=Location.model_validate(given) if given else None,
                                 attributes={})


def site(site_id, name, address="", lat=None, lon=None, type="residential") -> Site:
    return Site(site_id=site_id, name=name, type=type, address=address, lat=lat, lon=lon)


def registry() -> Registry:
    demo = read_registry(DEMO_SITES)
    extra = [site("jyh-yinfeng-park", "银丰国际生物城", "济南高新区巨野河街道 科航路"),
             site("ht-wujin-shop", "五金城", "淄博市张店区湖田街道 某路")]
    devices = [Device(device_id="smk-1", site_id="jyh-yinfeng-lab-3", kind="smoke"),
               Device(device_id="smk-gone", site_id="jyh-demolished", kind="smoke")]
    return Registry([*demo.sites, *extra], devices)


RULES = [
    # (case, alarm, site_id, how)
    ("registered site id", alarm("jb-wenshao-jiayuan"), "jb-wenshao-jiayuan", "site_id"),
    ("site id beats the device and the address",
     alarm("jb-wenshao-jiayuan", "smk-1", "杭州市余杭区仓前街道 仓溢绿苑"), "jb-wenshao-jiayuan",
     "site_id"),
    ("unregistered site id", alarm("lab-9", address="巨野河街道 9号实验室"), "lab-9",
     "unregistered"),
    ("unregistered site id beats the address",
     alarm("lab-9", address="杭州市余杭区仓前街道 仓溢绿苑"), "lab-9", "unregistered"),
    ("registered device", alarm(device_id="smk-1"), "jyh-yinfeng-lab-3", "device"),
    ("device beats the address", alarm(device_id="smk-1", address="济南市济阳区济北街道 闻韶佳苑"),
     "jyh-yinfeng-lab-3", "device"),
    ("device of a site no longer registered", alarm(device_id="smk-gone"), "jyh-demolished",
     "device"),
    ("unknown device, then the address", alarm(device_id="smk-404",
                                                address="济南市济阳区济北街道 闻韶佳苑"),
     "jb-wenshao-jiayuan", "address"),
    ("unknown device and nothing else", alarm(device_id="smk-404"), "device-smk-404", "ad_hoc"),
    ("address", alarm(address="济南市济阳区济北街道 安康街12号"), "jb-anking-restaurant-12",
     "address"),
    ("address in full-width digits and spaces",
     alarm(address="济南市济阳区济北街道　安康街１２号 "), "jb-anking-restaurant-12", "address"),
    ("address without its space", alarm(address="淄博市张店区湖田街道五金机电城"),
     "ht-wujin-market", "address"),
    ("address beats a name inside it", alarm(address="济南高新区巨野河街道 银丰国际生物城"),
     "jyh-yinfeng-lab-3", "address"),
    ("name", alarm(address="仓溢绿苑小区"), "cq-cangyi-lvyuan", "name"),
    ("name with a full-width space", alarm(address="仓溢绿苑　小区"), "cq-cangyi-lvyuan", "name"),
    ("name inside the address, the longest wins",
     alarm(address="巨野河街道 银丰国际生物城３号实验室 东门"), "jyh-yinfeng-lab-3", "name"),
    ("shorter name inside the address", alarm(address="巨野河街道 银丰国际生物城 北门"),
     "jyh-yinfeng-park", "name"),
    ("name beats nearer coordinates", alarm(address="闻韶佳苑小区 3号楼", lat=LAB[0], lon=LAB[1]),
     "jb-wenshao-jiayuan", "name"),
    ("names under 4 characters are not looked for", alarm(address="湖田街道 五金城 门口"),
     None, "ad_hoc"),
    ("coordinates 60 m away", alarm(lat=LAB[0] + 60 * METRE_LAT, lon=LAB[1]),
     "jyh-yinfeng-lab-3", "nearest"),
    ("coordinates 150 m away", alarm(lat=LAB[0] + 150 * METRE_LAT, lon=LAB[1]), None, "ad_hoc"),
    ("unknown address, then coordinates", alarm(address="某小区 某楼", lat=LAB[0], lon=LAB[1]),
     "jyh-yinfeng-lab-3", "nearest"),
    ("unknown address", alarm(address="济南市历城区 工业北路88号"), "adhoc-9c66e89e30eb", "ad_hoc"),
    ("coordinates near nothing", alarm(lat=36.7, lon=117.4), "adhoc-025e2201483e", "ad_hoc"),
]


@pytest.mark.parametrize("given,site_id,how", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rules(given, site_id, how):
    found = resolve(given, registry())
    assert found.how == how
    if site_id is not None:
        assert found.site.site_id == site_id
    assert (found.distance_m is not None) == (how == "nearest")


def test_the_nearest_of_two_and_its_distance():
    near = site("near", "近处", lat=36.68 + 40 * METRE_LAT, lon=117.37)
    far = site("far", "远处", lat=36.68 - 70 * METRE_LAT, lon=117.37)
    found = resolve(alarm(lat=36.68, lon=117.37), Registry([far, near]))
    assert (found.site.site_id, found.how) == ("near", "nearest")
    assert found.distance_m == pytest.approx(40, abs=0.5)


def test_nearest_looks_far_enough_east_and_west():
    # at 36.7N a 0.001 degree cell is 89 m wide, so 99 m east of a cell's east edge lies two
    # cells away; other sites elsewhere keep the registry from scanning everything
    metre_lon = METRE_LAT / math.cos(math.radians(36.7))
    here = (36.7005, 117.4009)
    east = site("east", "东", lat=here[0], lon=here[1] + 99 * metre_lon)
    elsewhere = [site(f"x{i}", "别处", lat=36.0 + i * 0.01, lon=117.0) for i in range(50)]
    hit = Registry([east, *elsewhere]).nearest(*here)
    assert hit is not None and hit[1] == pytest.approx(99, abs=0.5)
    assert Registry([east, *elsewhere]).nearest(*here, within_m=98) is None


def test_nearest_in_a_dense_registry_agrees_with_a_full_scan():
    import random

    rng = random.Random(3)
    sites = [site(f"s{i}", f"站点{i}", lat=36.68 + rng.uniform(-0.01, 0.01),
                  lon=117.37 + rng.uniform(-0.01, 0.01)) for i in range(3000)]
    reg = Registry(sites)
    for _ in range(200):
        lat, lon = 36.68 + rng.uniform(-0.01, 0.01), 117.37 + rng.uniform(-0.01, 0.01)
        best = min((distance_m(lat, lon, s.lat, s.lon), s.site_id) for s in sites)
        hit = reg.nearest(lat, lon)
        assert ((hit[1], hit[0].site_id) if hit else None) == (best if best[0] <= 100 else None)


def test_several_sites_at_one_address():
    address = "济南市历城区山大路街道 洪北社区"
    lamp = site("a-lamp", "洪北小区 7号楼前 路灯杆", address)
    community = site("b-community", "洪北社区", address)
    other = site("c-other", "7号楼", address)
    # the one whose name also appears in the address, though its id sorts later
    assert resolve(alarm(address=address), Registry([other, community, lamp])).site.site_id \
        == "b-community"
    # else the lowest site_id
    assert resolve(alarm(address=address), Registry([other, lamp])).site.site_id == "a-lamp"


def test_ad_hoc_sites_keep_the_ids_triage_gave_before():
    for given in (alarm(address="济南市历城区 工业北路88号"), alarm(lat=36.7, lon=117.4),
                  alarm(address="某路", lat=36.7, lon=117.4)):
        loc = given.location
        where = loc.address or f"{loc.lat:.5f},{loc.lon:.5f}"
        found = resolve(given, Registry())
        assert found.site.site_id == "adhoc-" + hashlib.sha256(where.encode()).hexdigest()[:12]
        assert (found.site.name, found.site.type) == (where, "unknown")
        assert (found.site.lat, found.site.lon) == (loc.lat, loc.lon)
        site_key = getattr(correlation, "site_key", None)  # being replaced by resolve
        if site_key is not None:
            assert found.site.site_id == site_key(given)


def test_ad_hoc_sites_are_valid_whatever_the_input():
    long_address = "巨野河街道" * 100  # 500 characters: a site name holds 200
    assert len(resolve(alarm(address=long_address), Registry()).site.name) == 200
    assert len(resolve(alarm("x" * 128, address=long_address), Registry()).site.name) == 200
    found = resolve(alarm(device_id="d" * 128), Registry())
    assert found.site.site_id.startswith("device-") and len(found.site.site_id) <= 128
    with pytest.raises(ValueError, match="names no site, device or location"):
        resolve(alarm(), Registry())


def test_updates_move_a_site_in_every_index():
    reg = registry_from(read_registry(DEMO_SITES))
    count = len(reg)
    moved = site("jb-wenshao-jiayuan", "闻韶佳苑二期", "济南市济阳区济北街道 新元大街1号",
                 lat=36.98, lon=117.18)
    reg.put_site(moved)
    assert len(reg) == count
    assert resolve(alarm(address="济南市济阳区济北街道 闻韶佳苑"), reg).how == "ad_hoc"
    assert resolve(alarm(address="济南市济阳区济北街道 新元大街1号"), reg).site is moved
    assert resolve(alarm(address="闻韶佳苑二期"), reg).site is moved
    assert reg.nearest(36.98, 117.18)[0] is moved
    assert reg.remove_site("jb-wenshao-jiayuan") is moved and len(reg) == count - 1
    assert reg.nearest(36.98, 117.18) is None
    assert resolve(alarm(address="闻韶佳苑二期"), reg).how == "ad_hoc"
    assert reg.remove_site("jb-wenshao-jiayuan") is None


def test_devices_come_and_go():
    reg = Registry([site("a", "甲处")])
    reg.put_device(Device(device_id="d1", site_id="a"))
    assert resolve(alarm(device_id="d1"), reg).site.site_id == "a"
    reg.put_device(Device(device_id="d1", site_id="b"))
    assert resolve(alarm(device_id="d1"), reg).site.site_id == "b"
    assert reg.remove_device("d1").site_id == "b" and reg.device("d1") is None
    assert resolve(alarm(device_id="d1"), reg).site.site_id == "device-d1"


@pytest.mark.parametrize("text,expected", [
    (" 安康街１２号　Ａ座 ", "安康街12号a座"),
    ("济南高新区巨野河街道 银丰国际生物城", "济南高新区巨野河街道银丰国际生物城"),
    ("ＮＯ．５\t号楼", "no.5号楼"),
])
def test_normalize(text, expected):
    assert normalize(text) == expected
