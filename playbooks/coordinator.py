"""The playbooks a worker runs with: the set in force, reloading it while alarms flow, and every
version an incident was matched with (so an incident in flight keeps its version). Like
Alertmanager's `config/coordinator.go`, it owns the configuration in force and its reload,
whoever asks for one (`POST /api/v1/playbooks/reload`, the watch on the directory).

    >>> library = PlaybookLibrary(Path("playbooks/library"), departments={"police", ...})
    >>> library.reload()        # PlaybookError with every problem, and the running set stays
    >>> library.reload_and_report(count)   # the same, logged, and counted by outcome
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, MutableMapping
from pathlib import Path

from playbooks import LoadedPlaybook, PlaybookError, PlaybookSet, load_playbooks
from schemas import Playbook, PlaybookRef

__all__ = ["PlaybookLibrary"]

log = logging.getLogger(__name__)


def _fingerprint(directory: Path) -> tuple:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return ()
    return tuple((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in entries
                 if e.name.endswith((".yaml", ".yml")))


class PlaybookLibrary:
    def __init__(self, directory: Path, departments: Collection[str]) -> None:
        self.directory = Path(directory)
        self.departments = set(departments)
        self._fingerprint = self._refused = _fingerprint(self.directory)
        self.current: PlaybookSet = load_playbooks(self.directory, self.departments)
        self._known: dict[str, LoadedPlaybook] = {}
        self._remember(self.current)
        self.versions: MutableMapping[str, dict] | None = None  # a table, set by the worker

    def _remember(self, pset: PlaybookSet) -> None:
        for lp in pset.playbooks:
            self._known[self.key(lp)] = lp

    @staticmethod
    def key(lp: LoadedPlaybook | PlaybookRef) -> str:
        if isinstance(lp, LoadedPlaybook):
            return f"{lp.playbook.id}@{lp.content_hash}"
        return f"{lp.id}@{lp.content_hash}"

    def reload(self) -> PlaybookSet:
        """Load the directory again. On any problem raise PlaybookError and keep the set."""
        fingerprint = _fingerprint(self.directory)
        try:
            fresh = load_playbooks(self.directory, self.departments)
        except Exception:
            self._refused = fingerprint
            raise
        self.current, self._fingerprint = fresh, fingerprint
        self._remember(fresh)
        return fresh

    def reload_and_report(self, count: Callable[[str], None]) -> None:
        """`reload()`, its outcome logged and counted (`count("loaded")` or `count("refused")`);
        PlaybookError if refused, and the set in force stays."""
        before = self.current.digest
        try:
            after = self.reload().digest
        except PlaybookError as exc:
            count("refused")
            log.error("playbooks in %s refused, still running %s:\n%s", self.directory, before,
                      exc)
            raise
        count("loaded")
        log.warning("playbooks reloaded from %s: %s -> %s", self.directory, before, after)

    def changed_on_disk(self) -> bool:
        """Whether the files differ from both the set in force and the last set refused."""
        now = _fingerprint(self.directory)
        return now != self._fingerprint and now != self._refused

    def describe(self) -> dict:
        pset = self.current
        return {"digest": pset.digest, "directory": str(self.directory), "playbooks": [
            {"id": lp.playbook.id, "version": lp.playbook.version,
             "content_hash": lp.content_hash, "title": lp.playbook.title,
             "fallback": lp.playbook.fallback, "source": lp.source}
            for lp in sorted(pset.playbooks, key=lambda lp: lp.playbook.id)]}

    def version(self, ref: PlaybookRef) -> LoadedPlaybook | None:
        """The playbook exactly as an incident was matched with it."""
        key = self.key(ref)
        found = self._known.get(key)
        if found is None and self.versions is not None:
            stored = self.versions.get(key)
            if stored is not None:
                found = LoadedPlaybook(Playbook.model_validate(stored), "(stored version)",
                                       ref.content_hash)
                self._known[key] = found
        return found
