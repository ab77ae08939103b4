"""An early run starts for a case once 100 new logs have arrived for it."""
from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from reflection.models import CaseAnalysis, ReflectionRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


def _batch(case, n):
    return [{"case_id": str(case.pk), "success": True, "execution_time_ms": 50} for _ in range(n)]


def test_it_starts_an_early_run_at_one_hundred_new_logs(api, make_case, django_capture_on_commit_callbacks):
    case, other = make_case(title="busy"), make_case(title="quiet")
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/logs/", _batch(case, 60) + _batch(other, 5), format="json").status_code == 201
    assert not ReflectionRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/logs/", _batch(case, 40), format="json").status_code == 201

    run = ReflectionRun.objects.get()
    assert (run.trigger, run.case_ids, run.status) == ("early", [str(case.pk)], "completed")
    assert list(CaseAnalysis.objects.filter(run=run).values_list("case_id", "total_executions")) == [(case.pk, 100)]


def test_it_restarts_the_count_after_a_trigger(api, make_case, django_capture_on_commit_callbacks):
    case = make_case()
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/logs/", _batch(case, 100), format="json")
        api.post("/api/logs/", _batch(case, 99), format="json")
    assert ReflectionRun.objects.count() == 1


def test_a_busy_case_gets_one_early_run_per_pause_and_keeps_counting(
    api, make_case, settings, django_capture_on_commit_callbacks
):
    settings.REFLECTION_EARLY_TRIGGER_PAUSE_SECONDS = 1
    case = make_case()
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/logs/", _batch(case, 100), format="json")
        api.post("/api/logs/", _batch(case, 150), format="json")  # within the pause: counted, no run
    assert ReflectionRun.objects.count() == 1

    time.sleep(1.1)
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/logs/", _batch(case, 1), format="json")  # 151 waiting: the pause is over
    assert ReflectionRun.objects.count() == 2


def test_it_does_not_count_re_sent_logs(api, make_case, django_capture_on_commit_callbacks):
    case = make_case()
    batch = _batch(case, 60)
    for record in batch:
        record["id"] = str(__import__("uuid").uuid4())
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/logs/", batch, format="json")
        api.post("/api/logs/", batch, format="json")
    assert not ReflectionRun.objects.exists()


@pytest.fixture
def counters_on_redis(settings, redis_server):
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_server.url,
                    "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1, "IGNORE_EXCEPTIONS": True}},
    }
    return redis_server


def test_it_counts_in_one_redis_script_and_resets_at_the_threshold(counters_on_redis, make_case):
    from reflection.analysis.early_trigger import EARLY_COUNTER_KEY, EARLY_PAUSE_KEY, note_new_logs

    client = counters_on_redis.client
    busy, quiet = make_case(title="busy"), make_case(title="quiet")
    assert note_new_logs(counts={busy.pk: 70, quiet.pk: 3}) == []
    assert note_new_logs(counts={busy.pk: 30, quiet.pk: 3}) == [busy.pk]
    assert int(client.get(EARLY_COUNTER_KEY.format(busy.pk))) == 0
    assert int(client.get(EARLY_COUNTER_KEY.format(quiet.pk))) == 6
    assert 0 < client.ttl(EARLY_COUNTER_KEY.format(quiet.pk)) <= 7 * 86400

    # Paused after its run: the busy case keeps counting but is not due again until the pause ends.
    pause = EARLY_PAUSE_KEY.format(busy.pk)
    assert 0 < client.ttl(pause) <= 60
    assert note_new_logs(counts={busy.pk: 120, quiet.pk: 1}) == []
    assert int(client.get(EARLY_COUNTER_KEY.format(busy.pk))) == 120
    client.delete(pause)  # the pause ran out
    assert note_new_logs(counts={busy.pk: 1}) == [busy.pk]

    counters_on_redis.stop()
    # Redis gone: the batch is still accepted; only the early run waits for the daily one.
    assert note_new_logs(counts={busy.pk: 500}) == []
