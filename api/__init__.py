"""The control plane: the DataSync JSON 1.1 API, its store, and the jobs endpoint for agents.

    app.py         ASGI routes, body limit, SigV4, the one place errors meet the wire
    auth.py        SigV4 verification with botocore's signer; operator credentials
    validation.py  requests checked against botocore's model shapes
    edge.py        the request edge of every route: body limit and timeout, strict JSON, errors
    responses.py   X-Amz-Target → validate → handler → output rendering (thin)
    dispatch.py    the table from DataSync operation to handler
    models.py      Backend: the composition of the resource handlers
    domain/        the typed resources: Agent, Location, Task, Execution (its state machine and
                   the job document derived from it); from_row/to_row, to_wire
    resources/     one module per resource: agents, locations, tasks, executions, tags (+ base)
    credentials.py activated agents' credentials, in the store only
    scheduler.py   where an execution is scheduled: agent choice, admission, the one claim path,
                   leases and step timers, takeover, nobody-online, recovery after a restart
    config.py      ServerConfig (region, account, agent and unclaimed timeouts)
    cas.py         compare-and-swap on one execution (`update_execution`: the typed one)
    jobs.py        the IoT Jobs data plane the agents speak
    listing.py     pagination (opaque NextToken) and List filters
    locations.py   NFS/SMB locations as local directories inside an agent's roots
    store.py       the single source of truth: SQLite or PostgreSQL through SQLAlchemy Core
    errors.py      every error, with the hierarchy drawn

`api` imports `contract` (the jobs protocol, botocore models, path rules), `engine` only for
Options/FilterRules validation, and never imports `agents`.
"""
