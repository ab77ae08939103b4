"""Test settings: the production module with tasks run inline and fast password hashing.

django-q2 reads its configuration at import, so `sync` has to be set here rather than per test.
"""
import atexit
import os
import shutil
import tempfile

from config.settings import *  # noqa: F401,F403
from config.settings import CACHES, Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Time does not pass inside a test: a run must see the logs the test just wrote. The tests of
# the settle lag itself set it (tests/reflection/analysis/test_run_settle.py).
REFLECTION_INGEST_SETTLE_SECONDS = 0
# Dashboard tests compare its figures with rows they just wrote (the cache has its own test).
DASHBOARD_CACHE_SECONDS = 0

if "shared" in CACHES and "SHARED_CACHE_DIR" not in os.environ:
    # The cross-process cache of a test run lives in its own directory, which the processes a
    # test starts inherit through the environment (tests/casebank/cases/test_read_cache_across_processes.py).
    _shared_dir = tempfile.mkdtemp(prefix="caseloop-shared-cache-")
    os.environ["SHARED_CACHE_DIR"] = _shared_dir
    atexit.register(shutil.rmtree, _shared_dir, ignore_errors=True)
    CACHES = {**CACHES, "shared": {**CACHES["shared"], "LOCATION": _shared_dir}}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # The test database is a file, as in production, not Django's in-memory default: that one's
    # shared cache locks whole tables across connections and fails at once ("database table is
    # locked") when a session's agent threads write together, where a file waits (WAL, timeout).
    _test_db_dir = tempfile.mkdtemp(prefix="caseloop-test-db-")
    atexit.register(shutil.rmtree, _test_db_dir, ignore_errors=True)
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(_test_db_dir, "test.sqlite3")}  # noqa: F405
