"""The shape of every API error, for the OpenAPI schema (config.schema documents it on every
operation; a view names it for the answers only it gives, e.g. 409)."""
from __future__ import annotations

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """Every 4xx: `config.exception_handler` renders this shape."""

    detail = serializers.CharField()
    # SerializerMetaclass moves declared fields off the class, so this does not shadow
    # Serializer.errors; the stub cannot know that.
    errors = serializers.DictField(  # type: ignore[assignment]
        help_text="Field name -> messages; empty when not about a field."
    )
