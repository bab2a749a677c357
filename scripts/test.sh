#!/usr/bin/env bash
# Set everything up, then run the default (fast) test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$repo"
# Graphviz (cell drawings), Chromium (the report.html browser test) and Fashion-MNIST, where they can be had;
# the tests that need them skip cleanly otherwise.
if { ! command -v dot >/dev/null || ! command -v chromium >/dev/null; } && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null; then
  echo "setup: installing graphviz and chromium (best effort)"
  (timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 \
     apt-get install -y -qq graphviz chromium dataset-fashion-mnist >/dev/null) || echo "setup: graphviz/chromium/fashion-mnist not installed; their tests will skip"
fi
exec "$python" -m pytest -q "$@"
