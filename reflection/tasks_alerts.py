"""Alert task paths of the layout before 2026-12, kept for one release for tasks still queued."""
from reflection.suggestions.tasks import notify_regression, notify_suggestion_created

__all__ = ["notify_regression", "notify_suggestion_created"]
