"""Which handler serves which DataSync operation: one explicit table, no name mangling.

An operation of botocore's model that is not here is answered `UnsupportedOperation` (or
`UnsupportedLocationType` for the location kinds that need a cloud service).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from api.models import Backend
from contract import Doc

__all__ = ["Handler", "handlers"]

Handler = Callable[[Doc], Mapping[str, Any]]


def handlers(backend: Backend) -> dict[str, Handler]:
    """Operation name → the bound handler of `backend` that serves it."""
    return {
        # agents (api.resources.agents)
        "CreateAgent": backend.create_agent,
        "DescribeAgent": backend.describe_agent,
        "ListAgents": backend.list_agents,
        "UpdateAgent": backend.update_agent,
        "DeleteAgent": backend.delete_agent,
        # locations (api.resources.locations)
        "CreateLocationNfs": backend.create_location_nfs,
        "CreateLocationSmb": backend.create_location_smb,
        "DescribeLocationNfs": backend.describe_location_nfs,
        "DescribeLocationSmb": backend.describe_location_smb,
        "UpdateLocationNfs": backend.update_location_nfs,
        "UpdateLocationSmb": backend.update_location_smb,
        "ListLocations": backend.list_locations,
        "DeleteLocation": backend.delete_location,
        # tasks (api.resources.tasks)
        "CreateTask": backend.create_task,
        "DescribeTask": backend.describe_task,
        "UpdateTask": backend.update_task,
        "DeleteTask": backend.delete_task,
        "ListTasks": backend.list_tasks,
        # executions (api.resources.executions)
        "StartTaskExecution": backend.start_task_execution,
        "DescribeTaskExecution": backend.describe_task_execution,
        "ListTaskExecutions": backend.list_task_executions,
        "CancelTaskExecution": backend.cancel_task_execution,
        "UpdateTaskExecution": backend.update_task_execution,
        # tags (api.resources.tags)
        "TagResource": backend.tag_resource,
        "UntagResource": backend.untag_resource,
        "ListTagsForResource": backend.list_tags_for_resource,
    }
