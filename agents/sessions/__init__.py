"""Supervisor sessions: the model and its events, writes, reads, the API and the SSE stream."""
