"""The DataSync backend: the composition of the resource handlers in `api.resources`.

    api/resources/agents.py      agents        api/resources/tasks.py       tasks
    api/resources/locations.py   locations     api/resources/executions.py  executions
    api/resources/tags.py        tags          api/resources/base.py        what they share

Each handler takes the validated request and returns the response document; `api.dispatch`
is the table from operation name to handler, and `api.scheduler` decides where executions
run. The resources are the typed values of `api.domain` (Agent, Location, Task, Execution), and
a response is each one's `to_wire()`: built from its fields alone, so internal state (an agent's
roots, an execution's job) never reaches the wire, and secrets are in no resource at all
(`api.credentials`). `api.responses` then renders through botocore's output shape.

The execution state machine is `api.domain.execution.Execution`'s (the diagram is there). An
execution starts LAUNCHING when its agent has a free slot, else QUEUED (`api.scheduler`); its
agent claims it through the jobs protocol (`api.jobs`) and reports the phases.
"""

from __future__ import annotations

from api.config import ServerConfig
from api.resources.agents import AgentHandlers
from api.resources.executions import ExecutionHandlers
from api.resources.tags import TagHandlers

__all__ = ["Backend", "ServerConfig"]  # ServerConfig: re-exported from api.config


class Backend(AgentHandlers, ExecutionHandlers, TagHandlers):
    """The DataSync backend: the resource handlers of `api.resources` over one store. Which
    handler serves which operation is the table in `api.dispatch`."""

    # start-up ---------------------------------------------------------------------------------
    def recover(self) -> int:
        """Resolve executions a previous process left unfinished (see `api.scheduler`)."""
        return self.scheduler.recover()
