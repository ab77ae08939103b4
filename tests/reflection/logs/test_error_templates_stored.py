"""Ingestion stores each failure's message template, and analyses and roll-ups group by it;
logs stored before the column existed (no template) are templated at analysis time instead."""
from __future__ import annotations

import pytest
from django.utils import timezone

from reflection.analysis.engine import analyze_case
from reflection.analysis.engine.stats import message_template
from reflection.models import ExecutionLog
from tests.reflection.factories import add_logs

pytestmark = pytest.mark.django_db


def _failure(case, message: str) -> dict:
    return {"case_id": str(case.pk), "success": False, "error_type": "Timeout", "error_message": message,
            "execution_time_ms": 10}


def test_ingestion_stores_the_template_of_failures_only(api, make_case):
    case = make_case()
    sent = [_failure(case, "timed out after 30 s on 'db-1'"), _failure(case, ""),
            {"case_id": str(case.pk), "success": True, "error_message": "retried 2 times", "execution_time_ms": 5}]
    assert api.post("/api/logs/", sent, format="json").status_code == 201

    stored = dict(ExecutionLog.objects.values_list("error_message", "error_template"))
    assert stored == {"timed out after 30 s on 'db-1'": message_template("timed out after 30 s on 'db-1'"),
                      "": None, "retried 2 times": None}
    assert stored["timed out after 30 s on 'db-1'"] == "timed out after <n> s on '<str>'"


def test_stored_and_missing_templates_group_together(api, make_case):
    case = make_case()
    api.post("/api/logs/", [_failure(case, "timed out after 30 s on 'db-1'")], format="json")
    add_logs(case, success=False, error_type="Timeout", error_message="timed out after 45 s on 'db-2'",
             now=timezone.now())  # no template, like a log stored before the column

    [errors] = analyze_case(case_id=case.pk)["common_errors"]
    assert errors["templates"] == [{"template": "timed out after <n> s on '<str>'", "count": 2}]


def test_the_analysis_reads_the_stored_template(api, make_case):
    case = make_case()
    api.post("/api/logs/", [_failure(case, "disk full on node 7")], format="json")
    # What ingestion stored is what counts (here changed by hand to tell the two apart).
    ExecutionLog.objects.update(error_template="disk full on node <n> (stored)")

    [errors] = analyze_case(case_id=case.pk)["common_errors"]
    assert errors["templates"] == [{"template": "disk full on node <n> (stored)", "count": 1}]


def test_retention_rolls_up_by_the_stored_template(api, make_case):
    from datetime import timedelta

    from reflection.analysis.retention import logs_roll_up_and_purge
    from reflection.models import DailyCaseRollup

    case = make_case()
    old = (timezone.now() - timedelta(days=45)).isoformat()
    api.post("/api/logs/", [{**_failure(case, "disk full on node 7"), "created_at": old}], format="json")
    ExecutionLog.objects.update(error_template="disk full on node <n> (stored)")

    logs_roll_up_and_purge()

    rollup = DailyCaseRollup.objects.get(case=case)
    assert rollup.errors["Timeout"]["templates"] == {"disk full on node <n> (stored)": 1}
