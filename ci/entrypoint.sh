#!/usr/bin/env bash
# The image's entrypoint: `docker run IMAGE <nox args>` runs nox sessions in /workspace,
# e.g. `docker run IMAGE -s logitsmatch` (every case for the image's platform) or `-l`.
set -euo pipefail
cd /workspace
exec python3 -m nox "$@"
