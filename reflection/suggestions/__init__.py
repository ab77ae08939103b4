"""Improvement suggestions: generation (LLM or rules), deferral, the review decisions,
verification, the approval console and alerts."""
