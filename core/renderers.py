"""orjson for JSON responses where size matters (the log API: 1,000 ids per ingestion answer,
up to 1,000 logs per page). DRF's renderer goes through the json module and calls
`str()` in Python for every UUID; orjson writes UUIDs, datetimes and str subclasses
(DRF's ErrorDetail) in C, in DRF's format. What orjson does not know goes to DRF's encoder.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_fallback = JSONEncoder().default


class OrjsonRenderer(JSONRenderer):
    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None) -> bytes:
        if data is None:
            return b""
        if self.get_indent(accepted_media_type or "", renderer_context or {}):
            return super().render(data, accepted_media_type, renderer_context)  # indented on request
        # OPT_UTC_Z: "...Z" for UTC like DRF's encoder; NaN would be null (DRF's strict JSON refuses it).
        return orjson.dumps(data, default=_fallback, option=orjson.OPT_UTC_Z)
