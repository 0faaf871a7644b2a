"""The contract between the control plane (`api`) and its agents (`agents`).

It sits above `engine` and below both: `api` and `agents` import it instead of retyping what
they must agree on.

    contract.jobs     the jobs protocol: statusDetails keys, limits, the job document type, the
                      encodings of counters, results and control wishes, the BytesPerSecond rule
    contract.model    botocore's service models (DataSync, IoT Jobs data plane), read directly
    contract.workitems  work items (issue 12): item job ids, scopes, plan uploads, the journal,
                      the suspend wish and its acknowledgement
    contract.paths    which host names mean "this machine", and the roots rule for paths

`engine` keeps its own model loader (its Options are read from the same model file); nothing
here imports `api` or `agents`.
"""

from typing import Any

__all__ = ["Doc"]

# A JSON object on the wire (a request body, a response body before rendering). Named once
# here rather than in every module that handles one.
Doc = dict[str, Any]
