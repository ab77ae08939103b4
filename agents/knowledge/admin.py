"""Admin of knowledge documents and their chunks (read-only)."""
from __future__ import annotations

from typing import Any

from django.contrib import admin

from agents.models import Document, DocumentChunk
from core.admin_support import HistoryInline


class DocumentChunkInline(HistoryInline):
    model = DocumentChunk
    fields = ["index", "text", "search_length"]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "source", "updated_at"]
    search_fields = ["title", "source"]
    readonly_fields = ["title", "source", "content", "checksum", "created_at", "updated_at"]
    inlines = [DocumentChunkInline]

    def has_add_permission(self, request: Any) -> bool:
        return False  # loaded by `manage.py load_documents`, which chunks and embeds

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
