"""Request bodies read strictly: a field the endpoint does not take, a number sent as text, a
non-finite number or a note that is not text is a 400 naming the field, never guessed at.

DRF by default drops unknown fields (a typo such as `{"shares": 0.5}` would do nothing and
answer 200) and coerces `"0.5"` and `true` into numbers and `12` into text.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

MAX_NAMED = 10  # unknown fields named in one answer


class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(name)[:100] for name in data if name not in self.fields)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown[:MAX_NAMED]})
        return super().to_internal_value(data)


class NumberField(serializers.FloatField):
    """A JSON number (not text, not a boolean), finite."""

    default_error_messages = {"invalid": "A finite JSON number."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, (int, float)) or not math.isfinite(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class TextField(serializers.CharField):
    """A JSON string (not a number or a boolean turned into one)."""

    default_error_messages = {"invalid": "A string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
