"""The BM25 inverted index of cases: postings (term, case, impact) and document frequencies."""
from __future__ import annotations

from django.db import models

from casebank.cases.models import Case


class CaseTerm(models.Model):
    """Inverted index for BM25: one row per (case, term) with its frequency.

    Kept in the database so that BM25 works the same on SQLite and PostgreSQL, updates with
    every case write, and scales with the table rather than with process memory.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="terms")
    term = models.CharField(max_length=64)
    tf = models.PositiveIntegerField()
    # The query-independent part of the term's BM25 score in this case (tf saturated and
    # normalised by length), so a search reads each term's postings best-first.
    impact = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "term"], name="caseterm_unique_term")
        ]
        indexes = [
            # BM25 scoring: WHERE term = ? ORDER BY impact DESC LIMIT n, per query term;
            # covering on PostgreSQL, so the postings come from the index alone.
            models.Index(fields=["term", "-impact"], include=["case"], name="caseterm_term_impact_idx"),
        ]


class CaseTermStat(models.Model):
    """BM25 document frequency of a term: how many cases hold it (all statuses, like the corpus size).

    Kept by `casebank.search.services` in the transaction that writes the term's postings, so a search
    reads df by primary key instead of counting a common term's postings (tens of thousands of
    index entries over 100,000 cases). `case_term_stats_rebuild` recounts it after a bulk load.
    """

    term = models.CharField(max_length=64, primary_key=True)
    # Signed on purpose: a decrement is one upsert adding -1, and a row that drops to 0 is deleted.
    df = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.term}: {self.df}"
