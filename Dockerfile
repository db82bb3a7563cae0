# syntax=docker/dockerfile:1
# breakglass: the Slack bot. Build: docker build -t breakglass .
# HTTP mode:   docker run -p 3000:3000 -v /etc/breakglass:/etc/breakglass:ro \
#                -e SLACK_BOT_TOKEN -e SLACK_SIGNING_SECRET breakglass
# Socket Mode: docker run -v /etc/breakglass:/etc/breakglass:ro -e SLACK_BOT_TOKEN -e SLACK_APP_TOKEN \
#                breakglass --socket-mode            (port 3000 then serves only /healthz, /readyz, /metrics)
# Schema:      docker run --entrypoint breakglass -v /etc/breakglass:/etc/breakglass:ro breakglass db upgrade
# Compose example with PostgreSQL and Vault: docs/operations.md.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/breakglass
COPY pyproject.toml README.md ./
# Every package listed in pyproject.toml [tool.setuptools] (tests/test_ops.py checks the two lists agree).
COPY core core
COPY service service
COPY approvals approvals
COPY providers providers
COPY credentials credentials
COPY store store
COPY probes probes
COPY bot bot
COPY cli cli
COPY sandbox sandbox
COPY bootstrap bootstrap
COPY config config
COPY migrations migrations
# Wheels only (no compiler in either stage); no bytecode or caches in the copied tree.
RUN /opt/breakglass/bin/pip install --no-cache-dir --no-compile --only-binary=:all: . \
    && find /opt/breakglass -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="breakglass" \
      org.opencontainers.image.description="Emergency DNS changes with pre-agreed approvals and verification" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/breakglass/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BREAKGLASS_CONFIG=/etc/breakglass/breakglass.toml
RUN groupadd --system --gid 10001 breakglass \
    && useradd --system --uid 10001 --gid breakglass --home-dir /var/lib/breakglass --create-home breakglass
COPY --from=build /opt/breakglass /opt/breakglass
# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/breakglass
EXPOSE 3000
# Liveness only: /readyz also asks Vault and the database, and a restart would not fix those.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["breakglass", "serve", "--host", "0.0.0.0", "--port", "3000"]
CMD []
