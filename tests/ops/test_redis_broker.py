"""With REDIS_URL, tasks go to Redis over one pooled connection, not a new one per task."""
from __future__ import annotations

import subprocess
import sys

from django.conf import settings

SCRIPT = """
import django
django.setup()
from django_q.brokers import get_broker
from django_q.tasks import async_task
for _ in range(20):
    async_task("math.floor", 1.5)
print(get_broker().queue_size())
"""


def test_tasks_are_queued_in_redis_over_a_pooled_connection(redis_server):
    client, url = redis_server.client, redis_server.url
    before = int(client.info("stats")["total_connections_received"])
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "REDIS_URL": url, "PATH": "/usr/bin:/bin",
           "DATABASE_URL": "sqlite:///:memory:"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "20"
    assert client.llen("django_q:caseloop:q") == 20
    opened = int(client.info("stats")["total_connections_received"]) - before
    assert opened <= 3, f"{opened} connections for 20 tasks"
