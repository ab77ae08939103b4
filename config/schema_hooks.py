"""drf-spectacular hooks: keep the published schema free of alias routes."""
from __future__ import annotations

from typing import Any


def drop_slash_aliases(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list:
    """Drop a route that only repeats another with a trailing slash added (a tolerance for
    clients, not a second operation), so every operationId stays unique."""
    paths = {path for path, *_ in endpoints}
    return [
        endpoint
        for endpoint in endpoints
        if not (endpoint[0].endswith("/") and endpoint[0].rstrip("/") in paths)
    ]
