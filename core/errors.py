"""Domain errors raised by services; the API maps each to one HTTP status in one place."""
from __future__ import annotations


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str, *, errors: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class InvalidInput(DomainError):
    status_code = 400


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Forbidden(DomainError):
    """The caller may not do this (a permission the admin asks for too)."""

    status_code = 403


class QuotaExceeded(DomainError):
    """The caller has as much going on as its quota allows; it may try again once some ends."""

    status_code = 429
