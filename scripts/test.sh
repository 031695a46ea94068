#!/usr/bin/env bash
# The project's test command: `bash scripts/test.sh [pytest args...]`.
# Sets everything up (scripts/setup.sh), then runs pytest with the given arguments and exits
# with pytest's exit code.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

# --- Tests -----------------------------------------------------------------------------------
section "pytest $*"
set +e
"$PY" -m pytest "$@"
rc=$?
set -e
if ((rc == 5)); then
    # pytest's own code for "no tests collected": already non-zero, and it stays a failure.
    echo "error: pytest collected no tests" >&2
fi
section "done: pytest exit code $rc"
exit "$rc"
