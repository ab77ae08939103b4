"""A run's claim on a case is a lease: no index, no foreign-key constraint, and room on each
page (fillfactor 50, PostgreSQL) so that claiming and releasing update rows in place."""
import django.db.models.deletion
from django.db import migrations, models

from core.migrations_support import PostgresOnlySQL


class Migration(migrations.Migration):

    dependencies = [
        ("reflection", "0010_analysis_case_index_covered"),
    ]

    operations = [
        migrations.AlterField(
            model_name="casereflectionstate",
            name="claimed_by",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                                    to="reflection.reflectionrun"),
        ),
        PostgresOnlySQL(
            "ALTER TABLE reflection_casereflectionstate SET (fillfactor = 50)",
            reverse_sql="ALTER TABLE reflection_casereflectionstate RESET (fillfactor)",
        ),
    ]
