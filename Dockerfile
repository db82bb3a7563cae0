# syntax=docker/dockerfile:1
# breakglass: the Slack bot (HTTP mode). Build: docker build -t breakglass .
# Run:   docker run -p 3000:3000 -v /etc/breakglass:/etc/breakglass:ro \
#          -e SLACK_BOT_TOKEN -e SLACK_SIGNING_SECRET breakglass

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/breakglass
COPY pyproject.toml README.md ./
COPY core core
COPY service service
COPY approvals approvals
COPY providers providers
COPY credentials credentials
COPY store store
COPY bot bot
COPY cli cli
COPY sandbox sandbox
COPY bootstrap bootstrap
COPY config config
COPY migrations migrations
RUN /opt/breakglass/bin/pip install --no-compile . \
    && find /opt/breakglass -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="breakglass" \
      org.opencontainers.image.description="Emergency DNS changes with pre-agreed approvals and verification"
ENV PATH=/opt/breakglass/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BREAKGLASS_CONFIG=/etc/breakglass/breakglass.toml
RUN groupadd --system --gid 10001 breakglass \
    && useradd --system --uid 10001 --gid breakglass --home-dir /var/lib/breakglass --create-home breakglass
COPY --from=build /opt/breakglass /opt/breakglass
USER breakglass:breakglass
WORKDIR /var/lib/breakglass
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["breakglass", "serve", "--host", "0.0.0.0", "--port", "3000"]
