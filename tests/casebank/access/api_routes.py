"""Every /api/ route of the URL configuration with the view behind it (routes added later are
walked too): what the scope tests go over."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

GOOD_IDS = {"uuid": "00000000-0000-4000-8000-000000000000", "int": "987654"}
CONVERTER = re.compile(r"<(?:(\w+):)?\w+>")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Route:
    route: str
    callback: Any

    @property
    def view_class(self) -> Any:
        """The DRF view class, or None for a plain Django view."""
        return getattr(self.callback, "cls", None)

    @property
    def path(self) -> str:
        return "/" + CONVERTER.sub(lambda match: GOOD_IDS[match.group(1) or "str"], self.route)

    def methods(self) -> list[str]:
        view = self.view_class
        if view is None:
            return []
        return [method for method in METHODS if hasattr(view, method.lower())]


def api_routes(patterns: Any = None, prefix: str = "") -> list[Route]:
    found: dict[str, Route] = {}
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            for item in api_routes(pattern.url_patterns, route):
                found.setdefault(item.route, item)
        elif isinstance(pattern, URLPattern) and route.startswith("api/"):
            found.setdefault(route, Route(route, pattern.callback))
    return sorted(found.values(), key=lambda item: item.route)
