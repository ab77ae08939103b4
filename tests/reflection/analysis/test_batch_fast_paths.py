"""The faster paths of a batch run give what the plain ones give.

PostgreSQL ranks `common_errors` in SQL for cases with no roll-up (Python ranks the others),
case metric updates stay HOT, and a run pauses Python's cyclic GC only while it works.
"""
from __future__ import annotations

import gc
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from casebank.cases import services as case_services
from casebank.models import Case
from reflection.analysis import engine, services
from reflection.analysis.engine import queries
from reflection.models import CaseAnalysis, ExecutionLog, ReflectionRunStatus
from tests.reflection.factories import add_logs

on_postgres_only = pytest.mark.postgres(reason="a PostgreSQL-only path")

# Error types whose order differs by collation: code points put "Zeta" < "alpha" < "Élan".
FAILURES = [
    # (error_type, message, count)
    ("alpha", "timed out after 30 s on 'db-1'", 3),
    ("alpha", "timed out after 31 s on 'db-2'", 2),  # same template as above: 5 in all
    ("alpha", "pool exhausted (size 10)", 5),  # ties with it: ordered by template text
    ("alpha", "Pool exhausted (size 12)", 1),
    ("alpha", "retry 1 of 3 failed", 1),
    ("alpha", "status 0x1f from worker", 1),
    ("alpha", "élan vital lost at step 4", 1),  # seventh template: beyond the top five
    ("Zeta", "", 4),  # no message: the example stays empty
    ("Élan", "bad \"quote\" near 7", 4),  # ties with Zeta on count
    ("", "no type given 9", 2),  # an empty type counts as "unknown"
]


def _seed_failures(case, *, stored_templates: bool) -> None:
    for kind, message, count in FAILURES:
        add_logs(case, count=count, success=False, error_type=kind, error_message=message, now=timezone.now())
    if not stored_templates:  # logs from before templates were stored at ingestion
        ExecutionLog.objects.filter(case_id=case.pk).update(error_template=None)
    else:
        for log in ExecutionLog.objects.filter(case_id=case.pk, success=False):
            log.error_template = engine.stats.message_template(log.error_message) if log.error_message else ""
            log.save(update_fields=["error_template"])


@pytest.mark.django_db
@on_postgres_only
def test_postgres_ranks_errors_exactly_as_python_does(make_case):
    stored, computed, clean = make_case(title="stored"), make_case(title="computed"), make_case(title="clean")
    _seed_failures(stored, stored_templates=True)
    _seed_failures(computed, stored_templates=False)
    add_logs(clean, count=3, now=timezone.now())
    ids = [stored.pk, computed.pk, clean.pk]
    bounds = engine.make_bounds(window_days=30, now=None)

    in_sql = queries.ranked_errors(ids, bounds, top_templates=engine.TOP_TEMPLATES)
    in_python = {case_id: engine._rank_errors(errors) for case_id, errors in queries.raw_errors(ids, bounds).items()}

    assert in_sql == in_python
    ranked = in_sql[(stored.pk, 1)]  # keyed by case and version
    assert [(row["error_type"], row["count"]) for row in ranked] == [
        ("alpha", 14), ("Zeta", 4), ("Élan", 4), ("unknown", 2),
    ]
    alpha = ranked[0]
    assert alpha["example"] == "Pool exhausted (size 12)"  # the smallest in code points: "P" < "p"
    assert [t["count"] for t in alpha["templates"]] == [5, 5, 1, 1, 1]
    assert alpha["templates"][0]["template"] == "pool exhausted (size <n>)"  # ties: by text
    assert ranked[1]["example"] == "" and (clean.pk, 1) not in in_sql


def _update_counts(cursor) -> tuple[int, int]:
    cursor.execute(
        "SELECT pg_stat_get_xact_tuples_updated(%s::regclass), pg_stat_get_xact_tuples_hot_updated(%s::regclass)",
        [Case._meta.db_table, Case._meta.db_table],
    )
    return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
@on_postgres_only
def test_case_metric_updates_stay_hot():
    # Every run rewrites the metrics of the cases it analysed. With room left on each page the
    # row's new version stays there (a HOT update) and no index gets a new entry, the HNSW
    # index included; on full pages each update writes to every index of the table.
    now = timezone.now()
    cases = Case.objects.bulk_create(
        [Case(title=f"hot {i}", query=f"hot query {i}", plan=[{"agent": "a"}], created_at=now, updated_at=now)
         for i in range(400)]
    )
    case_services.case_update_metrics_many(metrics={case.pk: case_services.CaseMetrics(0.5, 10) for case in cases})  # yesterday's run
    with connection.cursor() as cursor:
        # As autovacuum does between two daily runs: the old row versions go, and the pages have
        # their room again (whatever the earlier tests left in the table).
        cursor.execute(f"VACUUM {Case._meta.db_table}")
    with transaction.atomic(), connection.cursor() as cursor:
        before = _update_counts(cursor)  # the backend's counts not yet reported: read a difference
        case_services.case_update_metrics_many(metrics={case.pk: case_services.CaseMetrics(0.6, 12) for case in cases})
        after = _update_counts(cursor)
    updated, hot = after[0] - before[0], after[1] - before[1]
    assert updated == 400
    assert hot >= 0.5 * updated  # ~70 % here; ~5 % with full pages (fillfactor 100)


@pytest.mark.django_db
def test_a_run_pauses_the_cyclic_gc_only_while_it_works(make_case, monkeypatch):
    case = make_case()
    add_logs(case, count=3, now=timezone.now(), age=timedelta(minutes=5))
    seen = []
    build = engine.analyses_as_built

    def spy(**kwargs):
        seen.append(gc.isenabled())
        return build(**kwargs)

    monkeypatch.setattr(engine, "analyses_as_built", spy)
    run = services.reflection_run_execute(services.reflection_run_start(enqueue=False).pk)
    assert (run.status, seen, gc.isenabled()) == (ReflectionRunStatus.COMPLETED, [False], True)

    def broken(**kwargs):
        raise RuntimeError("engine down")

    monkeypatch.setattr(engine, "analyses_as_built", broken)
    run = services.reflection_run_execute(services.reflection_run_start(case_ids=[case.pk], enqueue=False).pk)
    assert (run.status, gc.isenabled()) == (ReflectionRunStatus.FAILED, True)



@pytest.mark.django_db
def test_a_first_full_run_takes_cases_with_logs_in_its_snapshot_not_done_since(make_case, settings):
    settings.REFLECTION_INGEST_SETTLE_SECONDS = 0
    done_early, fresh, arriving, silent = (make_case(title=t) for t in ("done early", "fresh", "arriving", "silent"))
    now = timezone.now()
    for case in (done_early, fresh):
        add_logs(case, count=2, now=now, age=timedelta(minutes=5))
    add_logs(arriving, count=2, now=now, age=timedelta(minutes=5), ingested_at=now + timedelta(hours=1))
    early = services.reflection_run_execute(services.reflection_run_start(case_ids=[done_early.pk], enqueue=False).pk)
    assert early.cases_analysed == 1

    first = services.reflection_run_execute(services.reflection_run_start(enqueue=False).pk)

    assert first.since is None
    assert set(first.analyses.values_list("case_id", flat=True)) == {fresh.pk}
    assert (first.cases_total, first.cases_skipped) == (1, 0)
    assert silent.pk not in set(CaseAnalysis.objects.values_list("case_id", flat=True))
