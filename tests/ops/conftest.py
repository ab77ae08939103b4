from __future__ import annotations

import pytest

from tests.ops.qcluster_support import cluster_database, cluster_env, manage


@pytest.fixture(scope="session")
def cluster_template(tmp_path_factory):
    """One migrated database of the suite's kind, which each qcluster fault test copies."""
    base = tmp_path_factory.mktemp("cluster-template")
    with cluster_database(base) as database:
        manage(cluster_env(base, database, timeout=3, retry=4), "migrate", "--noinput", "-v", "0")
        yield database
