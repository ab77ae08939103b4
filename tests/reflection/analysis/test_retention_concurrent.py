"""Retention racing ingestion of back-dated logs: every log is either kept or summarised.

The day's summary used to be computed by a few queries and the rows deleted by re-running the
filter, so a back-dated log committed in between was deleted without being counted. Now the
summary is made of the rows the DELETE returned. PostgreSQL only: it needs a second writer
committing while retention runs (SQLite serialises writers).
"""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connections
from django.db.models import Sum
from django.utils import timezone

from reflection.analysis.retention import logs_roll_up_and_purge
from reflection.models import DailyCaseRollup, ExecutionLog

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres(reason="needs concurrent writers (PostgreSQL)"),
]


def test_no_log_is_deleted_without_being_summarised(make_case):
    case = make_case()
    now = timezone.now()
    old = now - timedelta(days=40)
    stop = threading.Event()
    written = [0]

    def ingest_back_dated() -> None:
        try:
            while not stop.is_set():
                ExecutionLog.objects.bulk_create(
                    ExecutionLog(id=uuid.uuid4(), case=case, case_version=1, success=True, execution_time_ms=50,
                                 created_at=old, ingested_at=now)
                    for _ in range(5)
                )
                written[0] += 5
        finally:
            connections.close_all()

    writer = threading.Thread(target=ingest_back_dated)
    writer.start()
    try:
        while written[0] < 3_000:
            logs_roll_up_and_purge(now=now)
    finally:
        stop.set()
        writer.join()
    logs_roll_up_and_purge(now=now)

    summarised = DailyCaseRollup.objects.filter(case=case).aggregate(runs=Sum("runs"))["runs"]
    assert (summarised, ExecutionLog.objects.count()) == (written[0], 0)
