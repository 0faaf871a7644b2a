"""The errors of the Deadline Cloud routes, in the rest-json shape botocore parses.

botocore's rest-json parser takes the error code from the `x-amzn-ErrorType` header (falling back
to the body's `code`/`__type`) and the message from the body's `message`; every other member of
the modeled error structure (`reason`, `fieldList`, `resourceId`, `resourceType`) it copies from the
body into the exception's response. So each error here renders exactly the members its shape in
botocore's `deadline` model declares, and `error_response` sets the header. The names are the
model's:

    DeadlineError                                   HTTP
    ├── ValidationException           reason, fieldList   400
    ├── AccessDeniedException                              403
    ├── ResourceNotFoundException     resourceId, resourceType   404
    ├── ConflictException             reason, resourceId, resourceType   409
    ├── ThrottlingException                                429
    └── InternalServerErrorException                       500

`as_deadline_error` maps what the shared request edge raises (api.edge, api.auth) into these, so a
Deadline client never sees a DataSync-shaped error, a bare 500 or a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.responses import Response

from api.errors import (
    AuthError,
    ProtocolError,
    RequestEntityTooLargeException,
    RequestTimeoutException,
)

__all__ = [
    "AccessDeniedException",
    "ConflictException",
    "DeadlineError",
    "FieldProblem",
    "InternalServerErrorException",
    "ResourceNotFoundException",
    "ThrottlingException",
    "ValidationException",
    "as_deadline_error",
    "error_response",
]

log = logging.getLogger("datasync_local.api.deadline")


class DeadlineError(Exception):
    """Base: `code` is the model's error shape name (the `x-amzn-ErrorType`), `status` its
    `httpStatusCode`."""

    code: ClassVar[str] = "InternalServerErrorException"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def members(self) -> dict[str, Any]:
        """The error shape's members beyond `message` (overridden by errors that have some)."""
        return {}

    def to_body(self) -> dict[str, Any]:
        return {"message": self.message, **self.members()}


@dataclass(frozen=True)
class FieldProblem:
    """One entry of a ValidationException's `fieldList` (ValidationExceptionField)."""

    name: str
    message: str


class ValidationException(DeadlineError):
    code = "ValidationException"
    status = 400

    def __init__(
        self,
        message: str,
        reason: str = "FIELD_VALIDATION_FAILED",
        fields: Sequence[FieldProblem] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason  # ValidationExceptionReason
        self.fields = tuple(fields)

    def members(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason}
        if self.fields:
            out["fieldList"] = [{"name": f.name, "message": f.message} for f in self.fields]
        return out


class AccessDeniedException(DeadlineError):
    code = "AccessDeniedException"
    status = 403


class ResourceNotFoundException(DeadlineError):
    code = "ResourceNotFoundException"
    status = 404

    def __init__(self, message: str, resource_id: str, resource_type: str) -> None:
        super().__init__(message)
        self.resource_id, self.resource_type = resource_id, resource_type

    def members(self) -> dict[str, Any]:
        return {"resourceId": self.resource_id, "resourceType": self.resource_type}


class ConflictException(DeadlineError):
    code = "ConflictException"
    status = 409

    def __init__(self, message: str, reason: str, resource_id: str, resource_type: str) -> None:
        super().__init__(message)
        self.reason = reason  # ConflictExceptionReason
        self.resource_id, self.resource_type = resource_id, resource_type

    def members(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "resourceId": self.resource_id,
            "resourceType": self.resource_type,
        }


class ThrottlingException(DeadlineError):
    code = "ThrottlingException"
    status = 429


class InternalServerErrorException(DeadlineError):
    code = "InternalServerErrorException"
    status = 500


def as_deadline_error(exc: Exception, request_id: str) -> DeadlineError:
    """Any exception raised while serving a Deadline request, as the Deadline error to answer.

    A failed or missing signature is AccessDeniedException (Deadline's model has no
    UnrecognizedClient/InvalidSignature errors, and 403 is what AWS answers); an unreadable or
    oversized body is a ValidationException CANNOT_PARSE; anything unexpected is logged and
    answered InternalServerErrorException without a traceback.
    """
    if isinstance(exc, DeadlineError):
        return exc
    if isinstance(exc, AuthError):
        return AccessDeniedException(exc.message)
    if isinstance(exc, RequestEntityTooLargeException | RequestTimeoutException | ProtocolError):
        return ValidationException(exc.message, "CANNOT_PARSE")
    log.exception("unexpected error handling Deadline request %s", request_id)
    return InternalServerErrorException(f"An internal error occurred (request id {request_id}).")


def error_response(exc: Exception, request_id: str) -> Response:
    error = as_deadline_error(exc, request_id)
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": error.code}
    if isinstance(exc, RequestTimeoutException):
        headers["connection"] = "close"  # the rest of that body is not awaited
    return Response(
        json.dumps(error.to_body(), separators=(",", ":")).encode(),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )
