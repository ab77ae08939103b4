"""The execution log: the model, batch ingestion (fast decoder + validator), the list API, admin."""
