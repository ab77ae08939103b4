"""Experiments: a candidate version of a case's plan served beside the current one, and the
sequential decision rule that says when the candidate is better, worse, or no different.

`sequential` (the pure rule) and `assignment` (deterministic arms) are pure; `models`,
`services` (start, look, promote, roll back), `selectors` (`resolve_plan`, arm counts),
`attribution` (a log's version from its key), `apis` (`GET /api/cases/{id}/plan/`), `admin`
and `rendering` (the experiment page) build on them (docs/experiments.md).
"""
