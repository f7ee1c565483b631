"""Contingency playbooks (应急预案): the YAML library and the pure engine that loads, matches
and plans them. No Faust, no network."""

from playbooks.load import (
                   LIBRARY,
                   LoadedPlaybook,
                   PlaybookError,
                   PlaybookSet,
                   Problem,
                   load_playbooks,
                   parse_playbook,
)
from playbooks.match import MatchResult, match
from playbooks.plan import plan_tasks, task_id_for
from playbooks.rules import Facts

__all__ = ["Facts", "LIBRARY", "LoadedPlaybook", "MatchResult", "PlaybookError", "PlaybookSet",
           "Problem", "load_playbooks", "match", "parse_playbook", "plan_tasks", "task_id_for"]
