"""How each department did in a drill (演练评分), pure: every task of the plan it was given,
against the plan's own deadlines. A task has two: acknowledge (any answer counts, a rejection
too) and complete. A deadline answered in time is met; one that came due before the task was
answered (or before it was cancelled, or before the drill's review ends) is missed; one that
never came due (the drill was closed first) is not scored. A rejected task misses its
completion. 督办 notices are not the plan's and are left out.

    >>> [(s.name, s.met, s.deadlines, s.score) for s in drill_scores(review(timeline, names))]
    [('派出所', 2, 2, 100), ('供电所', 1, 2, 50)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agents.report.review import Bar, Review

__all__ = ["DrillScore", "drill_scores"]


@dataclass
class DrillScore:
    """One department's deadlines in a drill: how many came due (`deadlines`), how many it
    met, and which it missed (`<task id>:ack` or `<task id>:complete`)."""

    department: str
    name: str
    tasks: int = 0
    deadlines: int = 0
    ack_met: int = 0
    complete_met: int = 0
    missed: list[str] = field(default_factory=list)

    @property
    def met(self) -> int:
        return self.ack_met + self.complete_met

    @property
    def score(self) -> int | None:
        """Percent of its deadlines met; None when none came due."""
        return round(100 * self.met / self.deadlines) if self.deadlines else None


def _judge(done: datetime | None, due: datetime | None, ended: datetime) -> bool | None:
    """Met (True), missed (False) or not scored (None)."""
    if done is not None:
        return due is None or done <= due
    if due is not None and due <= ended:
        return False
    return None


def drill_scores(review: Review) -> list[DrillScore]:
    """One score per department with a task of the plan, in the review's lane order."""
    scores: list[DrillScore] = []
    for lane in review.lanes:
        bars: list[Bar] = [b for b in lane.bars if not b.notice]
        if not bars:
            continue
        score = DrillScore(lane.department, lane.name, tasks=len(bars))
        for b in bars:
            ended = b.cancelled_at or review.end
            completed = _judge(b.completed_at, b.complete_due, ended)
            if b.rejected_at is not None and b.completed_at is None:
                completed = False  # declined: the plan's work was not done
            for kind, verdict in (("ack", _judge(b.answered_at, b.ack_due, ended)),
                                  ("complete", completed)):
                if verdict is None:
                    continue
                score.deadlines += 1
                if verdict:
                    setattr(score, f"{kind}_met", getattr(score, f"{kind}_met") + 1)
                else:
                    score.missed.append(f"{b.task_id}:{kind}")
        scores.append(score)
    return scores
