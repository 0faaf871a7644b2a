"""The agent: claims jobs over the IoT Jobs protocol, resolves locations, runs the engine.

    agent.py      the claim / run / report loop
    client.py     the jobs client (httpx, SigV4 by botocore's signer)
    locations.py  a job's location → a directory inside the agent's roots

`agents` imports `engine`, never `api`.
"""
