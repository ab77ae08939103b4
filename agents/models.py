"""The agents' models, one module per domain, re-exported so that Django registers them under the
`agents` app (tables and migrations keep their names)."""
from agents.knowledge.models import Document, DocumentChunk, DocumentTerm
from agents.sessions.models import FINISHED_STATUSES, Session, SessionEvent, SessionStatus
from agents.tools.models import AnalyticsSlot

__all__ = ["FINISHED_STATUSES", "AnalyticsSlot", "Document", "DocumentChunk", "DocumentTerm", "Session", "SessionEvent", "SessionStatus"]
