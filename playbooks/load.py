"""Load a directory of YAML playbooks into a checked, versioned set.

Problems come back as `Problem(file, line, message)` so `whistle playbooks check` can print
`file:line: message` for each; a set with any problem is refused whole.

    >>> pset = load_playbooks(LIBRARY)
    >>> pset.fallback.playbook.id
    'fallback'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas import Playbook

__all__ = ["LIBRARY", "LoadedPlaybook", "PlaybookError", "PlaybookSet", "Problem",
           "load_playbooks", "parse_playbook"]

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


@dataclass(frozen=True)
class PlaybookSet:
    """All playbooks in force; exactly one of them is the fallback."""

    playbooks: tuple[LoadedPlaybook, ...]
    fallback: LoadedPlaybook
    by_id: dict[str, LoadedPlaybook] = field(repr=False)

    @classmethod
    def of(cls, loaded: list[LoadedPlaybook]) -> "PlaybookSet":
        problems = []
        fallbacks = [lp for lp in loaded if lp.playbook.fallback]
        if len(fallbacks) != 1:
            where = ", ".join(lp.source for lp in fallbacks) or "none"
            problems.append(Problem("(set)", 0, f"exactly one fallback playbook is needed, "
                                                f"found {len(fallbacks)} ({where})"))
        by_id: dict[str, LoadedPlaybook] = {}
        for lp in loaded:
            if lp.playbook.id in by_id:
                problems.append(Problem(lp.source, 1, f"playbook id {lp.playbook.id!r} is "
                                                      f"also used by {by_id[lp.playbook.id].source}"))
            by_id[lp.playbook.id] = lp
        if problems:
            raise PlaybookError(problems)
        return cls(tuple(loaded), fallbacks[0], by_id)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the YAML node at a pydantic error location (or its nearest parent)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def parse_playbook(text: str, source: str) -> LoadedPlaybook:
    """Parse one playbook file's text; raise PlaybookError naming file and line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PlaybookError([Problem(source, mark.line + 1 if mark else 1,
                                     f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if not isinstance(data, dict):
        raise PlaybookError([Problem(source, 1, "a playbook is a YAML mapping (id, version, ...)")])
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        raise PlaybookError([
            Problem(source, _line_of(node, tuple(err["loc"])),
                    f"{'.'.join(str(p) for p in err['loc']) or 'playbook'}: {err['msg']}")
            for err in exc.errors()
        ]) from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return LoadedPlaybook(playbook, source, digest)


def load_playbooks(directory: Path | str = LIBRARY) -> PlaybookSet:
    """Load every `*.yaml` / `*.yml` file in `directory`; raise PlaybookError with all problems."""
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
    if problems:
        raise PlaybookError(problems)
    return PlaybookSet.of(loaded)
