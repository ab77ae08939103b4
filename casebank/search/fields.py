"""A vector column that is pgvector's `vector(n)` on PostgreSQL and float32 bytes on SQLite.

One model serves both databases: PostgreSQL searches it with an HNSW index, SQLite with
exact cosine in NumPy (see `casebank.search.selectors.vector_scores`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from django.conf import settings
from pgvector import Vector
from pgvector.django import VectorField


class EmbeddingField(VectorField):
    def db_type(self, connection: Any) -> str:
        if connection.vendor == "postgresql":
            return super().db_type(connection)
        return "blob"

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None:
            return None
        if connection.vendor == "postgresql":
            return Vector._to_db(value)
        return np.asarray(value, dtype=np.float32).tobytes()

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray, memoryview)):
            return np.frombuffer(bytes(value), dtype=np.float32)
        return Vector._from_db(value)

    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, (list, np.ndarray)):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return np.frombuffer(bytes(value), dtype=np.float32)
        return Vector._from_db(value)

    def deconstruct(self) -> Any:
        # The dimension follows the configured model (`EMBEDDING_DIMENSIONS`), set per deployment
        # and changed by `manage.py rebuild_embeddings`, not by a migration: the migration state
        # always carries the configured size, so another model's dimension never shows as a model
        # change, and a fresh database is created at that size.
        name, path, args, kwargs = super().deconstruct()
        kwargs["dimensions"] = settings.EMBEDDING_DIMENSIONS
        return name, path, args, kwargs
