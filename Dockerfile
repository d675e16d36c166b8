# cmdb-sync's container image: the package and its locked dependencies on a slim Python, run as a
# user without privileges. Build from the repository root: docker build -t cmdb-sync .
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE requirements.lock alembic.ini ./
COPY cmdb_sync ./cmdb_sync
COPY migrations ./migrations
# the exact versions of requirements.lock, in a venv that the next stage copies whole
RUN python -m venv /opt/cmdb-sync \
    && /opt/cmdb-sync/bin/pip install -c requirements.lock .

FROM python:3.11-slim

LABEL org.opencontainers.image.title="cmdb-sync" \
      org.opencontainers.image.description="System of record for Alibaba Cloud Yunxiao AppStack webhooks" \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 cmdb \
    && useradd --system --uid 10001 --gid cmdb --home-dir /var/lib/cmdb-sync --create-home cmdb
COPY --from=build /opt/cmdb-sync /opt/cmdb-sync

ENV PATH=/opt/cmdb-sync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CMDB_SYNC_LOG_FORMAT=json
# The embedded default (a SQLite file) lives in the volume; set CMDB_SYNC_DATABASE_URL for PostgreSQL.
WORKDIR /var/lib/cmdb-sync
VOLUME ["/var/lib/cmdb-sync"]
USER 10001:10001
EXPOSE 8000

# ready = the database answers and its schema is at the newest migration (slim has no curl)
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]

ENTRYPOINT ["cmdb-sync"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
