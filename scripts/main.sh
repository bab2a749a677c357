#!/usr/bin/env bash
# Set everything up, then run the main job on the built-in default:
# evolve -> search -> train with the quick preset (configs/run/quick.yaml) on CIFAR-10.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$repo"
out="${1:-runs/default-$(date +%Y%m%d-%H%M%S)}"
exec autospace run --config quick --out "$out"
