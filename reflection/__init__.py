"""Reflection: the execution log (logs/), analyses and runs (analysis/), improvement suggestions
(suggestions/) and the LLM client (llm/). Imports core and casebank; see docs/reflection.md."""
