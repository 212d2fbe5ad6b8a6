#!/usr/bin/env bash
# Run one case target: `nox -s "logitsmatch-CASE@PLATFORM"`, everything it writes under
# runs/CASE@PLATFORM/ (output JSON, rank logs, junit.xml, summary.md, plots/, nox.log).
#
# The one script every case run goes through: the image runs it (CI jobs and
# `nox -s repro` start it via `docker run ... --entrypoint /workspace/ci/run_case.sh`),
# and a person can run it in a checkout too. Its exit status is the session's.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: ci/run_case.sh CASE PLATFORM   (runs nox -s \"logitsmatch-CASE@PLATFORM\")" >&2
    exit 2
fi
case_name=$1
platform=$2
target="${case_name}@${platform}"
# The deadline of the whole session; CI sets it a few minutes under the job's own timeout so
# that the report below is still written when a case hangs.
deadline_s=${LOGITSMATCH_CASE_TIMEOUT:-3600}

cd "$(dirname "$0")/.."
# The container runs as the caller (or, for a root caller, as the image's user, whom repro
# hands runs/): no umask games, nothing here is writable by all.
run_dir="runs/${target}"
mkdir -p "$run_dir"
export LOGITSMATCH_RUN_DIR="$run_dir"

nox=(nox)
command -v nox >/dev/null 2>&1 || nox=(python3 -m nox)

started=$(date +%s)
set +e
timeout --kill-after=60 "$deadline_s" "${nox[@]}" -s "logitsmatch-${target}" 2>&1 \
    | tee "${run_dir}/nox.log"
status=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - started ))

# A report even when the session died before writing one (no target vanishes from CI).
PYTHONPATH="${PWD}/src${PYTHONPATH:+:${PYTHONPATH}}" python3 -m logitsmatch.ci.report \
    "$case_name" "$platform" --status "$status" --seconds "$elapsed" --timeout "$deadline_s" \
    --log "${run_dir}/nox.log" --run-dir "$run_dir" \
    || echo "run_case.sh: could not write the fallback report (see above)" >&2
exit "$status"
