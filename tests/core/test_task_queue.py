"""`casebank.task_queue` in the test settings' sync mode: tasks run inline, and a task that
fails there is the caller's error (as with `async_task`), not taken for a broker outage."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from core import task_queue

pytestmark = pytest.mark.django_db


def test_it_raises_a_failing_inline_task_and_keeps_queueing(make_case):
    case = make_case()
    with pytest.raises(ValidationError):
        task_queue.enqueue("casebank.cases.tasks.record_case_use", ["not-a-uuid"])
    assert task_queue.enqueue("casebank.cases.tasks.record_case_use", [str(case.id)]) is True  # no back-off
    case.refresh_from_db()
    assert case.usage_count == 1
