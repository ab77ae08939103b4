"""The experiment pages: one per approved suggestion, with its arms, the statistic over time and
the decision; reviewers roll back (confirmation and a note) or promote from here.

Actions only call `reflection.experiments.services`; each needs `approve_suggestion` and logs
the change (`log_change`) next to the service's own audit row on the suggestion.
"""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.admin_support import ReadOnlyAdminMixin, apply_to_each, decision_page
from reflection.experiments import services
from reflection.experiments.ramp import next_share
from reflection.experiments.rendering import arms_html, ramp_html, statistic_html, statistic_svg, status_badge
from reflection.models import Experiment, ExperimentStatus

APPROVE_PERMISSION = "reflection.approve_suggestion"


@admin.register(Experiment)
class ExperimentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "suggestion_link", "case_link", "status_view", "share", "current_arm", "candidate_arm",
                    "started_at", "decided_at"]
    list_filter = ["status", "flagged"]
    list_select_related = ["case"]
    search_fields = ["=id", "=suggestion__id", "=case__id", "case__title"]
    ordering = ["-started_at"]
    actions = ["rollback_selected", "promote_selected", "advance_selected", "hold_selected", "resume_selected",
               "set_share_selected"]
    change_form_template = "admin/reflection/experiment_change_form.html"
    readonly_fields = ["suggestion_link", "case_link", "status_view", "share", "ramp_view", "arms", "statistic", "chart",
                       "started_at", "decided_at", "decided_by", "decision_note"]
    fieldsets = [
        (None, {"fields": ["suggestion_link", "case_link", "status_view", "share", "started_at"]}),
        ("Ramp", {"fields": ["ramp_view"]}),
        ("Arms (runs since the experiment started)", {"fields": ["arms"]}),
        ("Sequential decision", {"fields": ["statistic", "chart"]}),
        ("Decision", {"fields": ["decided_at", "decided_by", "decision_note"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("case__embedding")

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_PERMISSION)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        experiment = self.get_object(request, unquote(object_id))
        can_decide = self.has_approve_permission(request)
        running = bool(experiment and can_decide and experiment.status == ExperimentStatus.RUNNING)
        following = next_share(ramp=experiment.ramp, share=experiment.candidate_share) if experiment else None
        extra = {
            "offer_rollback": bool(experiment and can_decide and experiment.status in services.ROLLBACK_FROM),
            "offer_promote": bool(experiment and can_decide and experiment.status in services.PROMOTE_FROM),
            "offer_advance": f"{following:.0%}" if running and following is not None else "",
            "offer_hold": running and experiment is not None and not experiment.ramp_held,
            "offer_resume": running and experiment is not None and experiment.ramp_held,
            "offer_share": running,
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    # -- columns ------------------------------------------------------------------------

    @admin.display(description="Suggestion", ordering="suggestion")
    def suggestion_link(self, experiment: Experiment) -> SafeString:
        return format_html('<a href="/admin/reflection/suggestion/{}/change/">#{}</a>', experiment.suggestion_id,
                           experiment.suggestion_id)

    @admin.display(description="Case", ordering="case__title")
    def case_link(self, experiment: Experiment) -> SafeString:
        return format_html('<a href="/admin/casebank/case/{}/change/">{}</a> <span style="color:#888">now v{}</span>',
                           experiment.case_id, experiment.case.title[:60], experiment.case.version)

    @admin.display(description="Status", ordering="status")
    def status_view(self, experiment: Experiment) -> SafeString:
        return status_badge(experiment)

    @admin.display(description="Candidate share", ordering="candidate_share")
    def share(self, experiment: Experiment) -> str:
        return f"{experiment.candidate_share:.0%}"

    def _arm(self, experiment: Experiment, arm: str, version: int) -> str:
        counts = (experiment.detail or {}).get(arm) or {}
        rate = counts.get("success_rate")
        return f"v{version}: {counts.get('runs', 0):,} runs" + (f", {rate:.1%}" if isinstance(rate, (int, float)) else "")

    @admin.display(description="Current")
    def current_arm(self, experiment: Experiment) -> str:
        return self._arm(experiment, "current", experiment.base_version)

    @admin.display(description="Candidate")
    def candidate_arm(self, experiment: Experiment) -> str:
        return self._arm(experiment, "candidate", experiment.candidate_version)

    @admin.display(description="Ramp")
    def ramp_view(self, experiment: Experiment) -> SafeString:
        return ramp_html(experiment, list(experiment.steps.order_by("number")))

    @admin.display(description="Arms")
    def arms(self, experiment: Experiment) -> SafeString:
        return arms_html(experiment)

    @admin.display(description="Statistic")
    def statistic(self, experiment: Experiment) -> SafeString:
        return statistic_html(experiment)

    @admin.display(description="Over time")
    def chart(self, experiment: Experiment) -> SafeString:
        looks = list(experiment.looks.order_by("looked_at")[:500])
        return statistic_svg(looks, threshold=1 / settings.EXPERIMENT_ALPHA)

    # -- decisions ----------------------------------------------------------------------

    def _decide(self, request: HttpRequest, queryset: QuerySet, *, verb: str) -> HttpResponse | None:
        rollback = verb == "roll back"
        note, page = decision_page(self, request, queryset, verb=verb, note_required=rollback,
                                   template="admin/reflection/experiment_decision.html", items_name="experiments",
                                   noun="experiment")
        if page is not None:
            return page
        past = "rolled back" if rollback else "promoted"

        def decide(experiment: Experiment) -> Experiment:
            if rollback:
                return services.experiment_rollback(experiment=experiment, acting_user=request.user, note=note)
            return services.experiment_promote(experiment=experiment, acting_user=request.user, note=note)

        apply_to_each(self, request, queryset, decide, success=f"{{done}} experiment(s) {past}.", failure=f"Not {past}",
                      history=lambda result: f"{result.get_status_display()}: {note}" if note else result.get_status_display())
        return None

    @admin.action(description="Roll back selected experiments (with a note)…", permissions=["approve"])
    def rollback_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._decide(request, queryset, verb="roll back")

    @admin.action(description="Promote selected candidates…", permissions=["approve"])
    def promote_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._decide(request, queryset, verb="promote")

    # -- the ramp ------------------------------------------------------------------------

    def _ramp(self, request: HttpRequest, queryset: QuerySet, *, verb: str,
              change: Callable[[Experiment, str], Experiment], done: str) -> HttpResponse | None:
        """Confirm, change each experiment through its service, record it in the admin history."""
        note, page = decision_page(self, request, queryset, verb=verb, note_required=False,
                                   template="admin/reflection/experiment_ramp.html", items_name="experiments",
                                   noun="experiment")
        if page is not None:
            return page
        apply_to_each(self, request, queryset, lambda experiment: change(experiment, note),
                      success=f"{{done}} experiment(s): {done}.", failure="Not changed",
                      history=lambda result: f"Ramp: {done} (share {result.candidate_share:.0%})" + (f": {note}" if note else ""))
        return None

    @admin.action(description="Advance selected ramps to their next share…", permissions=["approve"])
    def advance_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._ramp(request, queryset, verb="advance", done="advanced", change=lambda experiment, note: (
            services.experiment_ramp_advance(experiment=experiment, acting_user=request.user, note=note)))

    @admin.action(description="Hold selected ramps at their share…", permissions=["approve"])
    def hold_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._ramp(request, queryset, verb="hold", done="held", change=lambda experiment, note: (
            services.experiment_ramp_hold(experiment=experiment, held=True)))

    @admin.action(description="Resume selected ramps…", permissions=["approve"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._ramp(request, queryset, verb="resume", done="resumed", change=lambda experiment, note: (
            services.experiment_ramp_hold(experiment=experiment, held=False)))

    @admin.action(description="Set the candidate share of selected experiments…", permissions=["approve"])
    def set_share_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        share = _number(request.POST.get("share", ""))
        return self._ramp(request, queryset, verb="set the share", done="share set", change=lambda experiment, note: (
            services.experiment_set_share(experiment=experiment, share=share, acting_user=request.user, note=note)))


def _number(text: str) -> float | str:
    """The share typed in the form, as a number when it reads as one; the service refuses the rest."""
    try:
        return float(text)
    except ValueError:
        return text
