#!/usr/bin/env bash
# Runs the test suite fast-first: pure tests, then real-bridge tests, then Mininet tests.
# Stops at the first failing stage; a stage with no tests (pytest exit code 5) is not a failure.
# Extra pytest arguments: PYTEST_ARGS='-x -k name' make test
set -euo pipefail
cd "$(dirname "$0")/.."

# Tell tests/conftest.py that a missing OVS is an error here, not a reason to skip.
export SDN_REQUIRE_OVS=1
read -r -a extra <<<"${PYTEST_ARGS:-}"

stage() {
    local name=$1 marks=$2
    printf '\n=== %s tests (-m "%s") ===\n' "$name" "$marks"
    local rc=0
    .venv/bin/pytest tests -m "$marks" --timeout=300 -q -rfEs "${extra[@]}" || rc=$?
    if [ "$rc" = 5 ]; then
        echo "(no $name tests collected)"
    elif [ "$rc" != 0 ]; then
        echo "=== $name tests failed (exit $rc) ===" >&2
        exit "$rc"
    fi
}

stage pure "not bridge and not mininet"
stage bridge "bridge and not mininet"
stage mininet "mininet"
echo "=== all test stages passed ==="
