"""Load the campaign playbooks (专项整治方案), one YAML file each, checked as the contingency
playbooks are: every problem comes back as `Problem(file, line, message)` naming the field, and
a set with any problem is refused whole.

    >>> campaigns = load_campaigns(CAMPAIGNS)
    >>> campaigns["gas-safety"].playbook.title
    '燃气安全专项整治'
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from playbooks.load import PlaybookError, Problem, line_of, read_model
from schemas.campaign import CampaignPlaybook

__all__ = ["CAMPAIGNS", "LoadedCampaign", "load_campaigns", "parse_campaign"]

CAMPAIGNS = Path(__file__).parent / "campaigns"
"""The campaign playbooks shipped with Whistle."""


@dataclass(frozen=True)
class LoadedCampaign:
    """A campaign playbook with where it came from and the hash of its bytes (recorded on
    each campaign started from it)."""

    playbook: CampaignPlaybook
    source: str
    content_hash: str
    node: yaml.Node | None = field(default=None, repr=False, compare=False)

    def line(self, *loc: Any) -> int:
        """The line in the source file of a field, e.g. `line("steps", 2, "department")`."""
        return line_of(self.node, loc)


def parse_campaign(text: str, source: str) -> LoadedCampaign:
    """Parse one campaign playbook's text; raise PlaybookError naming file, line and field."""
    playbook, node, digest = read_model(text, source, CampaignPlaybook, "campaign playbook")
    return LoadedCampaign(playbook, source, digest, node)


def _unknown_departments(loaded: LoadedCampaign, known: Collection[str]) -> list[Problem]:
    return [Problem(loaded.source, loaded.line("steps", i, "department"),
                    f"steps.{i}.department: {step.department!r} is not a configured department")
            for i, step in enumerate(loaded.playbook.steps) if step.department not in known]


def load_campaigns(directory: Path | str = CAMPAIGNS,
                   departments: Collection[str] | None = None) -> dict[str, LoadedCampaign]:
    """Every `*.yaml` / `*.yml` file in `directory`, by campaign id; raise PlaybookError with
    all problems. With `departments`, every step's department must be one of them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PlaybookError([Problem(str(directory), 0, "not a directory of campaign playbooks")])
    found: dict[str, LoadedCampaign] = {}
    problems: list[Problem] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            loaded = parse_campaign(path.read_text(encoding="utf-8"), str(path))
        except PlaybookError as exc:
            problems.extend(exc.problems)
            continue
        except UnicodeDecodeError:
            problems.append(Problem(str(path), 1, "not UTF-8 text"))
            continue
        if departments is not None:
            problems += _unknown_departments(loaded, departments)
        first = found.get(loaded.playbook.id)
        if first is not None:
            problems.append(Problem(loaded.source, loaded.line("id"),
                                    f"id: campaign id {loaded.playbook.id!r} is also used by "
                                    f"{first.source}"))
            continue
        found[loaded.playbook.id] = loaded
    if problems:
        raise PlaybookError(problems)
    return found
