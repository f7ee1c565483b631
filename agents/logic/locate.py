"""Where an alarm is (pure): from its site id, its device, its address or its coordinates.

Triage resolves every alarm to a site before correlating, so alarms about one place join one
incident however they name it: a detector by its device id, a 119 call by an address, an app
by coordinates. `resolve` tries, in order (the first that fits wins):

    how            when
    site_id        the alarm names a registered site
    unregistered   the alarm names a site nobody registered (an ad-hoc site with that id)
    device         no site id; the device is registered (its site, ad hoc if missing)
    address        the reported address equals a site's address, after `normalize`
    name           ... equals a site's name, or contains one (the longest; 4+ characters)
    nearest        the reported coordinates lie within 100 m of a site (the nearest)
    ad_hoc         none of these: a site made up from the address or the coordinates

Ties are broken deterministically: of several sites at one address, the one whose name also
appears in the address, else the lowest site_id; of several sites with the name found, the
lowest site_id; of sites at the same distance, the lowest site_id.

    >>> registry = registry_from(read_registry("streams/demo/sites.yaml"))
    >>> resolve(Alarm.model_validate({"alarm_id": "119:7", "kind": "fire_report",
    ...     "occurred_at": "2023-05-16T14:03:07+08:00",
    ...     "location": {"address": "济南市济阳区济北街道　安康街１２号"}}), registry).how
    'address'
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from math import asin, cos, degrees, floor, radians, sin, sqrt
from typing import Literal

from schemas import Alarm, Device, Location, Site
from schemas.registry import RegistryFile
from schemas.site import Grid

__all__ = ["CELL_DEG", "HOWS", "NEAR_M", "How", "Registry", "Resolved", "distance_m",
           "normalize", "registry_from", "resolve"]

How = Literal["site_id", "unregistered", "device", "address", "name", "nearest", "ad_hoc"]
HOWS: tuple[How, ...] = How.__args__  # type: ignore[attr-defined]

NEAR_M = 100.0
"""How close reported coordinates must lie to a registered site to count as that site."""
CELL_DEG = 0.001
"""Side of a spatial-index cell: about 111 m north-south, 89 m east-west at Jinan."""
MIN_NAME = 4
"""Shorter names (楼, 3号楼) are too common to be recognised inside an address."""

EARTH_RADIUS_M = 6_371_008.8
_COLUMNS = round(360 / CELL_DEG)
_CELL_M = EARTH_RADIUS_M * radians(CELL_DEG)  # north-south size of a cell


def normalize(text: str) -> str:
    """The form addresses and names are compared in: NFKC (full-width letters, digits and
    spaces become ordinary ones), no whitespace at all, case folded.

        >>> normalize(" 安康街１２号　Ａ座 ")
        '安康街12号a座'
    """
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres.

        >>> round(distance_m(36.68, 117.37, 36.681, 117.37))
        111
    """
    p1, p2 = radians(lat1), radians(lat2)
    a = sin((p2 - p1) / 2) ** 2 + cos(p1) * cos(p2) * sin(radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * asin(min(1.0, sqrt(a)))


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return floor(lat / CELL_DEG), floor((lon + 180) / CELL_DEG) % _COLUMNS


@dataclass(frozen=True)
class Resolved:
    """The site an alarm is at, how it was found, and for `nearest` how far away it is."""

    site: Site
    how: How
    distance_m: float | None = None


class Registry:
    """The registered sites and devices, indexed by normalized address and name and by a
    spatial grid, and updated one record at a time as registry events arrive.

        >>> registry = Registry(sites, devices)
        >>> registry.put_site(site); registry.remove_device("smk-9")
        >>> registry.nearest(36.6871, 117.3702)
        (Site(site_id='jyh-yinfeng-lab-3', ...), 0.0)

    `len(registry)` is the number of sites.
    """

    def __init__(self, sites: Iterable[Site] = (), devices: Iterable[Device] = (),
                 grids: Iterable[Grid] = ()) -> None:
        self._sites: dict[str, Site] = {}
        self._devices: dict[str, Device] = {}
        self.grids: dict[str, Grid] = {g.id: g for g in grids}  # outlines, for the map only
        self._by_address: dict[str, set[str]] = {}
        self._by_name: dict[str, set[str]] = {}
        self._cells: dict[tuple[int, int], dict[str, tuple[float, float]]] = {}
        self._name_lengths: Counter[int] = Counter()  # of names of MIN_NAME characters or more
        for site in sites:
            self.put_site(site)
        for device in devices:
            self.put_device(device)

    def __len__(self) -> int:
        return len(self._sites)

    def site(self, site_id: str) -> Site | None:
        return self._sites.get(site_id)

    def sites(self) -> Iterator[Site]:
        """Every registered site, in the order they were added."""
        return iter(self._sites.values())

    def device(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def devices(self) -> Iterator[Device]:
        return iter(self._devices.values())

    def put_device(self, device: Device) -> None:
        """Add a device, or replace the one with its id."""
        self._devices[device.device_id] = device

    def remove_device(self, device_id: str) -> Device | None:
        return self._devices.pop(device_id, None)

    def put_site(self, site: Site) -> None:
        """Add a site, or replace the one with its id (and its place in every index)."""
        self.remove_site(site.site_id)
        self._sites[site.site_id] = site
        for index, key in self._index_keys(site):
            index.setdefault(key, set()).add(site.site_id)
        if site.lat is not None and site.lon is not None:
            self._cells.setdefault(_cell(site.lat, site.lon), {})[site.site_id] = (site.lat,
                                                                                   site.lon)
        if len(name := normalize(site.name)) >= MIN_NAME:
            self._name_lengths[len(name)] += 1

    def remove_site(self, site_id: str) -> Site | None:
        """Forget a site. Its devices stay: their alarms then go to an ad-hoc site."""
        site = self._sites.pop(site_id, None)
        if site is None:
            return None
        for index, key in self._index_keys(site):
            index[key].discard(site_id)
            if not index[key]:
                del index[key]
        if site.lat is not None and site.lon is not None:
            cell = self._cells[_cell(site.lat, site.lon)]
            del cell[site_id]
            if not cell:
                del self._cells[_cell(site.lat, site.lon)]
        if len(name := normalize(site.name)) >= MIN_NAME:
            self._name_lengths[len(name)] -= 1
            if not self._name_lengths[len(name)]:
                del self._name_lengths[len(name)]
        return site

    def _index_keys(self, site: Site) -> Iterator[tuple[dict[str, set[str]], str]]:
        if address := normalize(site.address):
            yield self._by_address, address
        if name := normalize(site.name):
            yield self._by_name, name

    def by_address(self, address: str) -> tuple[Site, How] | None:
        """The site a reported address names: equal to its address, equal to its name, or
        containing its name (see the module docstring for ties)."""
        key = normalize(address)
        if ids := self._by_address.get(key):
            best = min(ids, key=lambda i: (normalize(self._sites[i].name) not in key, i))
            return self._sites[best], "address"
        if ids := self._by_name.get(key):
            return self._sites[min(ids)], "name"
        for length in sorted(self._name_lengths, reverse=True):
            if length > len(key):
                continue
            found = [i for start in range(len(key) - length + 1)
                     for i in self._by_name.get(key[start:start + length], ())]
            if found:
                return self._sites[min(found)], "name"
        return None

    def nearest(self, lat: float, lon: float,
                within_m: float = NEAR_M) -> tuple[Site, float] | None:
        """The registered site nearest to a point, if one lies within `within_m` metres, and
        its distance. Looks only at the grid cells that can hold such a site."""
        rows = int(within_m / _CELL_M) + 1
        farthest = radians(min(90.0, abs(lat) + rows * CELL_DEG))
        span = _CELL_M * cos(farthest)
        columns = int(within_m / span) + 1 if span > within_m / _COLUMNS else _COLUMNS
        if (2 * rows + 1) * (2 * columns + 1) > len(self._cells):  # sparse, or near a pole
            cells: Iterable[dict[str, tuple[float, float]]] = self._cells.values()
        else:
            row, column = _cell(lat, lon)
            cells = [cell for r in range(row - rows, row + rows + 1)
                     for c in range(column - columns, column + columns + 1)
                     if (cell := self._cells.get((r, c % _COLUMNS)))]
        best: tuple[float, str] | None = None
        reach = degrees(within_m / EARTH_RADIUS_M)  # of latitude
        for cell in cells:
            for site_id, (site_lat, site_lon) in cell.items():
                if abs(site_lat - lat) > reach:  # cheaper than the haversine, and never wrong
                    continue
                d = distance_m(lat, lon, site_lat, site_lon)
                if d <= within_m and (best is None or (d, site_id) < best):
                    best = (d, site_id)
        return (self._sites[best[1]], best[0]) if best is not None else None


def registry_from(file: RegistryFile) -> Registry:
    """A registry holding what one registry file declares."""
    return Registry(file.sites, file.devices, file.grids)


def resolve(alarm: Alarm, registry: Registry) -> Resolved:
    """The site an alarm is at (see the module docstring for the rules and their order).

    Raises ValueError for an alarm that names no site, device or location: the Alarm model
    refuses those, so one only arrives here built without validation."""
    location = alarm.location
    address = location.address if location is not None else None
    if alarm.site_id:
        site = registry.site(alarm.site_id)
        if site is not None:
            return Resolved(site, "site_id")
        return Resolved(Site.ad_hoc(alarm.site_id, address), "unregistered")
    device = registry.device(alarm.device_id) if alarm.device_id else None
    if device is not None:
        return Resolved(registry.site(device.site_id) or Site.ad_hoc(device.site_id, address),
                        "device")
    if location is not None:
        if address and (found := registry.by_address(address)):
            return Resolved(*found)
        if location.lat is not None and location.lon is not None:
            if near := registry.nearest(location.lat, location.lon):
                return Resolved(near[0], "nearest", near[1])
        return Resolved(_ad_hoc(location), "ad_hoc")
    if alarm.device_id:
        site_id = "device-" + alarm.device_id
        if len(site_id) > 128:  # an id is at most 128 characters
            site_id = "device-" + hashlib.sha256(alarm.device_id.encode("utf-8")).hexdigest()[:12]
        return Resolved(Site.ad_hoc(site_id), "ad_hoc")
    raise ValueError(f"alarm {alarm.alarm_id!r} names no site, device or location")


def _ad_hoc(location: Location) -> Site:
    """A site for a place nobody registered. Its id is the key triage has always given such
    alarms (`adhoc-` and a hash of the address, else of the coordinates), so stored incidents
    and topic keys still line up."""
    coordinates = (f"{location.lat:.5f},{location.lon:.5f}"
                   if location.lat is not None and location.lon is not None else "")
    where = location.address or coordinates
    site_id = "adhoc-" + hashlib.sha256(where.encode("utf-8")).hexdigest()[:12]
    return Site(site_id=site_id, name=where[:200] or site_id, type="unknown",
                address=location.address or "", lat=location.lat, lon=location.lon)


def _benchmark(sizes: tuple[int, ...] = (1_000, 10_000, 100_000), queries: int = 2_000) -> None:
    """Median time of `nearest` and `resolve` for registries of random sites around Jinan
    (36.68N 117.37E, within ±0.1°, about 22 × 18 km). `resolve` is timed on its longest path:
    an unregistered address with coordinates (address, name and nearest all tried)."""
    import random
    import statistics
    import time
    from datetime import datetime

    rng = random.Random(7)

    def point() -> tuple[float, float]:
        return 36.68 + rng.uniform(-0.1, 0.1), 117.37 + rng.uniform(-0.1, 0.1)

    def median_us(calls: list) -> float:
        times = []
        for call in calls:
            start = time.perf_counter_ns()
            call()
            times.append(time.perf_counter_ns() - start)
        return statistics.median(times) / 1000

    print(f"{'sites':>7}  {'nearest':>12}  {'resolve':>12}  {'alarms placed nearest':>22}")
    for size in sizes:
        registry = Registry(
            Site(site_id=f"s{i:06d}", name=f"测试小区{i}号楼", type="residential",
                 address=f"济南市历城区 测试路{i}号", lat=lat, lon=lon)
            for i, (lat, lon) in ((i, point()) for i in range(size)))
        points = [point() for _ in range(queries)]
        alarms = [Alarm.model_construct(
            alarm_id=f"bench:{n}", kind="smoke", signal="alarm", site_id=None, device_id=None,
            occurred_at=datetime.now(UTC), attributes={},
            location=Location(address=f"济南市历城区 未登记路{n}号附近", lat=lat, lon=lon))
            for n, (lat, lon) in enumerate(points)]
        nearest = median_us([lambda p=p, r=registry: r.nearest(*p) for p in points])
        resolved = median_us([lambda a=a, r=registry: resolve(a, r) for a in alarms])
        placed = sum(resolve(a, registry).how == "nearest" for a in alarms) / len(alarms)
        print(f"{size:>7}  {nearest:>9.1f} µs  {resolved:>9.1f} µs  {placed:>21.0%}")


if __name__ == "__main__":
    _benchmark()
