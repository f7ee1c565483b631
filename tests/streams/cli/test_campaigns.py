"""`whistle campaign check` on the shipped campaign playbooks (pass) and broken ones
(file:line), a start-up refused for a broken one, and `whistle campaign` with nothing to
answer it (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playbooks.campaigns import CAMPAIGNS
from streams.kafka.broker import free_port


def whistle(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def broken(tmp_path: Path) -> Path:
    (tmp_path / "ok.yaml").write_text((CAMPAIGNS / "gas-safety.yaml").read_text("utf-8"),
                                      encoding="utf-8")
    (tmp_path / "hours.yaml").write_text(
        "id: hours\nversion: 1\ntitle: 按小时\ntargets: {types: [market]}\nsteps:\n"
        "  - {department: enforcement, action: 检查, within: 12h}\n", encoding="utf-8")
    (tmp_path / "who.yaml").write_text(
        "id: who\nversion: 1\ntitle: 谁\ntargets: {types: [market]}\nsteps:\n"
        "  - department: housing_bureau\n    action: 检查\n    within: 7d\n", encoding="utf-8")
    return tmp_path


def test_the_shipped_campaigns_pass_and_broken_ones_are_named_by_file_and_line(tmp_path):
    shipped = whistle("campaign", "check")
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert "4 campaign playbooks" in shipped.stdout and "gas-safety" in shipped.stdout
    out = whistle("campaign", "check", str(broken(tmp_path)))
    assert out.returncode == 1
    assert f"{tmp_path / 'hours.yaml'}:6: steps.0.within:" in out.stdout
    assert (f"{tmp_path / 'who.yaml'}:6: steps.0.department: 'housing_bureau' is not a "
            f"configured department") in out.stdout


def test_a_broken_campaign_playbook_refuses_the_start_naming_file_and_line(tmp_path):
    (tmp_path / "campaigns").mkdir()
    out = whistle("up", "--port", str(free_port()), "--data", str(tmp_path / "data"),
                  env={"WHISTLE_CAMPAIGNS": str(broken(tmp_path / "campaigns"))})
    assert out.returncode == 1
    assert "the campaign playbooks in" in out.stderr and "hours.yaml:6:" in out.stderr
    assert not (tmp_path / "data").exists(), "refused before anything started"


def test_nothing_answering_is_exit_2():
    out = whistle("campaign", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert out.returncode == 2 and "did not answer" in out.stderr
