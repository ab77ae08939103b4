"""Alerts to the people who review suggestions: email (Django's backend) and an optional JSON webhook."""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import send_mail
from django.db.models import Q

logger = logging.getLogger(__name__)


def reviewer_emails() -> list[str]:
    """Active superusers and holders of `approve_suggestion` (directly or by group), plus ADMINS."""
    permission = Permission.objects.filter(codename="approve_suggestion", content_type__app_label="reflection").first()
    who = Q(is_superuser=True)
    if permission is not None:
        who |= Q(user_permissions=permission) | Q(groups__permissions=permission)
    emails = set(
        get_user_model().objects.filter(who, is_active=True).exclude(email="").values_list("email", flat=True).distinct()
    )
    # (name, email) pairs; plain addresses are the format from Django 6 on.
    emails.update(admin if isinstance(admin, str) else admin[1] for admin in settings.ADMINS)
    return sorted(emails)


def post_webhook(*, url: str, payload: dict, attempts: int, backoff_seconds: float, timeout: float) -> bool:
    """POST JSON; retry on network errors and 5xx/429 with exponential backoff. True when delivered."""
    body = json.dumps(payload, default=str).encode()
    for attempt in range(1, max(attempts, 1) + 1):
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "caseloop-alerts"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (URL from settings)
                if 200 <= response.status < 300:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                logger.error("webhook refused the alert with HTTP %s; not retrying", exc.code)
                return False
            logger.warning("webhook attempt %s: HTTP %s", attempt, exc.code)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            logger.warning("webhook attempt %s: %s", attempt, exc)
        if attempt < attempts:
            time.sleep(backoff_seconds * (2 ** (attempt - 1)))
    logger.error("webhook alert not delivered after %s attempts", attempts)
    return False


def send_alert(*, event: str, subject: str, text: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Email the reviewers and, if `ALERT_WEBHOOK_URL` is set, post `{"event": ..., **payload}`."""
    recipients = reviewer_emails()
    emailed = 0
    if recipients:
        emailed = send_mail(
            subject=f"[Caseloop] {subject}", message=text, from_email=None, recipient_list=recipients, fail_silently=False
        )
    delivered = None
    if settings.ALERT_WEBHOOK_URL:
        delivered = post_webhook(
            url=settings.ALERT_WEBHOOK_URL,
            payload={"event": event, "subject": subject, **payload},
            attempts=settings.ALERT_WEBHOOK_ATTEMPTS,
            backoff_seconds=settings.ALERT_WEBHOOK_BACKOFF_SECONDS,
            timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS,
        )
    return {"emailed": emailed, "recipients": recipients, "webhook": delivered}
