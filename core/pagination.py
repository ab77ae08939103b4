"""The page-numbered lists of the API (cases, suggestions, experiments): one page size and cap."""
from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class NumberedPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
