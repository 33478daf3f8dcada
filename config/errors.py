"""Domain errors that services raise and the API turns into 4xx/5xx responses with a readable message."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A request that cannot be carried out as asked; the message is shown to the person who asked."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra or {}


class NotFoundError(ApplicationError):
    status_code = 404
    code = "not_found"


class PermissionDeniedError(ApplicationError):
    status_code = 403
    code = "permission_denied"


class ConflictError(ApplicationError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(ApplicationError):
    status_code = 413
    code = "too_large"


class UnsupportedMediaTypeError(ApplicationError):
    status_code = 415
    code = "unsupported_media_type"


class NotAcceptableError(ApplicationError):
    status_code = 406
    code = "not_acceptable"


class UpstreamUnavailableError(ApplicationError):
    """The upstream PACS refused the connection or answered with a server error."""

    status_code = 502
    code = "upstream_unavailable"


class UpstreamTimeoutError(ApplicationError):
    status_code = 504
    code = "upstream_timeout"
