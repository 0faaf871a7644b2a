"""The control plane's typed domain: one module per DataSync resource.

    api/domain/enums.py       the DataSync enums the resources use, built from botocore's model
    api/domain/agent.py       Agent (no secret: credentials are `api.credentials`' alone)
    api/domain/location.py    Location (NFS or SMB)
    api/domain/task.py        Task
    api/domain/execution.py   Execution: its state machine, the IoT job it is offered as (JobState)
                              and the job document derived from it
    api/domain/repository.py  typed reads and writes of them over the store's rows

Each type is frozen: a change is a new value (`dataclasses.replace`) written back whole. Each
has `from_row` / `to_row` (the store boundary: the stored JSON documents keep the format of
earlier releases, so data dirs need no migration) and `to_wire` (the DataSync response shape,
built from the fields alone). No type holds a secret: agents' keys are `api.credentials`'.
"""
