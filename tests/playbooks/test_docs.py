"""Every YAML example in docs/playbooks.md is a valid playbook with known departments."""

import re
from pathlib import Path

import pytest

from playbooks import parse_playbook
from playbooks.departments import load_departments

DOC = Path(__file__).resolve().parents[2] / "docs" / "playbooks.md"
EXAMPLES = re.findall(r"```yaml\n(.*?)```", DOC.read_text("utf-8"), re.S)


def test_the_reference_has_examples():
    assert len(EXAMPLES) >= 12


@pytest.mark.parametrize("n", range(len(EXAMPLES)))
def test_example_is_valid(n):
    loaded = parse_playbook(EXAMPLES[n], f"docs/playbooks.md example {n + 1}")
    known = set(load_departments().by_id())
    named = {s.department for s in loaded.playbook.steps} | {
        d for r in loaded.playbook.escalate for d in r.notify} | {
        d for s in loaded.playbook.steps for r in (s.escalate or []) for d in r.notify}
    assert named <= known
