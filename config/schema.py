"""OpenAPI generation tweaks: unique component names for per-view nested serializers, and the
error answers every authenticated operation can give, documented once."""
from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import AllowAny

from core.api_errors import ErrorSerializer

# 400 bad input, 401 no or bad key, 403 missing permission, 404 an id (in the path or the body)
# that does not exist, 429 over the tier's rate limit.
_ALWAYS = ("400", "401", "403", "404", "429")


class CaseloopAutoSchema(AutoSchema):
    def _get_serializer_name(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> str:
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        qualname = type(serializer).__qualname__
        if "." in qualname and "<locals>" not in qualname:
            # Views nest `InputSerializer`/`OutputSerializer`; prefix the view so names stay unique.
            owner = qualname.rsplit(".", 1)[0].replace(".", "")
            if not name.startswith(owner):
                name = f"{owner}{name}"
        return name

    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        if direction != "response" or any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            return responses
        for code in _ALWAYS:
            responses.setdefault(code, self._get_response_for_code(ErrorSerializer, code, direction=direction))
        return responses
