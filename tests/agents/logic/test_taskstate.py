import pytest

from agents.logic.taskstate import TRANSITIONS, IllegalTransition, apply_update, next_status
from schemas import TASK_ACTIONS, TASK_STATUSES, Task, TaskUpdate
from tests.conftest import T0

EXPECTED = {
    ("dispatched", "ack"): "acknowledged", ("dispatched", "start"): "in_progress",
    ("dispatched", "reject"): "rejected", ("acknowledged", "start"): "in_progress",
    ("acknowledged", "complete"): "completed", ("acknowledged", "reject"): "rejected",
    ("in_progress", "complete"): "completed",
    ("acknowledged", "progress"): "acknowledged", ("in_progress", "progress"): "in_progress",
}


@pytest.mark.parametrize("status", TASK_STATUSES)
@pytest.mark.parametrize("action", TASK_ACTIONS)
def test_every_status_and_action(status, action):
    if (status, action) in EXPECTED:
        assert next_status(status, action) == EXPECTED[(status, action)]
    else:
        with pytest.raises(IllegalTransition) as exc:
            next_status(status, action)
        assert status in str(exc.value) and action in str(exc.value)


def test_the_table_covers_every_status():
    assert set(TRANSITIONS) == set(TASK_STATUSES)


def task() -> Task:
    return Task(task_id="inc-1.cordon", incident_id="inc-1", department="police", step="cordon",
                action="警戒", ack_due=T0, complete_due=T0, created_at=T0, updated_at=T0,
                site_id="lab", level="II")


def test_apply_update_moves_status_revision_and_who():
    update = TaskUpdate(update_id="u1", task_id="inc-1.cordon", incident_id="inc-1",
                        action="ack", by="张警官", note="收到", at=T0)
    after = apply_update(task(), update)
    assert (after.status, after.revision, after.by, after.note, after.last_update_id) == (
        "acknowledged", 2, "张警官", "收到", "u1")
    assert task().status == "dispatched"  # the original is untouched


def test_reject_needs_a_note():
    with pytest.raises(ValueError) as exc:
        TaskUpdate(update_id="u", task_id="t", incident_id="i", action="reject", by="x", at=T0)
    assert exc.value.errors()[0]["loc"] == ("note",)


def test_a_progress_report_needs_a_note_and_keeps_the_status():
    with pytest.raises(ValueError) as exc:
        TaskUpdate(update_id="u", task_id="t", incident_id="i", action="progress", by="x",
                   note="  ", at=T0)
    assert exc.value.errors()[0]["loc"] == ("note",)
    started = task().model_copy(update={"status": "in_progress", "revision": 3})
    update = TaskUpdate(update_id="u2", task_id="inc-1.cordon", incident_id="inc-1",
                        action="progress", by="李警官", note="警戒线已拉好，疏散 40 人", at=T0)
    after = apply_update(started, update)
    assert (after.status, after.revision, after.by, after.note) == (
        "in_progress", 4, "李警官", "警戒线已拉好，疏散 40 人")
