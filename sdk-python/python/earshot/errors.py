"""Exceptions raised by the earshot client.

Every failed call raises an :class:`EarshotError` subclass chosen by its gRPC code; ``.code`` keeps
the code's snake_case name (``"invalid_argument"``), ``.message`` the server's message.
Local file problems (a missing file to upload) raise the usual ``OSError`` subclasses instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Tuple

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "DeadlineExceededError",
    "EarshotError",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "UnavailableError",
]


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field, named by its path (``conversations[2].transcript[0].role``)."""

    field: str
    description: str


class EarshotError(Exception):
    """A call failed; ``code`` is the gRPC code's snake_case name."""

    code: str
    message: str

    def __init__(self, message: str, code: str = "unknown", violations: Iterable[FieldViolation] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.violations: List[FieldViolation] = list(violations)

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        for violation in self.violations:
            text += f"; {violation.field}: {violation.description}"
        return text


class InvalidArgumentError(EarshotError, ValueError):
    """The request was refused as invalid; ``violations`` names every bad field. Nothing was stored."""


class AuthenticationError(EarshotError):
    """The API key is missing, unknown or revoked."""


class PermissionDeniedError(EarshotError):
    """The API key lacks the scope, or is restricted to another project."""


class NotFoundError(EarshotError):
    """No such resource in the key's organization."""


class AlreadyExistsError(EarshotError):
    """The resource exists already."""


class RateLimitedError(EarshotError):
    """Too many requests or too much data; retry later."""


class UnavailableError(EarshotError):
    """The server could not be reached or is shutting down; safe to retry."""


class DeadlineExceededError(EarshotError, TimeoutError):
    """The call, or a wait, ran past its timeout."""


_BY_CODE = {
    "invalid_argument": InvalidArgumentError,
    "unauthenticated": AuthenticationError,
    "permission_denied": PermissionDeniedError,
    "not_found": NotFoundError,
    "already_exists": AlreadyExistsError,
    "resource_exhausted": RateLimitedError,
    "unavailable": UnavailableError,
    "deadline_exceeded": DeadlineExceededError,
}


def _from_native(code: str, message: str, violations: Iterable[Tuple[str, str]]) -> EarshotError:
    """Builds the exception for a failure reported by the native module."""
    cls = _BY_CODE.get(code, EarshotError)
    return cls(message, code=code, violations=[FieldViolation(field, description) for field, description in violations])
