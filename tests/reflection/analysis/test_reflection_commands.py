"""`reflect`, `purge_logs` and `setup_schedules` (idempotent)."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule

from reflection.models import CaseAnalysis, DailyCaseRollup, ExecutionLog, ReflectionRun
from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db


def test_reflect_analyses_one_case_or_all(make_case):
    case = make_case()
    add_logs(case, count=3, success=True, now=timezone.now())
    out = StringIO()

    call_command("reflect", "--case", str(case.pk), stdout=out)
    assert "3 runs, success rate 1.0" in out.getvalue()

    call_command("reflect", "--all", stdout=out)
    run = ReflectionRun.objects.get()
    assert (run.trigger, run.status, run.cases_analysed) == ("command", "completed", 1)
    assert CaseAnalysis.objects.filter(case=case).count() == 2


def test_reflect_reports_bad_input_cleanly(make_case):
    with pytest.raises(CommandError):
        call_command("reflect", "--case", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(CommandError):
        call_command("reflect", "--case", str(make_case().pk), "--window-days", "0")


def test_purge_logs_rolls_up_old_days(make_case):
    case = make_case()
    add_logs(case, count=2, now=timezone.now(), age=timedelta(days=45))
    add_logs(case, count=1, now=timezone.now(), age=timedelta(days=2))
    out = StringIO()
    call_command("purge_logs", stdout=out)
    assert "2 raw logs deleted" in out.getvalue()
    assert ExecutionLog.objects.count() == 1
    assert DailyCaseRollup.objects.get().runs == 2


def test_setup_schedules_is_idempotent():
    call_command("setup_schedules", stdout=StringIO())
    first = {s.name: (s.func, s.schedule_type, s.next_run) for s in Schedule.objects.all()}
    call_command("setup_schedules", stdout=StringIO())
    second = {s.name: (s.func, s.schedule_type, s.next_run) for s in Schedule.objects.all()}

    assert first == second and len(first) == 6
    for sweeper in ("agents.sessions.tasks.sweep_sessions_task", "reflection.analysis.tasks.sweep_runs_task",
                    "reflection.suggestions.tasks.deferred_suggestions_task"):
        every_minute = Schedule.objects.get(func=sweeper)
        assert (every_minute.schedule_type, every_minute.minutes, every_minute.repeats) == (Schedule.MINUTES, 1, -1)
    weekly = Schedule.objects.get(func="casebank.consolidation.tasks.consolidation_task")
    assert weekly.schedule_type == Schedule.WEEKLY
    assert (weekly.next_run.weekday(), weekly.next_run.hour, weekly.next_run.minute) == (6, 2, 0)
    assert Schedule.objects.get(func="reflection.analysis.tasks.daily_reflection_task").schedule_type == Schedule.DAILY
    assert Schedule.objects.get(func="reflection.analysis.tasks.retention_task").schedule_type == Schedule.DAILY
    sweep = Schedule.objects.get(func="reflection.suggestions.tasks.deferred_suggestions_task")
    assert (sweep.schedule_type, sweep.minutes) == (Schedule.MINUTES, 1)


def test_the_scheduled_functions_exist():
    from django.utils.module_loading import import_string

    from core.management.commands.setup_schedules import declared_schedules

    funcs = {periodic.func for periodic in declared_schedules()}
    assert funcs == {"reflection.analysis.tasks.daily_reflection_task", "reflection.analysis.tasks.retention_task",
                     "casebank.consolidation.tasks.consolidation_task", "reflection.analysis.tasks.sweep_runs_task",
                     "agents.sessions.tasks.sweep_sessions_task", "reflection.suggestions.tasks.deferred_suggestions_task"}
    for schedule_func in funcs:
        assert callable(import_string(schedule_func))
