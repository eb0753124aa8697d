#!/usr/bin/env bash
# The project's test command (README "Run the tests"). Fast tests first, then the multi-process
# (gloo ranks) and Ray tests, which are marked `dist` and `ray`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m pytest -q -x --timeout=900 tests "$@"
