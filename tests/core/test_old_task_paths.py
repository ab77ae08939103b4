"""Task paths from before the 2026-12 layout keep resolving for one release: tasks already queued
and schedules already stored name them."""
from __future__ import annotations

import pytest
from django.core.management import call_command
from django.utils.module_loading import import_string
from django_q.models import Schedule
from django_q.tasks import async_task, result

from core.management.commands.setup_schedules import declared_schedules

OLD_TO_NEW = {
    "casebank.tasks.record_case_use": "casebank.cases.tasks.record_case_use",
    "casebank.consolidation.consolidation_task": "casebank.consolidation.tasks.consolidation_task",
    "reflection.tasks.reflection_run_task": "reflection.analysis.tasks.reflection_run_task",
    "reflection.tasks.early_reflection_task": "reflection.analysis.tasks.early_reflection_task",
    "reflection.tasks.daily_reflection_task": "reflection.analysis.tasks.daily_reflection_task",
    "reflection.tasks.sweep_runs_task": "reflection.analysis.tasks.sweep_runs_task",
    "reflection.tasks.retention_task": "reflection.analysis.tasks.retention_task",
    "reflection.tasks.deferred_suggestions_task": "reflection.suggestions.tasks.deferred_suggestions_task",
    "reflection.tasks_alerts.notify_suggestion_created": "reflection.suggestions.tasks.notify_suggestion_created",
    "reflection.tasks_alerts.notify_regression": "reflection.suggestions.tasks.notify_regression",
    "agents.tasks.run_session": "agents.sessions.tasks.run_session",
    "agents.tasks.record_session_outcome": "agents.sessions.tasks.record_session_outcome",
    "agents.tasks.sweep_sessions_task": "agents.sessions.tasks.sweep_sessions_task",
}


@pytest.mark.parametrize("old", sorted(OLD_TO_NEW))
def test_it_resolves_an_old_task_path_to_the_new_function(old: str) -> None:
    assert import_string(old) is import_string(OLD_TO_NEW[old])


@pytest.mark.django_db
def test_it_runs_a_task_queued_under_its_old_path() -> None:
    # The test settings run tasks synchronously, as a worker would run a queued one.
    task_id = async_task("reflection.tasks.sweep_runs_task", sync=True)
    assert result(task_id) == import_string("reflection.analysis.tasks.sweep_runs_task")()


@pytest.mark.django_db
def test_it_rewrites_schedules_stored_under_old_paths() -> None:
    for periodic in declared_schedules():
        old = next((o for o, n in OLD_TO_NEW.items() if n == periodic.func), periodic.func)
        Schedule.objects.create(name=periodic.name, func=old, schedule_type=Schedule.MINUTES, minutes=1, repeats=-1)
    call_command("setup_schedules", stdout=open("/dev/null", "w"))
    stored = dict(Schedule.objects.values_list("name", "func"))
    assert stored == {periodic.name: periodic.func for periodic in declared_schedules()}
    assert not set(stored.values()) & set(OLD_TO_NEW)
