"""Project wiring: settings from the environment, URLs, the API exception handler, health,
metrics, deploy checks. No app imports it; see docs/architecture.md."""
