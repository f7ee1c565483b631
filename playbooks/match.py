"""Which playbook answers an alarm: the most specific match wins, then the higher priority.

A playbook's specificity is the number of its match lists that are given (kinds, signals,
site types); each given list must contain the alarm's value. The fallback takes the rest.

    >>> from playbooks.load import load_playbooks
    >>> match(load_playbooks(), Facts(kind="smoke", signal="alarm", site_type="laboratory")).winner.playbook.id
    'laboratory-fire'
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import PlaybookMatch

from .load import LoadedPlaybook, PlaybookSet

__all__ = ["Facts", "MatchResult", "match"]


@dataclass(frozen=True)
class Facts:
    """What matching looks at."""

    kind: str
    signal: str
    site_type: str


@dataclass(frozen=True)
class MatchResult:
    winner: LoadedPlaybook
    why: str


def _fits(rule: PlaybookMatch, facts: Facts) -> tuple[bool, int]:
    """Whether the rule takes these facts, and how specific it is."""
    specificity = 0
    for allowed, value in ((rule.kinds, facts.kind), (rule.signals, facts.signal),
                           (rule.site_types, facts.site_type)):
        if allowed:
            if value not in allowed:
                return False, 0
            specificity += 1
    return True, specificity


def match(playbooks: PlaybookSet, facts: Facts) -> MatchResult:
    """The winning playbook for `facts`; the fallback when nothing else fits."""
    best: tuple[int, int, str] | None = None
    winner = playbooks.fallback
    for lp in playbooks.playbooks:
        if lp.playbook.fallback:
            continue
        fits, specificity = _fits(lp.playbook.match, facts)
        if not fits:
            continue
        rank = (specificity, lp.playbook.priority, lp.playbook.id)
        # Most specific first, then highest priority, then the id, so ties never toss a coin.
        if best is None or (rank[0], rank[1]) > (best[0], best[1]) or (
                rank[:2] == best[:2] and rank[2] < best[2]):
            best, winner = rank, lp
    if best is None:
        return MatchResult(winner, f"no playbook takes kind={facts.kind} signal={facts.signal} "
                                   f"site_type={facts.site_type}: fallback")
    return MatchResult(winner, f"matched {best[0]} of kind/signal/site_type "
                               f"(kind={facts.kind} signal={facts.signal} "
                               f"site_type={facts.site_type}), priority {best[1]}")
