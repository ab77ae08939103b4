"""Verification on synthetic runs whose answer is known: the before/after z-test of the mode
with experiments off (tests/reflection/experiments covers the default)."""
from __future__ import annotations

import pytest
from django.core import mail

from reflection.models import Verification
from reflection.suggestions.services import suggestion_approve, suggestion_verify, verification_compare
from tests.reflection.suggestion_helpers import PLAN, add_logs, make_suggestion


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ((100, 40), (100, 70), Verification.IMPROVED),     # 40 % → 70 %: z ≈ 4.3
        ((100, 60), (100, 62), Verification.NO_CHANGE),    # 60 % → 62 %: z ≈ 0.3
        ((100, 80), (100, 50), Verification.REGRESSED),    # 80 % → 50 %: z ≈ -4.4
        ((100, 20), (10, 10), Verification.PENDING),       # too few runs after the change
        ((5, 0), (100, 90), Verification.PENDING),         # too few runs before it
        ((50, 50), (50, 50), Verification.NO_CHANGE),      # all successes on both sides
    ],
)
def test_it_classifies_known_differences(before, after, expected):
    detail = verification_compare(before_runs=before[0], before_successes=before[1],
                                  after_runs=after[0], after_successes=after[1], min_runs=30)
    assert detail["status"] == expected


def test_it_reports_the_test_statistics():
    detail = verification_compare(before_runs=100, before_successes=40, after_runs=100, after_successes=70, min_runs=30)
    assert detail["z"] == pytest.approx(4.2640, abs=1e-3)
    assert detail["p_value"] == pytest.approx(2.0e-5, abs=1e-5)
    assert detail["before"]["success_rate"] == 0.4 and detail["after"]["success_rate"] == 0.7


def test_it_is_borderline_exactly_at_the_critical_value():
    # 50 % vs 64 % over 100 runs each: z ≈ 1.99 → significant; 50 % vs 63 %: z ≈ 1.85 → not.
    assert verification_compare(before_runs=100, before_successes=50, after_runs=100, after_successes=64, min_runs=30)["status"] == Verification.IMPROVED
    assert verification_compare(before_runs=100, before_successes=50, after_runs=100, after_successes=63, min_runs=30)["status"] == Verification.NO_CHANGE


@pytest.mark.django_db
def test_it_verifies_from_the_logs_of_each_version_and_alerts_once_on_regression(
    make_case, django_user_model, django_capture_on_commit_callbacks, settings, experiments_off
):
    settings.VERIFICATION_MIN_RUNS = 40
    reviewer = django_user_model.objects.create_superuser("boss", email="boss@example.com", password="pw")
    case = make_case(plan=PLAN)
    suggestion = suggestion_approve(suggestion=make_suggestion(case), acting_user=reviewer)
    add_logs(case, version=1, successes=85, failures=15)
    add_logs(case, version=2, successes=20, failures=19)  # 39 runs: one short of the minimum
    assert suggestion_verify(suggestion=suggestion).verification == Verification.PENDING

    add_logs(case, version=2, successes=0, failures=1)
    with django_capture_on_commit_callbacks(execute=True):
        verified = suggestion_verify(suggestion=suggestion)
    assert verified.verification == Verification.REGRESSED
    assert verified.verification_detail["after"] == {"runs": 40, "successes": 20, "success_rate": 0.5}
    assert len(mail.outbox) == 1 and "Regression" in mail.outbox[0].subject

    with django_capture_on_commit_callbacks(execute=True):
        suggestion_verify(suggestion=verified)
    assert len(mail.outbox) == 1, "a regression already reported is not reported again"
