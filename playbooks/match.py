"""Which playbook answers an alarm: the most specific match wins, then the higher priority.

A playbook fits when every condition it gives holds (`rules.fits`); its specificity is the
weighted count of what it gives (`rules.specificity`). Two playbooks of equal specificity and
priority that could both fit one alarm are refused when the set is loaded (`rules.overlap`), so
the first fit in rank order is the one winner, never a coin toss.

    >>> from playbooks.load import load_playbooks
    >>> facts = Facts(kind="smoke", signal="alarm", site_type="laboratory")
    >>> match(load_playbooks(), facts).winner.playbook.id
    'laboratory-fire'
"""

from __future__ import annotations

from dataclasses import dataclass

from playbooks.load import LoadedPlaybook, PlaybookSet
from playbooks.rules import Facts, fits, rank, specificity

__all__ = ["Candidate", "MatchResult", "explain", "match"]


@dataclass(frozen=True)
class MatchResult:
    """The playbook that answers an alarm and why it won (recorded on the incident)."""

    winner: LoadedPlaybook
    why: str


def match(playbooks: PlaybookSet, facts: Facts) -> MatchResult:
    """The winning playbook for `facts`; the fallback when nothing else fits."""
    for lp in playbooks.candidates(facts):
        if lp.compiled.accepts(facts):
            rule = lp.playbook.match
            return MatchResult(lp, f"most specific fit (specificity {specificity(rule)}, "
                                   f"priority {lp.playbook.priority})")
    return MatchResult(playbooks.fallback, "no other playbook fits: fallback")


@dataclass(frozen=True)
class Candidate:
    """One line of `explain`: a playbook, whether it won, and why it won or lost."""

    playbook: LoadedPlaybook
    won: bool
    why: str


def explain(playbooks: PlaybookSet, facts: Facts) -> list[Candidate]:
    """Every playbook, winner first, each with why it won or lost."""
    result = match(playbooks, facts)
    win = result.winner
    out = [Candidate(win, True, result.why)]
    for lp in sorted(playbooks.playbooks, key=rank):
        if lp is win:
            continue
        if lp.playbook.fallback:
            why = "the fallback only takes what no other playbook fits"
        elif (reason := fits(lp.playbook.match, facts)) is not None:
            why = f"does not fit: {reason}"
        else:
            why = (f"fits, but ranks lower (specificity {specificity(lp.playbook.match)}, "
                   f"priority {lp.playbook.priority})")
        out.append(Candidate(lp, False, why))
    return out
