#!/usr/bin/env bash
# GPU check of the generation and training paths, for a lent GPU machine (it has not run yet:
# no GPU was available to the sessions that wrote it). Runs rollouts, proposals, sft and rl for a
# handful of steps with vLLM on, in a temporary copy of the repository, and records wall time per
# stage and peak GPU memory in $OUT (or ./gpu_smoke_out).
#
#   bash scripts/gpu_smoke.sh [MODEL]     # MODEL: a local model folder (default: data/models/base)
#
# Needs: .venv with the vllm extra (bash scripts/setup.sh vllm) and an NVIDIA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODEL=${1:-$ROOT/data/models/base}
OUT=${OUT:-$ROOT/gpu_smoke_out}
mkdir -p "$OUT"
PY=$ROOT/.venv/bin/python
"$PY" -c "import vllm, torch; assert torch.cuda.is_available(); print('vllm', vllm.__version__, torch.cuda.get_device_name())" | tee "$OUT/env.txt"

WS=$(mktemp -d)
cp -r dvc.yaml params.yaml pyproject.toml stages intervention_training configs .dvc .dvcignore "$WS"/
cd "$WS" && git init -q
"$PY" - "$MODEL" <<'PYEOF'
import sys, yaml
p = yaml.safe_load(open("params.yaml"))
p["model"]["name"] = sys.argv[1]
p["backend"].update(name="vllm", dtype="auto", gpu_memory_utilization=0.4)
p["problems"].update(limit=32, eval_fraction=0.25)
p["rollouts"]["sampling"]["max_new_tokens"] = 512
p["proposals"].update(per_attempt=2, constrained_block=True)
for s in ("sft", "rl"):
    p[s]["accelerate_config"] = "single_gpu"
    t = p[s]["trainer"]
    t.update(use_cpu=False, bf16=True, max_steps=4)
p["rl"]["trainer"].update(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.3,
                          num_generations=4, per_device_train_batch_size=4,
                          max_completion_length=256)
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PYEOF

nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$OUT/gpu_mem.csv" &
SMI=$!
trap 'kill $SMI 2>/dev/null || true' EXIT
export PATH=$ROOT/.venv/bin:$PATH
for stage in benchmarks problems base_model rollouts grades proposals interventions guided sft_data sft rl; do
  start=$(date +%s.%N)
  dvc repro -s "$stage" > "$OUT/$stage.log" 2>&1 || { echo "$stage FAILED (see $OUT/$stage.log)"; exit 1; }
  printf '%s\t%.1f s\n' "$stage" "$(echo "$(date +%s.%N) - $start" | bc)" | tee -a "$OUT/timings.tsv"
done
kill $SMI
printf 'peak GPU memory: %s MiB\n' "$(sort -n "$OUT/gpu_mem.csv" | tail -1)" | tee -a "$OUT/timings.tsv"
