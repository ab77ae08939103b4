"""Admin registrations of the agents live with their domains; importing them registers them."""
from agents.knowledge import admin as knowledge_admin
from agents.sessions import admin as sessions_admin

__all__ = ["knowledge_admin", "sessions_admin"]
