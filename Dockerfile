# chater-gpt production image: the service and exactly requirements.txt.
# The embedded local stack (requirements-embedded.txt: broker, local LLM) is never installed.
# Build: docker build -t chater-gpt:0.1.0 .
# Pin the base by digest in your registry mirror for fully reproducible builds
# (--build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: a virtualenv with the pinned runtime dependencies --------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY requirements.txt /tmp/requirements.txt
# Wheels only: every pinned dependency ships one, so no compiler is needed anywhere.
# pip and setuptools are removed from the venv: the final image installs nothing.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# --- final: the slim runtime, non-root, read-only friendly --------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="chater-gpt" \
      org.opencontainers.image.description="Kafka gpt-send -> LLM -> gpt-response"

# No .pyc writes at run time (the root filesystem is read-only in Kubernetes); logs unbuffered.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    METRICS_PORT=8000

# A fixed numeric UID/GID so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 chater \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin chater

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
# Application files stay owned by root: the service user can read, never modify them.
COPY main.py ./
COPY chater_gpt/ ./chater_gpt/
COPY schemas/ ./schemas/
# Byte-compile once at build time, since the running container cannot write .pyc files.
RUN python -m compileall -q /app/main.py /app/chater_gpt

USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
# slim has no curl: probe /livez with the standard library (a non-2xx answer raises, exit 1).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('METRICS_PORT', '8000') + '/livez', timeout=3)"]

CMD ["python", "main.py", "run"]
