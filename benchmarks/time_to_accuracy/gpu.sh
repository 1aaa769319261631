#!/usr/bin/env bash
# Time to accuracy on one GPU, in one call of at most TTA_TOTAL_SECONDS (default 450 s):
#   1. XSimGCL fp32        to test Recall@20 0.1830 of the validation-selected model (budget 150 s of fit)
#   2. XSimGCL bf16-mixed  the same (150 s)
#   3. LightGCN fp32       its curve within 120 s
# then seconds to target, peak GPU memory and the CPU -> GPU epoch-time ratio (CPU epochs from
# experiments/model_zoo/gowalla_cpu/records.jsonl). Every run's fit budget is cut to what is left of the
# total, and each process is killed at the total deadline, so the script never runs past it.
#
# Preparation (on a machine with internet access, once): the GPU machine lacks hydra-core, omegaconf
# and antlr4 (wandb and optuna are not imported on this path). antlr4-python3-runtime 4.9.3 has no
# wheel on PyPI, so it is built from its sdist (pure Python):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       --platform any -d .whl hydra-core==1.3.8 omegaconf==2.3.1 PyYAML==6.0.3
#   python3 -m pip wheel --no-deps --no-binary=:all: -w .whl antlr4-python3-runtime==4.9.3
#   mkdir -p .gpudata && cp -r "$GRAPHREC_DATA_DIR/gowalla" .gpudata/    # train.txt, test.txt (6.6 MB)
# On the GPU machine, from the repository root:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD && bash benchmarks/time_to_accuracy/gpu.sh
#
# Environment:
#   OUT                  results: tta_<run>.json, summary.txt and this script's log gpu.log (default ./tta-out)
#   GRAPHREC_DATA_DIR    must hold gowalla/train.txt and test.txt (default ./.gpudata)
#   GRAPHREC_GIT_COMMIT  the commit to record where the copy has no .git
#   TTA_TOTAL_SECONDS (450), TTA_XSIMGCL_SECONDS (150), TTA_LIGHTGCN_SECONDS (120), TTA_SETUP_RESERVE (45),
#   TTA_TARGET (configs.yaml's 0.1830), TTA_DEVICE (cuda; cpu for a smoke test), TTA_DATA (gowalla; synthetic)
# Smoke test on a CPU (about a minute):
#   OUT=/tmp/tta-out TTA_DEVICE=cpu TTA_DATA=synthetic TTA_TOTAL_SECONDS=75 TTA_XSIMGCL_SECONDS=10 \
#     TTA_LIGHTGCN_SECONDS=30 TTA_SETUP_RESERVE=15 bash benchmarks/time_to_accuracy/gpu.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
START=$(date +%s)
TOTAL=${TTA_TOTAL_SECONDS:-450}
DEADLINE=$((START + TOTAL))
OUT=${OUT:-$ROOT/tta-out}
DEVICE=${TTA_DEVICE:-cuda}
DATA=${TTA_DATA:-gowalla}
XS_SECONDS=${TTA_XSIMGCL_SECONDS:-150}
LG_SECONDS=${TTA_LIGHTGCN_SECONDS:-120}
TARGET=${TTA_TARGET:-}                   # empty: configs.yaml's target (0.1830)
SETUP_RESERVE=${TTA_SETUP_RESERVE:-45}   # imports, data loading and the last validation after a budget
export GRAPHREC_DATA_DIR=${GRAPHREC_DATA_DIR:-$ROOT/.gpudata}
export GRAPHREC_CACHE_DIR=${GRAPHREC_CACHE_DIR:-/tmp/graphrec-tta-cache}
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu.log") 2>&1

echo "tta gpu.sh: $(date -u +%FT%TZ), commit ${GRAPHREC_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo "unknown (no .git: set GRAPHREC_GIT_COMMIT)")}, total ${TOTAL}s, device $DEVICE, data $DATA"
echo "GRAPHREC_DATA_DIR=$GRAPHREC_DATA_DIR OUT=$OUT"
if [ "$DATA" = gowalla ] && { [ ! -f "$GRAPHREC_DATA_DIR/gowalla/train.txt" ] || [ ! -f "$GRAPHREC_DATA_DIR/gowalla/test.txt" ]; }; then
  echo "ERROR: $GRAPHREC_DATA_DIR/gowalla/train.txt and test.txt are needed (set GRAPHREC_DATA_DIR)" >&2
  exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, lightning, hydra, omegaconf; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'lightning', lightning.__version__, 'hydra', hydra.__version__)" || exit 3

# run NAME MODEL PRECISION BUDGET: one tta.py process, its budget cut to fit before the deadline.
run() {
  local name=$1 model=$2 precision=$3 budget=$4
  local now left fit
  now=$(date +%s); left=$((DEADLINE - now)); fit=$((left - SETUP_RESERVE))
  if [ "$fit" -lt "$budget" ]; then budget=$fit; fi
  if [ "$budget" -lt 10 ]; then
    echo "== $name: skipped, ${left}s left"
    return 0
  fi
  echo "== $name: $model $precision, budget ${budget}s of fit, ${left}s left in total"
  timeout -k 5 $((left - 5)) python3 -u "$HERE/tta.py" --model "$model" --device "$DEVICE" --precision "$precision" \
    --data "$DATA" --max-seconds "$budget" ${TARGET:+--target "$TARGET"} --out-root /tmp/tta-runs --json "$OUT/tta_$name.json" 2>&1 \
    | grep --line-buffered -v -E "UserWarning|warnings.warn|^ *adj = |log_every_n_steps|transfer_batch_to_device|IterableDataset|LeafSpec|sparse_coo_tensor|Tip: For seamless"
  echo "== $name: exit ${PIPESTATUS[0]} after $(( $(date +%s) - now ))s"
}

run xsimgcl_fp32 xsimgcl 32-true "$XS_SECONDS"
run xsimgcl_bf16 xsimgcl bf16-mixed "$XS_SECONDS"
run lightgcn_fp32 lightgcn 32-true "$LG_SECONDS"

echo "== summary"
python3 "$HERE/summarize.py" "$OUT/tta_xsimgcl_fp32.json" "$OUT/tta_xsimgcl_bf16.json" "$OUT/tta_lightgcn_fp32.json" \
  --out "$OUT/summary.txt"
echo "tta gpu.sh: done in $(( $(date +%s) - START ))s"
