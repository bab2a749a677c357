#!/usr/bin/env bash
# Set everything up, then run the default (fast) test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$repo"
exec "$python" -m pytest -q "$@"
