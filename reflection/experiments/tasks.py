"""django-q2 tasks of experiments: the reviewers' alerts (enqueued with `transaction.on_commit`);
thin, taking ids."""
from __future__ import annotations

from typing import Any

from reflection.models import Experiment
from reflection.suggestions.notifications import send_alert


def admin_url(experiment: Experiment) -> str:
    return f"/admin/reflection/experiment/{experiment.pk}/change/"


def _payload(experiment: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": experiment.pk,
        "suggestion_id": experiment.suggestion_id,
        "case_id": str(experiment.case_id),
        "base_version": experiment.base_version,
        "candidate_version": experiment.candidate_version,
        "candidate_share": experiment.candidate_share,
        "status": experiment.status,
        "decision": experiment.detail,
        "url": admin_url(experiment),
    }


def _counts(experiment: Experiment) -> str:
    detail = experiment.detail
    current, candidate = detail.get("current") or {}, detail.get("candidate") or {}

    def rate(arm: dict) -> str:
        value = arm.get("success_rate")
        return f"{value:.1%}" if isinstance(value, (int, float)) else "n/a"

    return (f"Candidate v{experiment.candidate_version}: {rate(candidate)} over {candidate.get('runs', 0)} runs; "
            f"current v{experiment.base_version}: {rate(current)} over {current.get('runs', 0)} runs "
            f"(always-valid p = {detail.get('p_value')}).")


def notify_experiment_rolled_back(experiment_id: int) -> dict[str, Any] | None:
    experiment = Experiment.objects.select_related("case").defer("case__embedding").filter(pk=experiment_id).first()
    if experiment is None:
        return None
    return send_alert(
        event="experiment.rolled_back",
        subject=f"Canary stopped: suggestion #{experiment.suggestion_id} regressed “{experiment.case.title}”",
        text=(
            f"{_counts(experiment)}\nThe candidate is no longer served; v{experiment.base_version} stays current.\n"
            f"Override (promote anyway) or read the evidence: {admin_url(experiment)}"
        ),
        payload=_payload(experiment),
    )


def notify_experiment_awaiting_review(experiment_id: int) -> dict[str, Any] | None:
    experiment = Experiment.objects.select_related("case").defer("case__embedding").filter(pk=experiment_id).first()
    if experiment is None:
        return None
    return send_alert(
        event="experiment.awaiting_review",
        subject=f"Better: promote suggestion #{experiment.suggestion_id} on “{experiment.case.title}”?",
        text=f"{_counts(experiment)}\nPromote or roll back: {admin_url(experiment)}",
        payload=_payload(experiment),
    )
