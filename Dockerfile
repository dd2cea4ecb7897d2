# creditflow worker / API image. One image serves both roles:
#   docker run creditflow                     -> the HTTP API on 0.0.0.0:8000
#   docker run creditflow creditflow worker   -> a stream worker
# Configuration comes from the environment (config/settings.py): KAFKA_BOOTSTRAP_SERVERS,
# REDIS_URL, CREDITFLOW_ADMIN_TOKEN, CREDITFLOW_PARTITIONS, ... docker-compose.yml wires the stack.
# The API binds 0.0.0.0 here, so it refuses to start without CREDITFLOW_ADMIN_TOKEN (the dev
# default is public and only ever accepted on loopback).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Unprivileged user. Its home is the working directory: the Faust worker keeps its small,
# disposable data directory (creditflow-data/) relative to the current directory.
RUN useradd --create-home --home-dir /home/creditflow --uid 10001 --user-group \
        --shell /usr/sbin/nologin creditflow

# Install the project with its runtime dependencies only (no dev extras), from a source copy
# that is removed afterwards; .dockerignore keeps .venv, .local, caches and .git out.
COPY . /tmp/creditflow-src
RUN cd /tmp/creditflow-src \
    && pip install . \
    && cd / \
    && rm -rf /tmp/creditflow-src

USER creditflow
WORKDIR /home/creditflow

EXPOSE 8000
CMD ["creditflow", "api", "--host", "0.0.0.0"]
