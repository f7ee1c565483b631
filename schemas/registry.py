"""Registry files: the sites and devices a subdistrict registers, as YAML or as CSV.

A YAML file is either a list of sites (the `--sites` file) or a mapping with `sites:`,
`devices:` and `grids:` (the grids' outlines, for the duty officer's map: `id`, `name`,
`outline` [[lat, lon], ...]); a site may list its own devices under `devices:`. A CSV file,
as Excel saves it, holds sites, or devices when its header has a `device_id` column; site
files name overrides in columns such as `police.unit` and `police.contact`. Empty cells mean
"not given".

Every problem comes back as `file:line: field: message` (for YAML the line of the field in the
offending entry, or of the entry when the field is missing; for CSV the line of the row), and a
file with any problem is refused whole.

    >>> parse_registry("site_id,name,type,police.unit\\nlab-3,3号实验室,laboratory,巨野河派出所\\n",
    ...                "sites.csv", "csv").sites[0].overrides["police"].unit
    '巨野河派出所'
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from schemas.site import Device, Grid, Site

__all__ = ["DEVICE_COLUMNS", "SITE_COLUMNS", "RegistryError", "RegistryFile", "parse_registry",
           "read_registry"]

Format = Literal["yaml", "csv"]

SITE_COLUMNS = ("site_id", "name", "type", "address", "grid", "lat", "lon")
"""Columns of a site CSV, besides `<department>.unit` and `<department>.contact`."""
DEVICE_COLUMNS = ("device_id", "site_id", "kind", "name", "heartbeat")
"""Columns of a device CSV (one with a `device_id` column)."""

_REQUIRED = {"site": ("site_id", "name", "type"), "device": ("device_id", "site_id")}
_OVERRIDE_COLUMN = re.compile(r"^([a-z][a-z0-9_]{0,62})\.(unit|contact)$")
_SUFFIXES: dict[str, Format] = {".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}
SECTIONS = ("sites", "devices", "grids")
"""The sections of a YAML registry that is a mapping."""


@dataclass(frozen=True)
class RegistryFile:
    """The sites, devices and grids one registry file declares, in file order."""

    sites: list[Site] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    grids: list[Grid] = field(default_factory=list)


class RegistryError(ValueError):
    """A registry file that cannot be used, with every problem found as `file:line: field: msg`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class _Entry:
    """One site or device before validation, and how to name the line and field of an error
    at a pydantic location inside it."""

    data: dict[str, Any]
    line: Callable[[tuple], int]
    field: Callable[[tuple], str]


Problems = list[tuple[int, str]]  # (line, "file:line: field: message"), sorted by line at the end


def read_registry(path: Path | str, known_sites: Collection[str] | None = None) -> RegistryFile:
    """Read a `.yaml`, `.yml` or `.csv` registry file (UTF-8, with or without a BOM).

        >>> [s.site_id for s in read_registry("streams/demo/sites.yaml").sites][:1]
        ['jyh-yinfeng-lab-3']
    """
    path = Path(path)
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise RegistryError([f"{path}:0: format: a registry file ends in .yaml, .yml or .csv"])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError([f"{path}:0: file: cannot be read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise RegistryError([f"{path}:{line}: encoding: not UTF-8 text; save the file as UTF-8 "
                             f"(in Excel: CSV UTF-8)"]) from None
    return parse_registry(text, str(path), fmt, known_sites)


def parse_registry(text: str, name: str, fmt: Format,
                   known_sites: Collection[str] | None = None) -> RegistryFile:
    """Parse a registry file's text; `name` is only used in problems.

    With `known_sites` (the sites registered before), every device must name a site of this
    file or one of those; without it, devices are not checked against sites."""
    text = text.removeprefix("\ufeff")
    grids: list[_Entry] = []
    if fmt == "yaml":
        sites, devices, grids, problems = _yaml_entries(text, name)
    elif fmt == "csv":
        sites, devices, problems = _csv_entries(text, name)
    else:
        raise RegistryError([f"{name}:0: format: {fmt!r} is not a registry format (yaml or csv)"])
    valid_sites = _validated(Site, sites, name, problems)
    valid_devices = _validated(Device, devices, name, problems)
    valid_grids = _validated(Grid, grids, name, problems)
    _unique("site_id", sites, name, problems)
    _unique("device_id", devices, name, problems)
    _unique("id", grids, name, problems)
    if known_sites is not None:
        declared = {e.data.get("site_id") for e in sites
                    if isinstance(e.data.get("site_id"), str)} | set(known_sites)
        problems += [_problem(name, entry, ("site_id",), f"no site {device.site_id!r} in this "
                                                         f"file or in the registry")
                     for entry, device in valid_devices if device.site_id not in declared]
    if problems:
        raise RegistryError([text for _, text in sorted(problems, key=lambda p: p[0])])
    return RegistryFile([site for _, site in valid_sites], [device for _, device in valid_devices],
                        [grid for _, grid in valid_grids])


def _problem(name: str, entry: _Entry, loc: tuple, message: str) -> tuple[int, str]:
    line = entry.line(loc)
    return line, f"{name}:{line}: {entry.field(loc)}: {message}"


def _validated(model: type[BaseModel], entries: list[_Entry], name: str,
               problems: Problems) -> list[tuple[_Entry, Any]]:
    valid = []
    for entry in entries:
        try:
            valid.append((entry, model.model_validate(entry.data)))
        except ValidationError as exc:
            problems += [_problem(name, entry, tuple(err["loc"]),
                                  err["msg"].removeprefix("Value error, "))
                         for err in exc.errors()]
    return valid


def _unique(key: str, entries: list[_Entry], name: str, problems: Problems) -> None:
    """Ids given twice, valid entries or not (so one run reports both problems)."""
    first: dict[str, int] = {}
    for entry in entries:
        value = entry.data.get(key)
        if not isinstance(value, str):
            continue
        if value in first:
            problems.append(_problem(name, entry, (key,), f"{value!r} appears twice (first on "
                                                          f"line {first[value]})"))
        else:
            first[value] = entry.line((key,))


# --- YAML -------------------------------------------------------------------------------------

def _yaml_entries(text: str,
                  name: str) -> tuple[list[_Entry], list[_Entry], list[_Entry], Problems]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise RegistryError([f"{name}:{line}: yaml: not valid YAML: "
                             f"{getattr(exc, 'problem', None) or exc}"]) from None
    problems: Problems = _duplicate_keys(root, name)
    sites: list[_Entry] = []
    devices: list[_Entry] = []
    grids: list[_Entry] = []
    if data is None:
        return sites, devices, grids, problems
    sections: dict[str, tuple[Any, yaml.Node | None]]  # (what was read, its node), per section
    if isinstance(data, list):
        sections = {"sites": (data, root)}
    elif isinstance(data, dict):
        assert isinstance(root, yaml.MappingNode)  # the node yaml read that dict from
        nodes = {k.value: v for k, v in root.value}
        for key in data:
            if key not in SECTIONS:
                problems.append(_at(name, _node_line(root, (key,)), str(key), "unknown "
                                    "section; a registry has sites:, devices: and grids:"))
        sections = {s: (_list_or_empty(data.get(s)), nodes.get(s)) for s in SECTIONS}
    else:
        problems.append(_at(name, 1, "registry", "a registry is a list of sites, or a mapping "
                                                 "with sites:, devices: and grids:"))
        return sites, devices, grids, problems
    for what, (items, node) in sections.items():
        if not isinstance(items, list):
            problems.append(_at(name, _line(node), what, f"{what} is a list"))
            continue
        if node is None:  # no such section, so no items
            continue
        for i, item in enumerate(items):
            item_node = node.value[i]
            if not isinstance(item, dict):
                key = "id" if what == "grids" else f"{what[:-1]}_id"
                problems.append(_at(name, _line(item_node), what[:-1],
                                    f"each {what[:-1]} is a mapping ({key}: ...)"))
            elif what != "sites":
                (devices if what == "devices" else grids).append(_yaml_entry(item, item_node))
            else:
                site = dict(item)
                nested = _list_or_empty(site.pop("devices", None))
                sites.append(_yaml_entry(site, item_node))
                devices += _nested_devices(site.get("site_id"), nested, item_node, name, problems)
    return sites, devices, grids, problems


def _nested_devices(site_id: Any, nested: Any, site_node: yaml.Node, name: str,
                    problems: Problems) -> list[_Entry]:
    """The devices a site lists under `devices:`; they belong to that site. (Under a site
    without a usable id there is nothing to check them against; the site is refused anyway.)"""
    if not isinstance(site_id, str):
        return []
    if not isinstance(nested, list):
        problems.append(_at(name, _node_line(site_node, ("devices",)), "devices",
                            "devices is a list"))
        return []
    entries = []
    for j, item in enumerate(nested):
        entry = _yaml_entry(item, site_node, ("devices", j))
        if not isinstance(item, dict):
            problems.append(_problem(name, entry, (), "each device is a mapping (device_id: ...)"))
        elif item.get("site_id", site_id) != site_id:
            problems.append(_problem(name, entry, ("site_id",),
                                     f"is {item['site_id']!r} but the device is listed under "
                                     f"site {site_id!r}; leave it out"))
        else:
            entries.append(_yaml_entry({**item, "site_id": site_id}, site_node, ("devices", j)))
    return entries


def _list_or_empty(value: Any) -> Any:
    return [] if value is None else value


def _yaml_entry(data: Any, node: yaml.Node, prefix: tuple = ()) -> _Entry:
    return _Entry(data, lambda loc: _node_line(node, prefix + loc),
                  lambda loc: ".".join(str(p) for p in prefix + loc) or "entry")


def _at(name: str, line: int, field_name: str, message: str) -> tuple[int, str]:
    return line, f"{name}:{line}: {field_name}: {message}"


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _node_line(node: yaml.Node | None, loc: tuple) -> int:
    """The 1-based line of the field at a pydantic location, or of its nearest parent."""
    line = _line(node)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:
                break
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = _line(node)
    return line


def _duplicate_keys(node: yaml.Node | None, name: str) -> Problems:
    """Keys given twice in one mapping: YAML would silently keep the last."""
    if isinstance(node, yaml.SequenceNode):
        return [p for child in node.value for p in _duplicate_keys(child, name)]
    if not isinstance(node, yaml.MappingNode):
        return []
    problems: Problems = []
    first: dict[str, int] = {}
    for key, value in node.value:
        problems += _duplicate_keys(value, name)
        if not isinstance(key, yaml.ScalarNode):
            continue
        if key.value in first:
            problems.append(_at(name, _line(key), key.value, f"given twice in one entry (first "
                                                             f"on line {first[key.value]})"))
        first.setdefault(key.value, _line(key))
    return problems


# --- CSV --------------------------------------------------------------------------------------

def _csv_entries(text: str, name: str) -> tuple[list[_Entry], list[_Entry], Problems]:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    end = 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            cells = [c.strip() for c in cells]
            if any(cells):
                rows.append((start, cells))
    except csv.Error as exc:
        raise RegistryError([f"{name}:{reader.line_num}: csv: not valid CSV: {exc}"]) from None
    if not rows:
        return [], [], []
    (header_line, header), rows = rows[0], rows[1:]
    kind = "device" if "device_id" in header else "site"
    problems = _header_problems(header, header_line, kind, name)
    if problems:
        return [], [], problems
    entries = []
    for line, cells in rows:
        data: dict[str, Any] = {}
        for index, cell in enumerate(cells):
            column = header[index] if index < len(header) else ""
            if not cell:
                continue
            if not column:
                problems.append(_at(name, line, f"column {index + 1}",
                                    "a value in a column without a header"))
            elif override := _OVERRIDE_COLUMN.match(column):
                department, attribute = override.groups()
                data.setdefault("overrides", {}).setdefault(department, {})[attribute] = cell
            else:
                data[column] = cell
        entries.append(_Entry(data, _whole_line(line), _column_of))
    return (entries, [], problems) if kind == "site" else ([], entries, problems)


def _header_problems(header: list[str], line: int, kind: str, name: str) -> Problems:
    allowed = DEVICE_COLUMNS if kind == "device" else SITE_COLUMNS
    problems, seen = [], set()
    for column in header:
        if column in seen:
            problems.append(_at(name, line, column, "column appears twice"))
        seen.add(column)
        if not column or column in allowed or (kind == "site" and _OVERRIDE_COLUMN.match(column)):
            continue
        expected = ", ".join(allowed)
        if kind == "site":
            expected += (" or <department>.unit / <department>.contact, where a department id "
                         "is lower-case letters, digits and _")
        problems.append(_at(name, line, column, f"unknown column; a {kind} file has {expected}"))
    problems += [_at(name, line, column, f"missing column; a {kind} file needs it")
                 for column in _REQUIRED[kind] if column not in seen]
    return problems


def _whole_line(line: int) -> Callable[[tuple], int]:
    """The line of every field of a CSV row: the row's own."""
    return lambda loc: line


def _column_of(loc: tuple) -> str:
    """The CSV column of a pydantic error location: `("overrides", "police", "unit")` is
    `police.unit`."""
    if len(loc) >= 3 and loc[0] == "overrides":
        return f"{loc[1]}.{loc[2]}"
    return ".".join(str(p) for p in loc) or "row"
