"""API keys: the model, their writes and cached lookups, authentication, throttling, admin."""
