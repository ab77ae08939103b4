"""Writes of the BM25 term index: a case's postings and the document frequencies they move."""
from __future__ import annotations

from collections.abc import Callable

from django.db import connection, transaction

from casebank.models import (
    Case,
    CaseTerm,
    CaseTermStat,
)
from casebank.search.selectors import BM25_B, BM25_K1, bm25_stats, bm25_stats_forget, bm25_term_impact
from casebank.search.text import term_frequencies


def search_text(title: str, query: str) -> str:
    return f"{title}\n{query}"


def case_terms_index(case: Case, *, new: bool = False) -> None:
    frequencies = term_frequencies(search_text(case.title, case.query))
    _, avgdl = bm25_stats()
    before = set() if new else set(CaseTerm.objects.filter(case=case).values_list("term", flat=True))
    CaseTerm.objects.filter(case=case).delete()
    CaseTerm.objects.bulk_create(
        [
            CaseTerm(case=case, term=term, tf=count, impact=bm25_term_impact(count, case.search_length, avgdl))
            for term, count in frequencies.items()
        ]
    )
    _term_stats_adjust(added=set(frequencies) - before, removed=before - set(frequencies))
    # The corpus changed: the next search recounts it (again after commit, so that a search
    # racing this transaction cannot cache the old figures for a minute).
    bm25_stats_forget()
    transaction.on_commit(bm25_stats_forget)


def _term_stats_adjust(*, added: set[str], removed: set[str]) -> None:
    """Move the document frequencies of a case's added and removed terms, in its transaction.

    One upsert in term order: concurrent case writes lock shared terms' rows in the same order,
    so they queue instead of deadlocking. A term no case holds any more loses its row.
    """
    deltas = sorted([(term, 1) for term in added] + [(term, -1) for term in removed])
    if not deltas:
        return
    table = CaseTermStat._meta.db_table
    rows = ", ".join(["(%s, %s)"] * len(deltas))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (term, df) VALUES {rows} "
            f"ON CONFLICT (term) DO UPDATE SET df = {table}.df + EXCLUDED.df",
            [value for delta in deltas for value in delta],
        )
        if removed:
            marks = ", ".join(["%s"] * len(removed))
            cursor.execute(f"DELETE FROM {table} WHERE df <= 0 AND term IN ({marks})", sorted(removed))


def case_term_stats_rebuild() -> int:
    """Recount every term's document frequency from the postings; returns the number of terms.

    For after a bulk load that bypassed the services (COPY), and as a repair. Writers wait on
    the table lock meanwhile; searches do not.
    """
    table, postings = CaseTermStat._meta.db_table, CaseTerm._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM {table}")
        cursor.execute(f"INSERT INTO {table} (term, df) SELECT term, COUNT(*) FROM {postings} GROUP BY term")
        return cursor.rowcount


def case_terms_refresh_impacts() -> int:
    """Recompute every posting's BM25 impact against today's mean case length.

    Impacts are computed with the mean length at write time; as the bank grows the mean drifts.
    Run after bulk loads and from time to time (it is one UPDATE).
    """
    _, avgdl = bm25_stats(fresh=True)
    norm = f"(1 - {BM25_B} + {BM25_B} * (SELECT search_length FROM {Case._meta.db_table} AS c WHERE c.id = {CaseTerm._meta.db_table}.case_id) / %s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {CaseTerm._meta.db_table} SET impact = tf * {BM25_K1 + 1} / (tf + {BM25_K1} * {norm})",
            [avgdl or 1.0],
        )
        return cursor.rowcount


def search_length_of(title: str, query: str) -> int:
    return sum(term_frequencies(search_text(title, query)).values())


def case_terms_reindex_all(*, on_progress: Callable[[int], None] | None = None) -> int:
    """Re-tokenise every case (search length and postings), e.g. after the tokeniser changed.

    One short transaction per case, so writers and searches go on meanwhile; the impacts are
    rescored against the new mean length at the end. Returns the number of cases.
    """
    count = 0
    for case_id in Case.objects.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=500):
        with transaction.atomic():
            case = Case.objects.select_for_update().only("id", "title", "query", "search_length").filter(pk=case_id).first()
            if case is not None:
                case.search_length = search_length_of(case.title, case.query)
                Case.objects.filter(pk=case.pk).update(search_length=case.search_length)
                case_terms_index(case)
                count += 1
        if on_progress:
            on_progress(1)
    # The per-case moves keep document frequencies exact; the recount also repairs any drift.
    case_term_stats_rebuild()
    case_terms_refresh_impacts()
    return count


def vector_column_resize(*, table: str, index: str, dimensions: int) -> None:
    """PostgreSQL: make `table.embedding` a `vector(dimensions)` column, emptied, without its index.

    The old vectors cannot be converted (another model's space), so they are dropped; until the
    rows are re-embedded, vector search finds nothing and BM25 carries hybrid search.
    """
    if connection.vendor != "postgresql":
        return  # SQLite stores float32 bytes of any length
    with connection.cursor() as cursor:
        # ALTER TABLE refuses a table with deferred foreign-key checks pending in the transaction
        # (rows written earlier in it): run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP INDEX IF EXISTS {index}")
        cursor.execute(f"ALTER TABLE {table} ALTER COLUMN embedding TYPE vector({int(dimensions)}) USING NULL")


def vector_index_create(*, table: str, index: str) -> None:
    """PostgreSQL: the HNSW index the vector search uses (the parameters of the initial migration)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {index} ON {table} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
