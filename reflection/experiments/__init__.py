"""Experiments: a candidate version of a case's plan served beside the current one, and the
sequential decision rule that says when the candidate is better, worse, or no different.

So far the pure pieces (docs/experiments.md): the decision rule (`sequential`) and the
deterministic arm assignment (`assignment`).
"""
