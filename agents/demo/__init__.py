"""The demo: cases with known failure patterns, an analytics database, documents."""
