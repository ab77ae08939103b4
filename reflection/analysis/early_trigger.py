"""Early reflection runs: a case that received `REFLECTION_EARLY_TRIGGER_LOGS` new logs gets a
run of its own right after the ingesting transaction commits, at most one per case every
`REFLECTION_EARLY_TRIGGER_PAUSE_SECONDS` (docs/reflection.md, "Early trigger")."""
from __future__ import annotations

import logging
import uuid

from django.conf import settings
from redis import exceptions as redis_exceptions

from core import task_queue

logger = logging.getLogger(__name__)

EARLY_COUNTER_KEY = "reflection:new-logs:{}"
# Set for a case while its early run is fresh: under heavy traffic a case passes 100 new logs
# several times a second, and a run for each would flood the queue with work the first run
# (or the next one, once the pause is over) already covers. Logs keep counting meanwhile.
EARLY_PAUSE_KEY = "reflection:early-pause:{}"
EARLY_COUNTER_SECONDS = 7 * 86400
# On Redis, one round trip whatever the batch: add each case's count, and reset and report the
# counters that reached the threshold while no pause holds them back. (Per-key GET and SET cost
# ~3 ms of client CPU a batch.) KEYS: the counters, then the pause keys, in the same order.
_EARLY_COUNT_SCRIPT = """
local due = {}
local n = #KEYS / 2
for i = 1, n do
  local key = KEYS[i]
  local total = redis.call('INCRBY', key, ARGV[i + 3])
  if total >= tonumber(ARGV[1]) and redis.call('SET', KEYS[n + i], 1, 'NX', 'EX', ARGV[3]) then
    redis.call('SET', key, 0, 'EX', ARGV[2])
    due[#due + 1] = i
  else
    redis.call('EXPIRE', key, ARGV[2])
  end
end
return due
"""


def note_new_logs(*, counts: dict[uuid.UUID, int]) -> list[uuid.UUID]:
    """Count new logs per case; cases reaching the threshold get an early run after commit,
    at most one per case every `REFLECTION_EARLY_TRIGGER_PAUSE_SECONDS`.

    Counters live in the cache, one round trip per batch: a lost increment (a race on local
    memory, Redis down) only delays the early run; the daily run covers everything anyway.
    """
    if not counts:
        return []
    threshold = settings.REFLECTION_EARLY_TRIGGER_LOGS
    pause = settings.REFLECTION_EARLY_TRIGGER_PAUSE_SECONDS
    cases = list(counts)
    keys = [EARLY_COUNTER_KEY.format(case_id) for case_id in cases]
    pauses = [EARLY_PAUSE_KEY.format(case_id) for case_id in cases]
    redis_client = _redis_client()
    if redis_client is not None:
        try:
            positions = redis_client.eval(
                _EARLY_COUNT_SCRIPT, 2 * len(keys), *keys, *pauses, threshold, EARLY_COUNTER_SECONDS, pause,
                *(counts[case_id] for case_id in cases),
            )
        except redis_exceptions.RedisError as error:
            logger.warning("early-run counters unavailable (%s); the daily run covers these logs", type(error).__name__)
            return []
        due = [cases[int(position) - 1] for position in positions]
    else:
        due = _count_in_local_cache(keys, pauses, cases, counts, threshold, pause)
    if due:
        ids = [str(case_id) for case_id in due]
        # Lost if the broker is down (a warning is logged): the daily run analyses these cases.
        task_queue.enqueue_on_commit("reflection.analysis.tasks.early_reflection_task", ids)
    return due


def _redis_client():
    """The raw client behind the default cache when it is Redis, else None (local memory)."""
    if "django_redis" not in settings.CACHES["default"]["BACKEND"]:
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def _count_in_local_cache(keys: list[str], pauses: list[str], cases: list[uuid.UUID],
                          counts: dict[uuid.UUID, int], threshold: int, pause: int) -> list[uuid.UUID]:
    from django.core.cache import cache

    current = cache.get_many(keys)
    due: list[uuid.UUID] = []
    updated: dict[str, int] = {}
    for key, pause_key, case_id in zip(keys, pauses, cases, strict=False):
        total = int(current.get(key, 0)) + counts[case_id]
        if total >= threshold and cache.add(pause_key, 1, timeout=pause):
            due.append(case_id)
            total = 0
        updated[key] = total
    cache.set_many(updated, timeout=EARLY_COUNTER_SECONDS)
    return due
