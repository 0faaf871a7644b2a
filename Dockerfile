# datasync-local: the DataSync API server with its SQLite store and embedded agent.
#   docker build -t datasync-local .
#   docker run -p 8080:8080 -v dsl-state:/var/lib/datasync-local -v /srv/data:/srv/datasync datasync-local
# The first start generates an operator key pair, stores it in the state volume and prints it once
# (docker logs); set DATASYNC_LOCAL_ACCESS_KEY_ID / DATASYNC_LOCAL_SECRET_ACCESS_KEY to choose one.
# BASE: where no registry is reachable, a local stand-in (deploy/container-base.sh, make
# container-base) built from Debian bookworm; tests/cli/test_container_image.py builds with it.
ARG BASE=python:3.11-slim
FROM ${BASE}

# The package only (the wheel ships engine, contract, api, agents, cli; no benchmarks, no dev
# tools). tests/cli/test_container.py builds the wheel from exactly these COPYs and runs it.
COPY pyproject.toml README.md LICENSE /src/
COPY engine /src/engine
COPY contract /src/contract
COPY api /src/api
COPY agents /src/agents
COPY cli /src/cli
RUN pip install --no-cache-dir --disable-pip-version-check /src && rm -rf /src

# A non-root user owns the state directory and the served root; files it writes are its own.
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/datasync-local datasync \
    && mkdir -p /srv/datasync && chown datasync: /srv/datasync
USER datasync
WORKDIR /var/lib/datasync-local
VOLUME ["/var/lib/datasync-local", "/srv/datasync"]
EXPOSE 8080

# Liveness: GET /health answers 200 while the server serves (GET /ready also checks the store and
# the embedded agent; compose's serve has none, so liveness is the right probe for both setups).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import http.client,sys; c=http.client.HTTPConnection('127.0.0.1',8080,timeout=4); c.request('GET','/health'); sys.exit(c.getresponse().status!=200)"]

ENTRYPOINT ["datasync-local"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/var/lib/datasync-local", "--root", "/srv/datasync"]
