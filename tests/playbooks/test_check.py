"""`whistle playbooks check` on the library (passes) and on broken playbooks (file:line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from playbooks import LIBRARY, load_playbooks

BROKEN = Path(__file__).parent / "broken"
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "playbook.schema.json"


def check(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", "playbooks", "check",
                           str(directory)], capture_output=True, text=True, timeout=60)


def test_the_library_passes_and_covers_the_seed_cases():
    out = check(LIBRARY)
    assert out.returncode == 0, out.stdout + out.stderr
    ids = {lp.playbook.id for lp in load_playbooks(LIBRARY).playbooks}
    assert len(ids) >= 13
    assert {"laboratory-fire", "residential-smoke", "high-rise-fire", "elderly-care-fire",
            "small-venue-fire", "gas-leak", "electrical-fire", "street-light-trip",
            "lamp-post-wiring", "factory-power-trip", "warehouse-hazmat", "village-house-fire",
            "citizen-fire-report", "fallback"} <= ids


EXPECTED = {
    "bad-level.yaml:4:": "level: Input should be 'I', 'II', 'III' or 'IV'",
    "bad-duration.yaml:10:": "steps.0.ack_within:",
    "unknown-department.yaml:8:": "'housing_bureau' is not a configured department",
    "yaml-on-trap.yaml:9:": "escalate.0.on_overdue: Field required",
    "wait-cycle.yaml:7:": "in a circle: a -> b -> a",
    "bad-yaml.yaml:6:": "not valid YAML",
    "bad-window.yaml:7:": 'match.hours.0: Value error, an hour window is "HH:MM-HH:MM"',
    "bad-window.yaml:8:": "unknown time zone 'Mars/Olympus'",
    "ambiguous-b.yaml:6:": "as specific (2) and as urgent (priority 0) as 'ambiguous-a'",
}


def test_broken_playbooks_fail_with_file_and_line():
    out = check(BROKEN)
    assert out.returncode == 1
    lines = [line.replace(str(BROKEN) + "/", "") for line in out.stdout.splitlines()]
    for where, what in EXPECTED.items():
        assert any(line.startswith(where) and what in line for line in lines), (where, lines)


def test_the_committed_json_schema_is_current_and_accepts_the_library():
    from streams.cli.playbooks import schema

    committed = json.loads(SCHEMA.read_text("utf-8"))
    assert committed == schema(), "run: whistle playbooks schema -o schemas/playbook.schema.json"
    validator = jsonschema.Draft202012Validator(committed)
    for path in sorted(LIBRARY.glob("*.yaml")):
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text("utf-8"))))
        assert not errors, (path.name, [e.message for e in errors])


@pytest.mark.parametrize("name", ["bad-level.yaml", "yaml-on-trap.yaml"])
def test_the_json_schema_flags_what_check_flags(name):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text("utf-8")))
    assert list(validator.iter_errors(yaml.safe_load((BROKEN / name).read_text("utf-8"))))
