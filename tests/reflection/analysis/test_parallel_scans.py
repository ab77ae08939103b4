"""Batch analyses on PostgreSQL scan errors on a second connection: same answers as one connection.

Committed data is needed (the second connection cannot see a test's transaction), hence
`transactional_db`.
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import transaction

from reflection.analysis import engine
from tests.reflection.factories import NOW, add_logs

pytestmark = pytest.mark.django_db(transaction=True)


def _seed(make_case) -> list:
    cases = [make_case(title=f"parallel {i}") for i in range(6)]
    for i, case in enumerate(cases):
        add_logs(case, count=20 + i, success=True, ms=100 + 10 * i, age=timedelta(hours=2 + i))
        add_logs(case, count=3 + i, success=False, ms=900 + i, age=timedelta(days=1 + i),
                 error_type="Timeout", error_message=f"timed out after {30 + i} s on 'db-{i}'")
        add_logs(case, count=i, success=False, ms=50, age=timedelta(hours=3),
                 error_type="SQLError", error_message=f"syntax error at position {i}")
    return [case.pk for case in cases]


def test_it_gives_the_same_analyses_on_two_connections_as_on_one(make_case, settings, on_postgres):
    settings.REFLECTION_PARALLEL_MIN_CASES = 2
    ids = _seed(make_case)
    threads_seen: set[str] = set()
    original = engine._scan_errors

    def spy(*args):
        threads_seen.add(threading.current_thread().name)
        return original(*args)

    engine._scan_errors = spy
    try:
        assert engine._can_scan_in_parallel(len(ids)) is on_postgres
        together = engine.analyze_cases(case_ids=ids, now=NOW)
        with transaction.atomic():  # inside a transaction the engine stays on one connection
            assert engine._can_scan_in_parallel(len(ids)) is False
            alone = engine.analyze_cases(case_ids=ids, now=NOW)
    finally:
        engine._scan_errors = original

    assert together == alone
    assert [together[pk]["total_executions"] for pk in ids] == [23 + 3 * i for i in range(6)]
    assert together[ids[5]]["common_errors"][0]["count"] == 8
    # One scan ran in the worker thread on PostgreSQL; both ran here on SQLite.
    expected_threads = 2 if on_postgres else 1
    assert len(threads_seen) == expected_threads


def test_a_scan_of_every_case_gives_the_analyses_of_the_cases_asked(make_case, settings, on_postgres, monkeypatch):
    settings.REFLECTION_PARALLEL_MIN_CASES = 2
    ids = _seed(make_case)
    asked = ids[:4]  # the others have logs too: the unfiltered scan sees them, the answer does not
    expected = engine.analyze_cases(case_ids=asked, now=NOW)
    scanned = []
    figures = engine.raw_figures
    monkeypatch.setattr(engine, "raw_figures", lambda case_ids, bounds: scanned.append(case_ids) or figures(case_ids, bounds))

    got = dict(engine.analyses_as_built(case_ids=asked, now=NOW, every_case_with_logs=True))

    assert got == expected
    assert list(got) == asked
    assert scanned == ([None] if on_postgres else [asked])  # SQLite keeps its case filter
