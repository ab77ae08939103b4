"""Experiments: a candidate version of a case's plan served beside the current one, and the
sequential decision rule that says when the candidate is better, worse, or no different.

Only the decision rule lives here so far (`sequential`, a pure function: docs/experiments.md).
"""
