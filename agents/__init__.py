"""The agent: claims jobs over the IoT Jobs protocol, resolves locations, runs the engine.

    agent.py       the claim / run / report loop (one job at a time, or `concurrency`)
    activation.py  an on-prem agent's activation key, credentials and state directory
    client.py      the jobs client (httpx, SigV4 by botocore's signer) and the activation client
    locations.py   a job's location → a directory inside the agent's roots (with --mount maps)

`agents` imports `contract` and `engine`, never `api`; `cli.agent` (on-prem) and `cli.serve` (embedded) wire it.
"""
