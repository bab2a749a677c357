#!/usr/bin/env bash
# Set everything up, then run the main job on the built-in default:
# train the small CIFAR network (configs/archs/cifar_small.json) on CIFAR-10.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$repo"
out="${1:-runs/default-$(date +%Y%m%d-%H%M%S)}"
exec autospace train configs/archs/cifar_small.json --config cifar10 --out "$out"
