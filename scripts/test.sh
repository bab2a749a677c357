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
# One pytest worker per core (at most 4), each torch on one thread: most tests are small and bound by
# Python, and two multi-threaded torch processes on few cores spin against each other. On the 2-core
# Xeon VM the default suite took 14-15 min in one process and 8 min in two.
workers="${AUTOSPACE_TEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
exec "$python" -m pytest -q -n "$workers" "$@"
