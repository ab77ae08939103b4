"""Admin of API keys: create (the key is shown once), edit, revoke."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from casebank.access import services
from casebank.access.scopes import DEFAULT_SCOPES, Scope
from casebank.models import ApiKey

SCOPE_HELP = {
    Scope.LOGS_WRITE: "send execution logs",
    Scope.CASES_READ: "search and read cases, read its own logs",
    Scope.CASES_WRITE: "create and edit cases, roll back, change status (with the user's case permissions)",
    Scope.SESSIONS: "start and read its own sessions, the data-analysis worker",
    Scope.REFLECTION: "analyses, reflection runs, suggestions; every key's logs if the user may view logs",
    Scope.REVIEW: "approve, reject and roll back suggestions (with the user's approve permission)",
}


class ApiKeyForm(forms.ModelForm):
    # A JSON list in the model; ticked boxes here, so only real scopes can be saved.
    scopes = forms.MultipleChoiceField(
        choices=[(scope.value, f"{scope.value}: {SCOPE_HELP[scope]}") for scope in Scope],
        widget=forms.CheckboxSelectMultiple, required=False, initial=list(DEFAULT_SCOPES),
        help_text="What the key may do, on top of its user's permissions. An agent needs logs:write, cases:read "
                  "and sessions; a reviewer's key cases:read, reflection and review.",
    )

    class Meta:
        model = ApiKey
        fields = ["name", "tier", "user", "scopes", "is_active"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "tier", "user", "scope_list", "is_active", "created_at", "last_used_at"]
    list_filter = ["tier", "is_active"]
    search_fields = ["name", "prefix"]
    raw_id_fields = ["user"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    @admin.display(description="Scopes")
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes or []) or "—"

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        revoked = 0
        for api_key in queryset.filter(is_active=True):
            services.api_key_revoke(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            form.base_fields["user"].required = False
            form.base_fields["user"].help_text = "Leave empty to create a service user named api-<name>."
        return form

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            data = form.cleaned_data
            services.api_key_update(
                api_key=obj, name=data["name"], tier=data["tier"], user=data["user"], is_active=data["is_active"],
                scopes=data["scopes"],
            )
            return
        data = form.cleaned_data
        created, plain = services.api_key_create(
            name=data["name"], tier=data["tier"], user=data.get("user"), scopes=data["scopes"]
        )
        obj.pk = created.pk
        self.message_user(
            request,
            f"API key for {created.name}: {plain} — copy it now, it is not stored and will not be shown again.",
            messages.WARNING,
        )

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        services.api_key_delete(api_key=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for api_key in queryset:
            services.api_key_delete(api_key=api_key)
