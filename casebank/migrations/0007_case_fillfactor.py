"""Leave room in each page of the case table so that metric updates stay HOT.

A batch reflection run writes `success_rate` and `run_count` of up to thousands of cases. Those
columns are in no index, so with free space on the row's page PostgreSQL updates in place (a
HOT update) instead of adding an entry to every index, the HNSW index on `embedding` included.
Pages written from now on keep 30 % free; `VACUUM FULL casebank_case` rewrites older ones.
"""
from django.db import migrations

from core.migrations_support import PostgresOnlySQL


class Migration(migrations.Migration):
    dependencies = [("casebank", "0006_case_review_state")]

    operations = [
        PostgresOnlySQL(
            "ALTER TABLE casebank_case SET (fillfactor = 70)",
            reverse_sql="ALTER TABLE casebank_case RESET (fillfactor)",
        ),
    ]
