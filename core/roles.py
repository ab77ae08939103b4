"""Least-privilege groups, created by `manage.py setup_roles` (idempotent).

Reviewers read the case bank, the logs and the analyses, decide suggestions and review new
cases; they cannot edit cases directly, manage API keys or touch users. Permissions that do not
exist yet (an app not migrated, a feature not shipped) are skipped and reported, so the command
can run on any schema version and be re-run after an upgrade.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q

REVIEWERS = "Reviewers"
# (app_label, codename) pairs; view_* for reading in the admin, approve_suggestion and
# review_case (the queue of new cases from sessions) for deciding.
REVIEWER_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("casebank", "view_case"),
    ("casebank", "view_caseversion"),
    ("casebank", "view_pendingcase"),
    ("casebank", "view_casereviewchange"),
    ("casebank", "review_case"),
    ("reflection", "view_executionlog"),
    ("reflection", "view_caseanalysis"),
    ("reflection", "view_reflectionrun"),
    ("reflection", "view_suggestion"),
    ("reflection", "view_pendingsuggestion"),
    ("reflection", "view_suggestiondecision"),
    ("reflection", "view_experiment"),
    ("reflection", "approve_suggestion"),
)


@dataclass
class RoleResult:
    group: str
    created: bool
    granted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@transaction.atomic
def roles_setup() -> list[RoleResult]:
    group, created = Group.objects.get_or_create(name=REVIEWERS)
    query = Q(pk__in=[])
    for app_label, codename in REVIEWER_PERMISSIONS:
        query |= Q(content_type__app_label=app_label, codename=codename)
    found = {f"{p.content_type.app_label}.{p.codename}": p for p in Permission.objects.filter(query).select_related("content_type")}
    wanted = [f"{app}.{code}" for app, code in REVIEWER_PERMISSIONS]
    # set(): re-running removes anything granted by hand beyond the role, keeping it least-privilege.
    group.permissions.set(list(found.values()))
    return [
        RoleResult(
            group=REVIEWERS,
            created=created,
            granted=sorted(found),
            missing=[name for name in wanted if name not in found],
        )
    ]
