"""Consolidation: every rule and every safety rule of SPEC section 3, dry run, apply, restore."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from casebank.consolidation.services import consolidation_plan, consolidation_run
from casebank.models import Case, CaseArchive, CaseStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def case_with(make_case):
    counter = iter(range(1000))

    def make(*, rate=0.9, uses=20, last_used_days=30, created_days=200, title=None, query=None):
        n = next(counter)
        case = make_case(title=title or f"Distinct task number {n} about topic {n * 7919}",
                         query=query or f"Unrelated question {n}: {['weather', 'invoices', 'poetry', 'chess', 'traffic', 'recipes'][n % 6]} {n}")
        now = timezone.now()
        Case.objects.filter(pk=case.pk).update(
            success_rate=rate, usage_count=uses,
            last_used_at=None if last_used_days is None else now - timedelta(days=last_used_days),
            created_at=now - timedelta(days=created_days),
        )
        case.refresh_from_db()
        return case

    return make


def _reasons() -> dict:
    return {action.case_id: action.reason for action in consolidation_plan()}


def test_it_archives_low_performers_used_more_than_ten_times(case_with):
    low = case_with(rate=0.29, uses=11)
    boundary_rate = case_with(rate=0.30, uses=50)
    boundary_uses = case_with(rate=0.10, uses=10)
    assert _reasons() == {str(low.pk): "low_performance"}
    assert boundary_rate and boundary_uses


def test_it_archives_cases_unused_for_ninety_days_unless_used_over_a_hundred_times(case_with):
    stale = case_with(last_used_days=91, uses=100)
    popular = case_with(last_used_days=91, uses=101)
    recent_enough = case_with(last_used_days=89, uses=5)
    never_used = case_with(last_used_days=None, created_days=120, uses=0)
    young = case_with(last_used_days=None, created_days=10, uses=0)
    assert _reasons() == {str(stale.pk): "inactive", str(never_used.pk): "inactive"}
    assert popular and recent_enough and young


def test_it_merges_near_duplicates_into_the_more_used_case(case_with):
    kept = case_with(uses=40, title="Revenue by region", query="Monthly revenue by region for last quarter")
    dropped = case_with(uses=15, title="Revenue by region", query="Monthly revenue by region for last quarter")
    case_with(uses=15)

    [action] = consolidation_plan()
    assert (action.case_id, action.reason, action.merge_into) == (str(dropped.pk), "duplicate", str(kept.pk))
    assert action.similarity > 0.95

    report = consolidation_run(dry_run=False)
    assert report["applied"] == 1
    kept.refresh_from_db()
    dropped.refresh_from_db()
    assert (kept.usage_count, kept.status, dropped.status) == (55, CaseStatus.ACTIVE, CaseStatus.ARCHIVED)
    archive = CaseArchive.objects.get(case=dropped)
    assert (archive.reason, archive.merged_into_id, archive.usage_moved) == ("duplicate", kept.pk, 15)


def test_it_never_touches_a_case_used_in_the_last_seven_days(case_with):
    case_with(rate=0.05, uses=50, last_used_days=6)
    assert _reasons() == {}


def test_it_never_auto_archives_a_case_used_over_five_hundred_times(case_with):
    case_with(rate=0.05, uses=501, last_used_days=30)
    limit = case_with(rate=0.05, uses=500, last_used_days=30)
    assert _reasons() == {str(limit.pk): "low_performance"}


def test_it_never_acts_on_a_null_success_rate(case_with):
    case_with(rate=None, uses=50, last_used_days=200)
    first = case_with(rate=None, uses=40, title="Same task", query="Exactly the same task text")
    case_with(rate=0.9, uses=10, title="Same task", query="Exactly the same task text")
    assert _reasons() == {}
    assert first


def test_it_is_a_dry_run_by_default(case_with):
    low = case_with(rate=0.1, uses=50)
    report = consolidation_run()
    assert report["dry_run"] is True and report["applied"] == 0
    assert [action["case_id"] for action in report["actions"]] == [str(low.pk)]
    low.refresh_from_db()
    assert low.status == CaseStatus.ACTIVE and not CaseArchive.objects.exists()


def test_it_snapshots_archived_cases_and_re_checks_safety_when_applying(case_with, monkeypatch):
    low, touched = case_with(rate=0.1, uses=50), case_with(rate=0.1, uses=60)
    from casebank.consolidation import services as consolidation

    planned = consolidation.consolidation_plan()
    # Between planning and acting, one case gets used: applying must skip it.
    Case.objects.filter(pk=touched.pk).update(last_used_at=timezone.now())
    monkeypatch.setattr(consolidation, "consolidation_plan", lambda now=None: planned)

    report = consolidation.consolidation_run(dry_run=False, actor="tester")

    assert report["applied"] == 1
    archive = CaseArchive.objects.get()
    assert archive.case_id == low.pk
    assert (archive.reason, archive.actor, archive.snapshot["status"], archive.snapshot["usage_count"]) == (
        "low_performance", "tester", "active", 50)
    touched.refresh_from_db()
    assert touched.status == CaseStatus.ACTIVE


def test_it_restores_an_archived_duplicate_and_moves_its_usage_back(case_with):
    from casebank.consolidation.services import case_restore

    kept = case_with(uses=40, title="Same plan", query="Identical query text here")
    dropped = case_with(uses=15, title="Same plan", query="Identical query text here")
    consolidation_run(dry_run=False)

    restored = case_restore(case_id=dropped.pk, actor="tester")

    kept.refresh_from_db()
    assert (restored.status, kept.usage_count) == (CaseStatus.ACTIVE, 40)
    archive = CaseArchive.objects.get(case=dropped)
    assert archive.restored_by == "tester" and archive.restored_at is not None


def test_it_leaves_cases_pending_review_to_the_reviewers(case_with):
    from casebank.models import ReviewState

    approved = case_with(uses=0, created_days=100, last_used_days=8, title="Revenue by region",
                         query="Monthly revenue by region for last quarter")
    pending = case_with(uses=0, created_days=200, last_used_days=None, title="Revenue by region",
                        query="Monthly revenue by region for last quarter")
    Case.objects.filter(pk=pending.pk).update(review_state=ReviewState.PENDING)
    # Older with equal use, the pending case would be kept and the approved one merged into it;
    # idle for 200 days, it would be archived as inactive. Neither: it waits for a reviewer.
    assert _reasons() == {}
    assert approved


@pytest.mark.parametrize("before", [CaseStatus.WARNING, CaseStatus.DEPRECATED, CaseStatus.ACTIVE])
def test_it_restores_the_status_the_case_had_before_it_was_archived(case_with, before):
    from casebank.cases import services
    from casebank.consolidation.services import case_restore
    from casebank.models import CaseStatusChange

    case = case_with(rate=0.1, uses=20)
    if before != CaseStatus.ACTIVE:
        services.case_set_status(case=case, status=before, actor="tester")
    consolidation_run(dry_run=False)
    case.refresh_from_db()
    assert case.status == CaseStatus.ARCHIVED

    restored = case_restore(case_id=case.pk, actor="tester")

    assert restored.status == before
    last = CaseStatusChange.objects.filter(case=case).order_by("-created_at", "-id").first()
    assert (last.from_status, last.to_status, last.actor) == (CaseStatus.ARCHIVED, before, "tester")


def test_it_says_which_safety_rule_held_back_how_many_cases(case_with):
    # Measured: a demo whose every case was used in the last 7 days printed "0 candidates" and
    # nothing else. Each of these would be archived but for one safety rule.
    case_with(rate=0.10, uses=20, last_used_days=2)  # low performer, used recently
    case_with(rate=0.10, uses=600, last_used_days=30)  # low performer, too heavily used
    case_with(rate=None, uses=5, last_used_days=200)  # inactive, never analysed
    case_with(rate=0.90, uses=20, last_used_days=3)  # healthy: held back by nothing
    report = consolidation_run()
    assert report["actions"] == []
    assert report["held_back"] == {"used_recently": 1, "heavily_used": 1, "not_analysed": 1}


def test_the_command_explains_an_empty_result(case_with):
    import io

    from django.core.management import call_command

    case_with(rate=0.10, uses=20, last_used_days=2)
    out = io.StringIO()
    call_command("consolidate", stdout=out)
    assert "0 candidates" in out.getvalue()
    assert "held back: 1 used in the last 7 days" in out.getvalue()
