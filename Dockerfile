# mlp-serve: the model server with the bundled model repository baked in.
#
#   docker build -t mlp-serve .
#   docker run --rm -p 8000:8000 mlp-serve                  # CPU
#   docker run --rm --gpus all -p 8000:8000 mlp-serve       # GPU (SERVE_DEVICE=auto picks CUDA)
#
# PyPI's torch wheels carry CUDA (several GB). For a CPU-only image, far smaller:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t mlp-serve:cpu .
ARG PYTHON_VERSION=3.11

# ---- builder: a virtual environment with the service's runtime dependencies only ----------------
FROM python:${PYTHON_VERSION}-slim AS builder

# Package indexes: PyPI unless overridden (a company mirror, the PyTorch CPU index for torch).
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG TORCH_INDEX_URL=https://pypi.org/simple

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

WORKDIR /src
# Dependencies first, read from pyproject.toml's [project] dependencies (no train/dev extras), so
# this layer is rebuilt only when they change. torch comes from its own index.
COPY pyproject.toml README.md ./
RUN python -c "import re, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
name = lambda d: re.match(r'[A-Za-z0-9._-]+', d).group().lower(); \
open('/tmp/torch.txt', 'w').write('\n'.join(d for d in deps if name(d) == 'torch')); \
open('/tmp/runtime.txt', 'w').write('\n'.join(d for d in deps if name(d) != 'torch'))" \
 && pip install --index-url "$TORCH_INDEX_URL" -r /tmp/torch.txt \
 && pip install --index-url "$PIP_INDEX_URL" -r /tmp/runtime.txt

# Then the project itself (package discovery finds modelrepo*, service* and training*; pip
# install ., no extras).
COPY modelrepo/ modelrepo/
COPY service/ service/
COPY training/ training/
RUN pip install --index-url "$PIP_INDEX_URL" --no-deps . \
 && pip check

# ---- runtime ------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
    --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
# The bundled repository, owned by root and read-only to the server. Serve another one by
# mounting it and pointing SERVE_MODELS at it: -v /srv/models:/models:ro -e SERVE_MODELS=/models
COPY models/ /app/models/

# The flags of `python -m service` win over SERVE_*, so the command passes none: every setting
# (SERVE_HOST, SERVE_PORT, SERVE_MODELS, SERVE_DEVICE, SERVE_WORKERS, ...) stays overridable.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVE_HOST=0.0.0.0 \
    SERVE_PORT=8000 \
    SERVE_GRPC_PORT=8001 \
    SERVE_MODELS=/app/models \
    SERVE_DEVICE=auto

WORKDIR /app
USER 10001:10001
EXPOSE 8000 8001

# No curl in the slim image: the standard library asks readiness (2xx once every model is warm;
# 503 while loading and while draining after SIGTERM).
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SERVE_PORT', '8000') + '/v2/health/ready', timeout=2)"]

# SIGTERM starts the drain: readiness answers 503 for SERVE_DRAIN_DELAY_S, then in-flight
# requests get up to SERVE_DRAIN_TIMEOUT_S.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service"]
