"""Shared plumbing below every app: errors, the task queue, the two-level cache, schedules,
JSON parsing and rendering, redaction, PostgreSQL helpers, project-wide commands. No models."""
