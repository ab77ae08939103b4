"""Test settings: the production module with tasks run inline and fast password hashing.

django-q2 reads its configuration at import, so `sync` has to be set here rather than per test.
"""
from config.settings import *  # noqa: F401,F403
from config.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Time does not pass inside a test: a run must see the logs the test just wrote. The tests of
# the settle lag itself set it (tests/reflection/analysis/test_run_settle.py).
REFLECTION_INGEST_SETTLE_SECONDS = 0
