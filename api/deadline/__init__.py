"""Work-item control through the Deadline Cloud REST-JSON API (issue 12), on the DataSync port.

    routes.py      the one route under /2023-10-12, SigV4 service `deadline`, the check order
    wire.py        operations, parameters and validation read from botocore's `deadline` model
    operations.py  the thirteen operations offered (List/Get Farm, Queue, Job, Step, Task;
                   UpdateJob/Step/Task) over the store and api.workitems
    resources.py   the mapping: farm = this control plane, queue = DataSync task, job =
                   execution, steps Prepare/Transfer/Remove, task = work item
    ids.py         stable IDs (hashes of ARNs) and the reverse lookup table
    tokens.py      clientToken idempotency, persisted
    pages.py       nextToken/maxResults
    errors.py      Deadline's error shapes

Tables of its own (migration 0007): `deadline_ids`, `deadline_client_tokens`.
"""

from __future__ import annotations

from api.deadline.routes import PREFIX, deadline_routes

__all__ = ["PREFIX", "deadline_routes"]
