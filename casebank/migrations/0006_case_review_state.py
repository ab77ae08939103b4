"""Case review state (approved | pending | rejected) with its audit table and queue.

Cases filed by sessions used to be marked pending with status `warning` and a `pending-review`
tag; they move to review_state `pending` (status back to `active`, audited) and lose the tag.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

PENDING_TAG = "pending-review"


def tagged_cases_to_pending(apps, schema_editor):
    Case = apps.get_model("casebank", "Case")
    CaseStatusChange = apps.get_model("casebank", "CaseStatusChange")
    # Only sessions filed such cases (category "sessions"); JSON containment is not portable.
    for case in Case.objects.filter(category="sessions").only("id", "tags", "status").iterator():
        if PENDING_TAG not in (case.tags or []):
            continue
        case.tags = [tag for tag in case.tags if tag != PENDING_TAG]
        case.review_state = "pending"
        fields = ["tags", "review_state"]
        if case.status == "warning":
            CaseStatusChange.objects.create(
                case=case, from_status="warning", to_status="active", actor="migration",
                reason="pending review is now review_state, not the warning status",
            )
            case.status = "active"
            fields.append("status")
        case.save(update_fields=fields)


class Migration(migrations.Migration):

    dependencies = [
        ('casebank', '0005_case_search_length_idx'),
    ]

    operations = [
        migrations.CreateModel(
            name='CaseReviewChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('from_state', models.CharField(choices=[('approved', 'Approved'), ('pending', 'Pending review'), ('rejected', 'Rejected')], max_length=20)),
                ('to_state', models.CharField(choices=[('approved', 'Approved'), ('pending', 'Pending review'), ('rejected', 'Rejected')], max_length=20)),
                ('note', models.CharField(blank=True, default='', max_length=500)),
                ('actor', models.CharField(blank=True, default='', max_length=150)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='PendingCase',
            fields=[
            ],
            options={
                'verbose_name': 'case pending review',
                'verbose_name_plural': 'cases pending review (review queue)',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('casebank.case',),
        ),
        migrations.AlterModelOptions(
            name='case',
            options={'ordering': ['-updated_at'], 'permissions': [('rollback_case', 'Can roll a case back to an earlier version'), ('review_case', 'Can approve or reject cases pending review')]},
        ),
        migrations.AddField(
            model_name='case',
            name='review_state',
            field=models.CharField(choices=[('approved', 'Approved'), ('pending', 'Pending review'), ('rejected', 'Rejected')], db_default='approved', default='approved', editable=False, help_text='Only approved cases are retrieved and reused; new cases from sessions start pending.', max_length=20),
        ),
        migrations.AddIndex(
            model_name='case',
            index=models.Index(condition=models.Q(('review_state', 'pending')), fields=['created_at'], name='case_pending_review_idx'),
        ),
        migrations.AddField(
            model_name='casereviewchange',
            name='case',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='review_changes', to='casebank.case'),
        ),
        migrations.RunPython(tagged_cases_to_pending, migrations.RunPython.noop),
    ]
