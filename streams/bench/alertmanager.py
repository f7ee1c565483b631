"""Debian's Prometheus Alertmanager as `whistle bench --peer alertmanager` runs it: the route
tree equivalent to the playbooks, and the process.

    config = alertmanager_config(library, departments, receiver.url)
    with Alertmanager(config, scratch) as am:          # 127.0.0.1:<free port>, clustering off
        httpx.post(f"{am.url}/api/v2/alerts", json=[{"labels": {"kind": "fire_report", ...}}])

Alertmanager 0.25 accepts `group_wait: 0s` (an alert that opens a group is flushed at once)
but refuses `group_interval: 0s` and `repeat_interval: 0s` ("cannot be zero"); its durations
go down to 1ms.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from agents.logic.confirmation import judge
from agents.logic.correlation import PEOPLE_KINDS
from playbooks import Facts, PlaybookSet, match
from playbooks.coordinator import PlaybookLibrary
from playbooks.plan import ready_steps
from schemas import Evidence, utc_now
from streams.kafka.broker import free_port
from streams.procs import Child, answers_ok, child_options

__all__ = ["ALERTMANAGER", "GROUP_INTERVAL", "Alertmanager", "PeerError", "alertmanager_config",
           "first_departments"]

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
PACKAGE = "prometheus-alertmanager"
# Only group_wait lies on the measured path (each site is a group holding one alert). A group
# is flushed again every group_interval, for nothing here (no new alert, repeat_interval far
# off), so a short one only burns CPU the two sides share: at 1ms, 1,000 idle groups kept
# Alertmanager 70% busy and a burst of 500 alerts took 3x as long to notify.
GROUP_INTERVAL = "5m"
REPEAT_INTERVAL = "1000h"


class PeerError(RuntimeError):
    """The peer cannot be run or compared; the message says why and what to do."""


# -- the route tree ---------------------------------------------------------------------------

def first_departments(playbooks: PlaybookSet | PlaybookLibrary, kind: str,
                      at: datetime | None = None) -> list[str]:
    """The departments Whistle tasks (in playbook order) when one alarm of `kind` opens an
    incident at an unregistered site: the winning playbook's steps ready at its level,
    confirmed or not as one alarm leaves it.

        >>> first_departments(load_playbooks(LIBRARY), "fire_report")
        ['fire_brigade', 'grid_worker']
    """
    pset = playbooks.current if isinstance(playbooks, PlaybookLibrary) else playbooks
    facts = Facts(kind=kind, signal="alarm", site_type="unknown", site_id="bench-",
                  at=at or utc_now())
    playbook = match(pset, facts).winner.playbook
    person = kind in PEOPLE_KINDS
    evidence = Evidence(devices=[] if person else ["alarm:bench"], people=person)
    confirmed = judge(playbook, evidence)[0] == "confirmed"
    steps = ready_steps(playbook, level=playbook.level, confirmed=confirmed)
    return list(dict.fromkeys(s.department for s in steps))


def _matcher(name: str, value: str) -> str:
    return f"{name}={json.dumps(value, ensure_ascii=False)}"


def alertmanager_config(playbooks: PlaybookSet | PlaybookLibrary, departments: Iterable[str],
                        receiver_url: str, *, group_interval: str = GROUP_INTERVAL,
                        at: datetime | None = None) -> dict:
    """Alertmanager's configuration (YAML-dumpable) equivalent to the playbooks for alarms at
    unregistered sites: under a root route to a `null` receiver, one route per kind a playbook
    names (`kind="<kind>"`, the first that matches wins, as one playbook wins in Whistle) with
    one child per department it tasks (`continue: true`), then a catch-all route for what only
    the fallback playbook takes. Alerts are grouped by `site_id` (an incident per site) with
    `group_wait: 0s`; each department is one webhook receiver,
    `{receiver_url}/alertmanager/<department>`, without resolved notifications.

        yaml.safe_dump(alertmanager_config(library, ["fire_brigade", ...], receiver.url))
    """
    pset = playbooks.current if isinstance(playbooks, PlaybookLibrary) else playbooks
    known = list(dict.fromkeys(departments))
    routes = []
    for kind in [*sorted(pset.kinds_named), None]:
        tasked = first_departments(pset, kind or "(no playbook names this kind)", at)
        missing = [d for d in tasked if d not in known]
        if missing:
            raise PeerError(f"the playbooks task {', '.join(missing)}, which have no receiver")
        route: dict[str, Any] = {"receiver": "null"}
        if kind is not None:
            route["matchers"] = [_matcher("kind", kind)]
        if tasked:
            route["routes"] = [{"receiver": d, "continue": True} for d in tasked]
        routes.append(route)
    base = receiver_url.rstrip("/")
    return {
        "route": {"receiver": "null", "group_by": ["site_id"], "group_wait": "0s",
                  "group_interval": group_interval, "repeat_interval": REPEAT_INTERVAL,
                  "routes": routes},
        "receivers": [{"name": "null"}, *(
            {"name": d, "webhook_configs": [{"url": f"{base}/alertmanager/{d}",
                                             "send_resolved": False}]} for d in known)],
    }


# -- the Alertmanager process -----------------------------------------------------------------

class Alertmanager(Child):
    """Debian's `prometheus-alertmanager` on 127.0.0.1, clustering off, with `config` written
    to `directory/alertmanager.yml` and its storage and log in `directory`.

        with Alertmanager(alertmanager_config(...), scratch) as am:
            httpx.post(f"{am.url}/api/v2/alerts", json=[...])
    """

    STOP_TIMEOUT = 5.0

    def __init__(self, config: dict, directory: Path, binary: Path | str | None = None,
                 port: int | None = None) -> None:
        self.config = config
        self.directory = Path(directory)
        self.binary = Path(binary) if binary else ALERTMANAGER
        self.chosen = binary is not None  # used as given; the default is also looked for on PATH
        self.port = port or free_port()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Alertmanager:
        binary = self.binary if self.binary.exists() or self.chosen else shutil.which(PACKAGE)
        if binary is None or not Path(binary).exists():
            raise PeerError(f"{self.binary} is missing: install Debian's {PACKAGE} "
                            f"(apt-get install {PACKAGE}; `make test` does)")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "alertmanager.yml"
        config.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        log = self.directory / "alertmanager.log"
        self._log = open(log, "ab")
        self.process = subprocess.Popen(
            [str(binary), f"--config.file={config}",
             f"--storage.path={self.directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address=",  # no peers to gossip with, so no settling wait
             "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            **child_options())
        if answers_ok(f"{self.url}/-/ready", self.process, timeout, every=0.05):
            return self
        code = self.process.poll()
        self.stop()
        tail = log.read_text(errors="replace")[-2000:]
        raise PeerError(f"Alertmanager ({binary}) was not ready within {timeout:.0f} s "
                        f"(exit code {code}):\n{tail}")

