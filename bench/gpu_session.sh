#!/usr/bin/env bash
# Issue 6's GPU figures in ONE device call: what fits in one lent session (15 minutes of device
# time in all, 10 minutes a command, a minute or two of it spent starting the machine).
#
# On the device machine, from the repository root, with the CIFAR-10 copy carried in .data/:
#     mkdir -p .data && cp ../shared/data/cifar10_jpeg.npz .data/      # here, once (.data/ is ignored)
#     run(command="bash bench/gpu_session.sh", carry=[".data"], timeout_s=600)
# CPU smoke of the same steps with tiny settings (what the test runs):
#     GPU_SESSION_SMOKE=1 bash bench/gpu_session.sh /tmp/gpu-session
#
# Steps, most important first, each under its own time limit and all of them under the session's
# deadline (GPU_SESSION_SECONDS, default 560 s from the start), so a slow step costs its own figures,
# never the ones already written:
#   0. install (pip --no-deps -e .), hardware.json, the GPU-only tests (`-m gpu`, in session.log)
#   1. target 1, final-network training speed (mobilenetv2_cifar, 88M MAdds) -> train_speed.jsonl
#   2. target 2, DEA supernet steps against the stand-alone network         -> evolve_speed.jsonl
#   3. target 3, `autospace run` at 60M with configs/run/gpu.yaml in the time left -> pipeline.json
#      (or, when the time runs out first, how far each stage got: pipeline_progress.json) and
#      pipeline_logs.tar.gz (configs, logs and results of the run, no checkpoints)
# Everything lands in the folder given as $1, else $OUT (the device tool's), else runs/gpu-session:
# at most 8 files, none in a subfolder, as the device tool brings back.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-${OUT:-runs/gpu-session}}"
mkdir -p "$out"
log="$out/session.log"
deadline=$(( SECONDS + ${GPU_SESSION_SECONDS:-560} ))
smoke="${GPU_SESSION_SMOKE:-0}"
python="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

say() { echo "gpu-session: $*" | tee -a "$log"; }

# step NAME LIMIT_SECONDS COMMAND...: run under min(LIMIT, time left); its last stdout line, when it is a
# JSON object, is appended to $out/NAME.jsonl; everything it prints goes to the log.
step() {
  local name="$1" limit="$2"; shift 2
  local left=$(( deadline - SECONDS - 5 ))
  if (( left < 20 )); then say "$name: skipped, ${left}s left"; return 1; fi
  (( limit > left )) && limit=$left
  say "$name: $* (limit ${limit}s)"
  local started=$SECONDS
  timeout --signal=INT --kill-after=15 "$limit" "$@" > "$out/.stdout" 2>> "$log"
  local status=$?
  cat "$out/.stdout" >> "$log"
  local last
  last="$(grep '^{' "$out/.stdout" | tail -n 1)"
  [[ -n "$last" ]] && echo "$last" >> "$out/$name.jsonl"
  rm -f "$out/.stdout"
  say "$name: exit $status after $(( SECONDS - started ))s"
  return $status
}

# -- 0. set-up -----------------------------------------------------------------------------------
if ! "$python" -c "import autospace" 2>/dev/null; then
  "$python" -m pip install -q --no-deps -e . >> "$log" 2>&1 || { say "pip install failed"; exit 1; }
fi
if [[ -z "${AUTOSPACE_DATA:-}" && -f .data/cifar10_jpeg.npz ]]; then export AUTOSPACE_DATA="$PWD/.data"; fi
if [[ -z "${AUTOSPACE_DATA:-}" && -f ../shared/data/cifar10_jpeg.npz ]]; then export AUTOSPACE_DATA="$(cd ../shared/data && pwd)"; fi
say "data: ${AUTOSPACE_DATA:-none}; smoke: $smoke"
"$python" - "$out/hardware.json" >> "$log" 2>&1 <<'EOF'
import json, subprocess, sys
import torch
from autospace.runtime.device import hardware_info
info = hardware_info(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
try:
    info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    info["commit"] = None
json.dump(info, open(sys.argv[1], "w"), indent=1)
print(json.dumps(info))
EOF

if [[ "$smoke" == 1 ]]; then
  device=cpu
  train_runs=("configs/archs/cifar_small.json --batch-size 16 --steps 2 --warmup 1 --compile off")
  evolve_runs=("--preset cifar-small --budget-madds 15M --candidates 2 --batch-size 8 --paths 1 --repeats 1 --sequence 2")
  pipeline_args=(--smoke)
else
  device=cuda
  # Eager first: if compiling fails or runs long, the eager figure is already written.
  train_runs=(
    "configs/archs/mobilenetv2_cifar.json --batch-size 1024 --steps 60 --compile off"
    "configs/archs/mobilenetv2_cifar.json --batch-size 1024 --steps 100 --compile default"
    "configs/archs/mobilenetv2_cifar.json --batch-size 512 --steps 100 --compile default"
  )
  evolve_runs=(
    "--preset cifar --budget-madds 60M --batch-size 128"
    "--preset cifar --budget-madds 60M --batch-size 512"
  )
  pipeline_args=(--config gpu --budget-madds 60M)
fi

step pytest_gpu 90 "$python" -m pytest -q -p no:cacheprovider -m gpu tests/test_fast_paths.py tests/test_data.py

# -- 1. final-network training speed ---------------------------------------------------------------
for arguments in "${train_runs[@]}"; do
  # shellcheck disable=SC2086  # the arguments are one string of words on purpose
  step train_speed 150 "$python" bench/train_speed.py $arguments --device "$device"
done

# -- 2. supernet steps against the stand-alone network ---------------------------------------------
for arguments in "${evolve_runs[@]}"; do
  # shellcheck disable=SC2086
  step evolve_speed 120 "$python" bench/evolve_speed.py $arguments --device "$device"
done

# -- 3. the whole pipeline in the time left ---------------------------------------------------------
run_dir="${GPU_SESSION_RUN_DIR:-runs/gpu-session-pipeline}"
rm -rf "$run_dir"
step pipeline 900 "$python" bench/pipeline.py "${pipeline_args[@]}" --device "$device" --out "$run_dir"
if [[ -f "$out/pipeline.jsonl" ]]; then
  mv "$out/pipeline.jsonl" "$out/pipeline.json"
else
  # Stopped by the deadline: how far each stage got and in how long, from its logs (see docs/RESULTS.md).
  "$python" - "$run_dir" "$out/pipeline_progress.json" >> "$log" 2>&1 <<'EOF'
import json, sys
from pathlib import Path
from autospace.runtime.atomic import read_jsonl
run = Path(sys.argv[1])
progress = {"finished": False, "run_dir": str(run)}
for stage, name, key in (("evolve", "history.jsonl", "step"), ("search", "search.jsonl", "epoch"),
                         ("train", "metrics.jsonl", "epoch")):
    records = read_jsonl(run / stage / name) if (run / stage / name).exists() else []
    if records:
        last = records[-1]
        progress[stage] = {"records": len(records), key: last.get(key),
                           "elapsed_seconds": last.get("elapsed_seconds", last.get("wall_time_s"))}
json.dump(progress, open(sys.argv[2], "w"), indent=1)
print(json.dumps(progress))
EOF
fi
if [[ -d "$run_dir" ]]; then
  tar -czf "$out/pipeline_logs.tar.gz" --exclude='*.pt' --exclude='.*.tmp' -C "$(dirname "$run_dir")" \
    "$(basename "$run_dir")" 2>> "$log"
fi
say "done in ${SECONDS}s; files: $(cd "$out" && ls | tr '\n' ' ')"
