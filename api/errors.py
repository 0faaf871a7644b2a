"""Every error the control plane answers with, and how each one goes on the wire.

    ApiError                                  (type name = AWS error code, HTTP status)
    ├── InvalidRequestException          400  DataSync's modeled client error (validation, state)
    ├── InternalException                500  DataSync's modeled server fault (never a traceback)
    ├── ProtocolError                    4xx  the request could not even be read
    │   ├── UnknownOperationException    400  missing or unknown X-Amz-Target / route
    │   ├── SerializationException       400  body is not a JSON object
    │   ├── RequestEntityTooLargeException 413
    │   └── RequestTimeoutException      408  the body did not arrive in time
    ├── AuthError                        403  SigV4: UnrecognizedClientException,
    │                                         InvalidSignatureException, AccessDeniedException
    └── JobsError                             IoT Jobs data plane (rest-json) errors
        ├── ResourceNotFoundException    404
        ├── InvalidStateTransitionException 409
        ├── VersionConflictException     409  code "VersionMismatch"; body carries executionState
        └── TerminalStateException       410

`to_body()` is the single place an error becomes JSON: the JSON 1.1 shape botocore parses for
DataSync (`__type`, `message`, `errorCode`, `datasyncErrorCode`) and, for rest-json, the same
body plus the `x-amzn-ErrorType` header (see `api.app`).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccessDeniedException",
    "ApiError",
    "AuthError",
    "InternalException",
    "InvalidRequestException",
    "InvalidSignatureException",
    "InvalidStateTransitionException",
    "JobsError",
    "ProtocolError",
    "RequestEntityTooLargeException",
    "RequestTimeoutException",
    "ResourceNotFoundException",
    "SerializationException",
    "TerminalStateException",
    "UnknownOperationException",
    "UnrecognizedClientException",
    "VersionConflictException",
]


class ApiError(Exception):
    """Base: `code` is the AWS error code (the `__type`), `status` the HTTP status."""

    code: ClassVar[str] = "InternalException"
    status: ClassVar[int] = 500

    def __init__(self, message: str, datasync_error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.datasync_error_code = datasync_error_code

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"__type": self.code, "message": self.message}
        body["errorCode"] = self.code
        if self.datasync_error_code is not None:
            body["datasyncErrorCode"] = self.datasync_error_code
        return body


class InvalidRequestException(ApiError):
    code = "InvalidRequestException"
    status = 400


class InternalException(ApiError):
    code = "InternalException"
    status = 500


class ProtocolError(ApiError):
    code = "InvalidRequestException"
    status = 400


class UnknownOperationException(ProtocolError):
    code = "UnknownOperationException"


class SerializationException(ProtocolError):
    code = "SerializationException"


class RequestEntityTooLargeException(ProtocolError):
    code = "RequestEntityTooLargeException"
    status = 413


class RequestTimeoutException(ProtocolError):
    code = "RequestTimeoutException"
    status = 408


class AuthError(ApiError):
    status = 403


class UnrecognizedClientException(AuthError):
    code = "UnrecognizedClientException"


class InvalidSignatureException(AuthError):
    code = "InvalidSignatureException"


class AccessDeniedException(AuthError):
    code = "AccessDeniedException"


class JobsError(ApiError):
    """Errors of the IoT Jobs data plane (agents' protocol)."""


class ResourceNotFoundException(JobsError):
    code = "ResourceNotFoundException"
    status = 404


class InvalidStateTransitionException(JobsError):
    code = "InvalidStateTransitionException"
    status = 409

    def __init__(self, message: str, execution_state: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.execution_state = execution_state

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        if self.execution_state is not None:
            body["executionState"] = self.execution_state
        return body


class VersionConflictException(InvalidStateTransitionException):
    """A stale `expectedVersion`: IoT's VersionMismatch, with the current state in the body."""

    code = "VersionMismatch"
    status = 409


class TerminalStateException(JobsError):
    code = "TerminalStateException"
    status = 410
