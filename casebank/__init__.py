"""The case bank: cases and their versions (cases/), retrieval (search/), API keys (access/) and
consolidation (consolidation/). Imports only core; see docs/architecture.md."""
