"""A verdict survives retention: roll-ups keep per-version counts, and verification reads them
(issue #15: once the base version's logs were purged, "regressed" turned back into "pending"
and rollback was refused)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reflection.analysis.retention import logs_roll_up_and_purge
from reflection.models import DailyCaseRollup, ExecutionLog, Verification
from reflection.suggestions.services import suggestion_approve, suggestion_rollback, suggestion_verify
from tests.reflection.suggestion_helpers import PLAN, make_suggestion

# Experiments off: approval applies at once and verification compares before with after
# (tests/reflection/experiments covers the default).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("experiments_off")]


def _logs(case, *, version: int, successes: int, failures: int, age: timedelta) -> None:
    created = timezone.now() - age
    ExecutionLog.objects.bulk_create(
        [ExecutionLog(case=case, case_version=version, success=i < successes, execution_time_ms=500,
                      error_type="" if i < successes else "TimeoutError", created_at=created)
         for i in range(successes + failures)]
    )


def test_the_verdict_is_unchanged_after_purge_logs_deletes_the_base_versions_logs(make_case, django_user_model):
    reviewer = django_user_model.objects.create_superuser("boss", email="boss@example.com", password="pw")
    case = make_case(plan=PLAN)
    _logs(case, version=1, successes=85, failures=15, age=timedelta(days=45))  # before the change
    suggestion = suggestion_approve(suggestion=make_suggestion(case), acting_user=reviewer)
    _logs(case, version=2, successes=20, failures=20, age=timedelta(days=44))
    _logs(case, version=2, successes=10, failures=10, age=timedelta(days=1))
    before = suggestion_verify(suggestion=suggestion)
    assert before.verification == Verification.REGRESSED

    result = logs_roll_up_and_purge()

    assert result["deleted"] == 140
    assert not ExecutionLog.objects.filter(case=case, case_version=1).exists()
    after = suggestion_verify(suggestion=before)
    assert after.verification == Verification.REGRESSED
    assert after.verification_detail["before"] == before.verification_detail["before"]
    assert after.verification_detail["after"] == before.verification_detail["after"]
    assert DailyCaseRollup.objects.get(case=case, day=(timezone.now() - timedelta(days=45)).date()).versions == {
        "1": {"runs": 100, "successes": 85}}
    # And the rollback a regression offers is still there.
    assert suggestion_rollback(suggestion=after, acting_user=reviewer, note="worse").rolled_back_version == 3


def test_back_dated_logs_merge_into_a_days_version_counts(make_case):
    case = make_case(plan=PLAN)
    _logs(case, version=1, successes=3, failures=1, age=timedelta(days=40))
    logs_roll_up_and_purge()
    _logs(case, version=1, successes=1, failures=1, age=timedelta(days=40))
    _logs(case, version=2, successes=2, failures=0, age=timedelta(days=40))

    logs_roll_up_and_purge()

    rollup = DailyCaseRollup.objects.get(case=case)
    counts = {version: (entry["runs"], entry["successes"]) for version, entry in rollup.versions.items()}
    assert counts == {"1": (6, 4), "2": (2, 2)}  # a mixed day keeps each version's latency and errors too
    assert (rollup.runs, rollup.successes) == (8, 6)
