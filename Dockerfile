# mlp-serve: the model server with the bundled model repository baked in. Two images:
#
#   docker build --target cpu -t mlp-serve:cpu .    # ONNX Runtime on the CPU, no torch (default)
#   docker build --target gpu -t mlp-serve:gpu .    # + torch: TorchScript on CUDA (or the CPU)
#   docker run --rm -p 8000:8000 -p 8001:8001 mlp-serve:cpu
#   docker run --rm --gpus all -p 8000:8000 -p 8001:8001 mlp-serve:gpu   # SERVE_DEVICE=auto: CUDA
#
# The cpu image serves every version that has model.onnx; versions with only model.pt need the
# gpu image (their reason in the model status says so). PyPI's torch wheels carry CUDA (several
# GB); the gpu image built with --build-arg TORCH_INDEX_URL=<PyTorch's CPU index> is torch on
# the CPU only.
ARG PYTHON_VERSION=3.11

# ---- builder: a virtual environment with the core dependencies (no torch) ----------------------
FROM python:${PYTHON_VERSION}-slim AS builder

# Package indexes: PyPI unless overridden (a company mirror).
ARG PIP_INDEX_URL=https://pypi.org/simple

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

WORKDIR /src
# Dependencies first, read from pyproject.toml ([project] dependencies for every image, the
# [torch] extra for the gpu one), so this layer is rebuilt only when they change.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; \
project = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
open('/tmp/core.txt', 'w').write('\n'.join(project['dependencies'])); \
open('/tmp/torch.txt', 'w').write('\n'.join(project['optional-dependencies']['torch']))" \
 && pip install --index-url "$PIP_INDEX_URL" -r /tmp/core.txt

# Then the project itself (package discovery finds modelrepo*, service* and training*; pip
# install ., no extras).
COPY modelrepo/ modelrepo/
COPY service/ service/
COPY training/ training/
RUN pip install --index-url "$PIP_INDEX_URL" --no-deps . \
 && pip check

# ---- gpu-builder: the same environment plus torch, from its own index --------------------------
FROM builder AS gpu-builder
ARG TORCH_INDEX_URL=https://pypi.org/simple
RUN pip install --index-url "$TORCH_INDEX_URL" -r /tmp/torch.txt \
 && pip check

# ---- runtime: what both images share ------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
    --shell /usr/sbin/nologin app

# The bundled repository, owned by root and read-only to the server. Serve another one by
# mounting it and pointing SERVE_MODELS at it: -v /srv/models:/models:ro -e SERVE_MODELS=/models
COPY models/ /app/models/

# The flags of `python -m service` win over SERVE_*, so the command passes none: every setting
# (SERVE_HOST, SERVE_PORT, SERVE_MODELS, SERVE_DEVICE, SERVE_RUNTIME, SERVE_WORKERS, ...) stays
# overridable.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVE_HOST=0.0.0.0 \
    SERVE_PORT=8000 \
    SERVE_GRPC_PORT=8001 \
    SERVE_MODELS=/app/models \
    SERVE_DEVICE=auto \
    SERVE_RUNTIME=auto

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

# ---- gpu: TorchScript on CUDA (and every runtime) -----------------------------------------------
FROM runtime AS gpu
COPY --from=gpu-builder /opt/venv /opt/venv

# ---- cpu (the default target): ONNX Runtime, no torch ------------------------------------------
FROM runtime AS cpu
COPY --from=builder /opt/venv /opt/venv
