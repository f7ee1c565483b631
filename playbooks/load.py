"""Load a directory of YAML playbooks into a checked, versioned set.

Problems come back as `Problem(file, line, message)` so `whistle playbooks check` can print
`file:line: message` for each; a set with any problem is refused whole.

    >>> pset = load_playbooks(LIBRARY)
    >>> pset.fallback.playbook.id
    'fallback'
"""

from __future__ import annotations

import hashlib
import heapq
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from playbooks.rules import Compiled, Facts, overlap, rank, specificity
from schemas import Playbook

__all__ = ["LIBRARY", "LoadedPlaybook", "PlaybookError", "PlaybookSet", "Problem",
           "line_of", "load_playbooks", "parse_playbook", "read_model"]

LIBRARY = Path(__file__).parent / "library"
"""The playbooks shipped with Whistle."""


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PlaybookError(ValueError):
    """A playbook set that cannot be used, with every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedPlaybook:
    """A playbook with where it came from and the hash of its bytes (recorded on incidents)."""

    playbook: Playbook
    source: str
    content_hash: str
    node: yaml.Node | None = field(default=None, repr=False, compare=False)

    @cached_property
    def compiled(self) -> Compiled:
        return Compiled(self.playbook.match)

    def line(self, *loc: Any) -> int:
        """The line in the source file of a field, e.g. `line("steps", 2, "department")`."""
        return line_of(self.node, loc)


@dataclass(frozen=True)
class PlaybookSet:
    """All playbooks in force; exactly one of them is the fallback.

    `candidates(facts)` narrows the set by kind, signal and site type through a cache of
    rank-ordered lists, so matching costs about the same with 10 or 10,000 playbooks."""

    playbooks: tuple[LoadedPlaybook, ...]
    fallback: LoadedPlaybook
    by_id: dict[str, LoadedPlaybook] = field(repr=False)
    ranked: tuple[LoadedPlaybook, ...] = field(repr=False, default=())
    kinds_named: frozenset[str] = field(repr=False, default=frozenset())
    _cache: dict = field(repr=False, default_factory=dict, compare=False)

    @property
    def digest(self) -> str:
        """One hash for the whole set: changes when any playbook's bytes change."""
        joined = "|".join(sorted(f"{lp.playbook.id}@{lp.content_hash}" for lp in self.playbooks))
        return hashlib.sha256(joined.encode()).hexdigest()[:12]

    def candidates(self, facts: Facts) -> Iterator[LoadedPlaybook]:
        """The non-fallback playbooks that can fit these facts' kind, signal, site type, site
        and grid, most specific first."""
        key = (facts.kind if facts.kind in self.kinds_named else None, facts.signal,
               facts.site_type)
        bucket = self._cache.get(key)
        if bucket is None:
            bucket = _Bucket.of(lp for lp in self.ranked
                                if (not lp.playbook.match.kinds
                                    or key[0] in lp.playbook.match.kinds)
                                and (not lp.playbook.match.signals
                                     or key[1] in lp.playbook.match.signals)
                                and (not lp.playbook.match.site_types
                                     or key[2] in lp.playbook.match.site_types))
            if len(self._cache) < 100_000:  # kinds named, signals and site types bound it
                self._cache[key] = bucket
        return bucket.candidates(facts.site_id, facts.grid, facts.attributes)

    @classmethod
    def of(cls, loaded: list[LoadedPlaybook]) -> PlaybookSet:
        problems = []
        fallbacks = [lp for lp in loaded if lp.playbook.fallback]
        if len(fallbacks) != 1:
            where = ", ".join(lp.source for lp in fallbacks) or "none"
            problems.append(Problem("(set)", 0, f"exactly one fallback playbook is needed, "
                                                f"found {len(fallbacks)} ({where})"))
        by_id: dict[str, LoadedPlaybook] = {}
        for lp in loaded:
            if lp.playbook.id in by_id:
                first = by_id[lp.playbook.id].source
                problems.append(Problem(lp.source, 1, f"playbook id {lp.playbook.id!r} is also "
                                                      f"used by {first}"))
            by_id[lp.playbook.id] = lp
        ranked = sorted((lp for lp in loaded if not lp.playbook.fallback), key=rank)
        problems += _ambiguities(ranked)
        if problems:
            raise PlaybookError(problems)
        kinds = frozenset(k for lp in loaded for k in lp.playbook.match.kinds)
        return cls(tuple(loaded), fallbacks[0], by_id, tuple(ranked), kinds)


@dataclass
class _Bucket:
    """Candidates for one (kind, signal, site type), split by the site or grid they name, so a
    city's thousands of site plans cost nothing to alarms at other sites."""

    by_site: dict[str, list[tuple[tuple, LoadedPlaybook]]]
    by_grid: dict[str, list[tuple[tuple, LoadedPlaybook]]]
    by_attribute: dict[tuple[str, Any], list[tuple[tuple, LoadedPlaybook]]]
    rest: list[tuple[tuple, LoadedPlaybook]]

    @classmethod
    def of(cls, ranked: Iterable[LoadedPlaybook]) -> _Bucket:
        bucket = cls(defaultdict(list), defaultdict(list), defaultdict(list), [])
        for lp in ranked:
            entry = (rank(lp), lp)
            rule = lp.playbook.match
            equal = next(((name, c.eq) for name, c in rule.attributes.items()
                          if c.eq is not None and isinstance(c.eq, (str, int, float, bool))),
                         None)
            if rule.sites:
                for site in rule.sites:
                    bucket.by_site[site].append(entry)
            elif rule.grids:
                for grid in rule.grids:
                    bucket.by_grid[grid].append(entry)
            elif equal is not None:
                bucket.by_attribute[equal].append(entry)
            else:
                bucket.rest.append(entry)
        return cls(dict(bucket.by_site), dict(bucket.by_grid), dict(bucket.by_attribute),
                   bucket.rest)

    def candidates(self, site_id: str, grid: str,
                   attributes: Mapping[str, Any]) -> Iterator[LoadedPlaybook]:
        lists = [found for found in (self.by_site.get(site_id), self.by_grid.get(grid)) if found]
        if self.by_attribute and attributes:
            for name, value in attributes.items():
                if isinstance(value, (str, int, float, bool)):
                    found = self.by_attribute.get((name, value))
                    if found:
                        lists.append(found)
        if not lists:
            return (lp for _, lp in self.rest)
        merged = heapq.merge(*lists, self.rest, key=lambda e: e[0])
        return (lp for _, lp in merged)


def _ambiguities(ranked: list[LoadedPlaybook]) -> list[Problem]:
    """Pairs of equal specificity and priority that could both fit one alarm."""
    groups: dict[tuple, list[LoadedPlaybook]] = defaultdict(list)
    for lp in ranked:
        groups[(specificity(lp.playbook.match), lp.playbook.priority)].append(lp)
    problems = []
    for (spec, prio), members in groups.items():
        for i, j in _maybe_overlapping(members):
            a, b = members[i], members[j]
            if overlap(a.playbook.match, b.playbook.match):
                problems.append(Problem(
                    a.source, a.line("match"),
                    f"playbook {a.playbook.id!r} is as specific ({spec}) and as urgent "
                    f"(priority {prio}) as {b.playbook.id!r} ({b.source}) and both can fit the "
                    f"same alarm: narrow one's match or give one a higher priority"))
    return problems


def _maybe_overlapping(members: list[LoadedPlaybook]) -> Iterator[tuple[int, int]]:
    """Pairs (i, j), j < i, that meet on every list and on every attribute both test for
    equality; `overlap` decides the rest. Indexes keep this near linear for large sets."""
    everyone = set(range(len(members)))
    keys = []
    for lp in members:
        rule = lp.playbook.match
        k = {name: set(getattr(rule, name)) for name in
             ("kinds", "signals", "site_types", "sites", "grids", "levels")}
        k.update({f"attr:{a}": {repr(c.eq)} for a, c in rule.attributes.items()
                  if c.eq is not None})
        keys.append(k)
    index: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    dims = {d for k in keys for d in k}
    for i, k in enumerate(keys):
        for dim in dims:
            for value in k.get(dim) or ("*",):
                index[dim][value].add(i)
    for i, k in enumerate(keys):
        near = set(everyone)
        for dim in dims:
            values = k.get(dim)
            if values:
                near &= set().union(index[dim]["*"], *(index[dim][v] for v in values))
            if len(near) <= 1:
                break
        yield from ((i, j) for j in near if j < i)


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the YAML node at a pydantic error location (or its nearest parent)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = child
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and part < len(node.value)):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _explained(err: ErrorDetails) -> str:
    if err["msg"] == "Keys should be strings" and isinstance(err["input"], bool):
        return ("a key was read as true/false: YAML reads on, off, yes and no as booleans; "
                "quote the key")
    return err["msg"]


M = TypeVar("M", bound=BaseModel)


def read_model(text: str, source: str, model: type[M], what: str
               ) -> tuple[M, yaml.Node | None, str]:
    """One YAML file's text as `model`, with its node tree (for lines) and the hash of its
    text; raise PlaybookError naming file, line and field. `what` names the file's kind in
    the messages ("playbook", "campaign playbook")."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PlaybookError([Problem(source, mark.line + 1 if mark else 1,
                                     f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    except RecursionError:
        raise PlaybookError([Problem(source, 1, "not valid YAML: nested too deeply")]) from None
    if not isinstance(data, dict):
        raise PlaybookError([Problem(source, 1, f"a {what} is a YAML mapping (id, version, ...)")])
    label = what.split()[0]
    try:
        value = model.model_validate(data)
    except RecursionError:
        raise PlaybookError([Problem(source, 1, f"{label}: nested too deeply")]) from None
    except ValidationError as exc:
        raise PlaybookError([
            Problem(source, line_of(node, tuple(err["loc"])),
                    f"{'.'.join(str(p) for p in err['loc']) or label}: {_explained(err)}")
            for err in exc.errors()
        ]) from None
    return value, node, hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def parse_playbook(text: str, source: str) -> LoadedPlaybook:
    """Parse one playbook file's text; raise PlaybookError naming file and line."""
    playbook, node, digest = read_model(text, source, Playbook, "playbook")
    return LoadedPlaybook(playbook, source, digest, node)


def _unknown_departments(loaded: list[LoadedPlaybook], known: Collection[str]) -> list[Problem]:
    return [Problem(lp.source, lp.line(*loc, "department"),
                    f"{'.'.join(map(str, loc))}.department: {step.department!r} is not a "
                    f"configured department")
            for lp in loaded for loc, step in _steps(lp.playbook)
            if step.department not in known] + [
        Problem(lp.source, lp.line(*loc), f"{'.'.join(map(str, loc))}: {dept!r} is not a "
                                          f"configured department")
        for lp in loaded for loc, dept in _escalation_targets(lp.playbook) if dept not in known]


def _steps(pb: Playbook) -> list[tuple[tuple, Any]]:
    """Every step with where it is in the file, the verification included."""
    found: list[tuple[tuple, Any]] = [(("steps", i), step) for i, step in enumerate(pb.steps)]
    if pb.confirm is not None:
        found.append((("confirm", "verify"), pb.confirm.verify))
    return found


def _escalation_targets(pb: Playbook) -> list[tuple[tuple, str]]:
    found = [(("escalate", r, "notify", n), d) for r, rule in enumerate(pb.escalate)
             for n, d in enumerate(rule.notify)]
    for loc, step in _steps(pb):
        found += [((*loc, "escalate", r, "notify", n), d)
                  for r, rule in enumerate(step.escalate or []) for n, d in enumerate(rule.notify)]
    found += [(("whistle", r, "departments", n), d) for r, rule in enumerate(pb.whistle)
              for n, d in enumerate(rule.departments)]
    return found


def load_playbooks(directory: Path | str = LIBRARY,
                   departments: Collection[str] | None = None) -> PlaybookSet:
    """Load every `*.yaml` / `*.yml` file in `directory`; raise PlaybookError with all problems.

    With `departments`, every department a step or an escalation names must be one of them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PlaybookError([Problem(str(directory), 0, "not a directory of playbooks")])
    loaded: list[LoadedPlaybook] = []
    problems: list[Problem] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            loaded.append(parse_playbook(path.read_text(encoding="utf-8"), str(path)))
        except PlaybookError as exc:
            problems.extend(exc.problems)
        except UnicodeDecodeError:
            problems.append(Problem(str(path), 1, "not UTF-8 text"))
    if departments is not None:
        problems += _unknown_departments(loaded, departments)
    try:  # set-wide checks run on the files that parsed, so one run reports everything
        pset = PlaybookSet.of(loaded)
    except PlaybookError as exc:
        problems.extend(exc.problems)
    if problems:
        raise PlaybookError(problems)
    return pset
