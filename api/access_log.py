"""`serve --access-log`: one JSON line per answered API request, written where serve's own
lines go (stderr, logger ``datasync_local.access``).

Written by `api.edge.endpoint`, the one place every protocol's request passes (DataSync, CloudWatch
Logs, Deadline, the jobs protocol, activation), so a line names what the metrics count: the
protocol, the model's operation name and the error code (``OK`` for a 200). The caller is named
by the access key id of its SigV4 credential (never the signature); the status page, /health,
/ready and /metrics are not API requests and are not logged. Off by default: a busy fleet makes
hundreds of calls a second.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from starlette.requests import Request

from api.edge import Served

__all__ = ["AccessLog"]

_CREDENTIAL = re.compile(r"Credential=([A-Za-z0-9]{1,128})/")


class AccessLog:
    """The access log's writer; an `api.edge.Access`."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("datasync_local.access")

    def __call__(self, request: Request, served: Served) -> None:
        credential = _CREDENTIAL.search(request.headers.get("authorization", ""))
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "requestId": served.request_id,
            "client": request.client.host if request.client else None,
            "method": request.method,
            "path": request.url.path,
            "protocol": served.protocol,
            "operation": served.operation,
            "code": served.code,
            "status": served.status,
            "ms": round(served.seconds * 1000, 3),
            "accessKeyId": credential.group(1) if credential else None,
        }
        self.logger.info(json.dumps(line, separators=(",", ":")))
