"""The data agent's one-line summary, which the extractive answer cites: it names the highest and
lowest rows when the first column labels them, whatever order the SQL returned them in."""
from __future__ import annotations

from agents.tools.workers import summarise


def test_it_names_the_highest_and_lowest_labelled_rows_in_any_order():
    rows = [["south", 120.5], ["east", 614.0], ["west", 90], ["north", 300.25]]
    text = summarise(["region", "revenue"], rows, truncated=False)
    assert text.endswith("Highest revenue: east (614.0); lowest: west (90).")
    assert text.startswith("4 rows with columns region, revenue; first: region = south, revenue = 120.5.")


def test_it_reads_the_first_column_that_is_numeric_in_every_row():
    rows = [["a", "x", 3, None], ["b", "y", 7, 1.0]]
    assert "Highest n: b (7); lowest: a (3)." in summarise(["k", "note", "n", "m"], rows, truncated=True)


def test_it_adds_nothing_without_labels_or_with_non_finite_or_boolean_values():
    assert "Highest" not in summarise(["a", "b"], [[1, 2], [3, 4]], truncated=False)  # no label column
    assert "Highest" not in summarise(["a", "b"], [["x", float("inf")], ["y", 2]], truncated=False)
    assert "Highest" not in summarise(["a", "ok"], [["x", True], ["y", False]], truncated=False)
    assert summarise(["a", "b"], [["x", 1]], truncated=False) == "Result: a = x, b = 1."
    assert summarise(["a"], [], truncated=False) == "The query returned no rows."
