"""The one way work is handed to django-q2: the queue is a doorbell, the database the truth.

django-q2's Redis broker pops a task with no acknowledgement (`BLPOP`): a task whose worker is
killed is gone, and `async_task` raises while Redis is down. So every piece of work that must
not be lost is a row first (a queued session, a queued reflection run) carrying `retry_at`, the
moment a sweeper looks at it again if nothing has moved it on; `enqueue` only rings the bell
and never raises to its caller. Each app's sweeper (scheduled every minute by
`manage.py setup_schedules`) rings again for rows whose `retry_at` has passed, and the work
itself is claimed with a conditional UPDATE, so a re-delivered task and a sweeper's ring never
do it twice.

After a failed enqueue the broker is skipped for `TASK_BROKER_RETRY_SECONDS`, so an outage
costs one connection timeout per process per interval, not one per request.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.utils.module_loading import import_string
from django_q.conf import Conf
from django_q.tasks import async_task

from core import metrics

logger = logging.getLogger(__name__)
_down_until = 0.0
_lock = threading.Lock()


def enqueue(task: str, *args: Any, if_unavailable: Callable[[], object] | None = None) -> bool:
    """Hand `task(*args)` to the queue now; False (after a warning) when the broker refused it.

    `if_unavailable` runs instead when the task could not be queued (e.g. mark the row due for
    the sweeper, or do a cheap write inline); its own failure is logged, never raised.
    """
    import_string(task)  # a misspelt task is a bug, not an outage: fail loudly
    if time.monotonic() >= _down_until:
        try:
            async_task(task, *args)
            return True
        except Exception as error:  # any transport error: the caller's work is already stored
            if Conf.SYNC:
                raise  # the task itself ran inline (tests, Q_SYNC) and failed: not a broker outage
            _broker_failed(task, error)
    else:
        metrics.enqueue_failed(task)
    if if_unavailable is not None:
        try:
            if_unavailable()
        except Exception:
            logger.exception("fallback for task %s failed; the sweeper will pick the work up", task)
    return False


def enqueue_on_commit(task: str, *args: Any, if_unavailable: Callable[[], object] | None = None) -> None:
    """`enqueue` once the current transaction commits (at once outside a transaction), so a
    worker never looks for a row it cannot see yet."""
    transaction.on_commit(lambda: enqueue(task, *args, if_unavailable=if_unavailable))


def _broker_failed(task: str, error: Exception) -> None:
    global _down_until
    with _lock:
        _down_until = time.monotonic() + float(settings.TASK_BROKER_RETRY_SECONDS)
    metrics.enqueue_failed(task)
    # The type only: a connection error's text may carry the broker URL with its password.
    logger.warning("task %s not queued, broker unavailable (%s); it is left to the sweeper", task, type(error).__name__)


def reset_broker_backoff() -> None:
    """Forget a previous broker failure (tests, and an operator who just restarted Redis)."""
    global _down_until
    with _lock:
        _down_until = 0.0


def redeliver_at(now: datetime) -> datetime:
    """When a queued piece of work not started by then is handed out again: `Q_RETRY` later,
    the ORM broker's own redelivery delay."""
    return now + timedelta(seconds=int(settings.Q_CLUSTER["retry"]))


def _task_timeout() -> timedelta:
    return timedelta(seconds=int(settings.Q_CLUSTER["timeout"]))


def abandoned_before(now: datetime) -> datetime:
    """Work started before this and still running has lost its worker: django-q2 kills a task
    at `Q_TIMEOUT`, so nothing still runs it."""
    return now - _task_timeout()


def lease_end(started: datetime) -> datetime:
    """When work started at `started` counts as abandoned (see `abandoned_before`)."""
    return started + _task_timeout()


def take_due(model: type[Model], *, now: datetime, limit: int) -> Iterator[tuple[Any, str, int]]:
    """(pk, status, attempts) of the rows of `model` whose `retry_at` has passed, oldest first,
    each taken with a conditional UPDATE that moves its `retry_at` on by `Q_RETRY`: two sweeps
    never act on a row together, and a row that keeps failing comes back only after that."""
    manager = model._default_manager  # `objects` on Session and ReflectionRun (no other manager)
    due = list(manager.filter(retry_at__lte=now).order_by("retry_at").values_list("pk", "status", "attempts")[:limit])
    for pk, status, attempts in due:
        if manager.filter(pk=pk, retry_at__lte=now).update(retry_at=redeliver_at(now)) == 1:
            yield pk, status, attempts
        # else: the work moved on meanwhile (claimed, finished) or another sweep took it


def max_attempts() -> int:
    """Starts of one piece of work before it is given up as failed (a task that kills its
    worker every time, e.g. out of memory, must not be handed out forever)."""
    return int(settings.Q_CLUSTER["max_attempts"])
