#!/usr/bin/env bash
# The one script a lent GPU machine runs (issue 12), from the project root:
#   1. the test suite with its models on CUDA (AMODAL_TEST_DEVICE=cuda);
#   2. throughput.py, ViT-B bf16, image batches 1 / 8 / 32, without torch.compile and (batch 32)
#      with it, beside SamPredictor fp32 in the same run; ViT-H at batch 8 when GPU_CHECK_VIT_H=1;
#   3. attention_speed.py: the encoder's attention paths (sdpa, folded, chunked, flex) in bf16, 8 images;
#      scene_speed.py: a scene of 50 objects beside SamPredictor;
#   4. train_speed.py: training on cached embeddings (bf16 autocast), DataLoader workers 0 and 4.
# Every figure uses seeded random weights: the architecture's cost, not SAM's quality.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default: $OUT, else ./gpu_check_out)
#   GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh DIR   (CPU, tiny model: the test suite's smoke run)
#
# OUT_DIR gets three files (the device tool brings back at most eight): gpu_check.json (every
# step's status and results), gpu_check.log (every step's output) and tests.xml (JUnit). A step
# that fails is recorded and the others still run; the exit status is 1 if any failed.
set -uo pipefail
OUT_DIR=${1:-${OUT:-gpu_check_out}}
mkdir -p "$OUT_DIR"
PARTS=$(mktemp -d)
trap 'rm -rf "$PARTS"' EXIT
export PYTHONUNBUFFERED=1

if [[ "${GPU_CHECK_TINY:-0}" == 1 ]]; then
    DEVICE=cpu MODEL=tiny TESTS="tests/test_decision.py" BATCHES="2" COMPILED_BATCH="" INSTANCES=1,3
    ATTENTIONS=sdpa,folded,chunked ATTENTION_BATCH=1
    REPEATS=1 SCENE=5 TRAIN=(--model-type tiny --images 4 --objects-per-image 3 --size 96,128 --batch-size 4 --workers 0,1)
else
    DEVICE=cuda MODEL=vit_b TESTS="tests" BATCHES="1 8 32" COMPILED_BATCH=32 INSTANCES=1,8,64
    ATTENTIONS=sdpa,folded,chunked,flex ATTENTION_BATCH=8
    REPEATS=3 SCENE=50 TRAIN=(--model-type vit_b --images 64 --batch-size 32 --workers 0,4)
fi

: >"$OUT_DIR/gpu_check.log"
step() {  # step NAME COMMAND...: run it, log its output, record its exit status
    local name=$1
    shift
    echo "== $name: $*" | tee -a "$OUT_DIR/gpu_check.log"
    local began=$SECONDS
    "$@" >>"$OUT_DIR/gpu_check.log" 2>&1
    local code=$?
    echo "$name $code $((SECONDS - began))" >>"$PARTS/status"
    echo "== $name: exit $code after $((SECONDS - began)) s" | tee -a "$OUT_DIR/gpu_check.log"
}

python - <<'PY' >>"$OUT_DIR/gpu_check.log" 2>&1
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name())
PY

# shellcheck disable=SC2086  # TESTS is a list of paths
step tests env AMODAL_TEST_DEVICE=$DEVICE python -m pytest -q -x -p no:cacheprovider $TESTS --junitxml "$OUT_DIR/tests.xml"
for batch in $BATCHES; do
    step "throughput_b$batch" python benchmarks/throughput.py --model-type $MODEL --dtype bf16 --device $DEVICE \
        --image-batch "$batch" --instances $INSTANCES --repeats $REPEATS --json "$PARTS/throughput_b$batch.json"
done
if [[ -n "$COMPILED_BATCH" ]]; then
    step "throughput_b${COMPILED_BATCH}_compile" python benchmarks/throughput.py --model-type $MODEL --dtype bf16 \
        --device $DEVICE --image-batch $COMPILED_BATCH --instances $INSTANCES --repeats $REPEATS --compile \
        --json "$PARTS/throughput_b${COMPILED_BATCH}_compile.json"
fi
if [[ "${GPU_CHECK_VIT_H:-0}" == 1 ]]; then
    step throughput_vit_h_b8 python benchmarks/throughput.py --model-type vit_h --dtype bf16 --device $DEVICE \
        --image-batch 8 --instances $INSTANCES --repeats $REPEATS --json "$PARTS/throughput_vit_h_b8.json"
fi
step attention python benchmarks/attention_speed.py --model-type $MODEL --device $DEVICE --dtypes bf16 \
    --attentions "$ATTENTIONS" --image-batch "$ATTENTION_BATCH" --repeats $REPEATS --json "$PARTS/attention.json"
step scene python benchmarks/scene_speed.py --model-type $MODEL --objects $SCENE --device $DEVICE --repeats $REPEATS \
    --json "$PARTS/scene.json"
step train python benchmarks/train_speed.py --device $DEVICE "${TRAIN[@]}" --json "$PARTS/train.json"

python - "$PARTS" "$OUT_DIR/gpu_check.json" <<'PY'
import json, sys
from pathlib import Path

parts, out = Path(sys.argv[1]), Path(sys.argv[2])
steps = {}
for line in (parts / "status").read_text().splitlines():
    name, code, seconds = line.split()
    result = parts / f"{name}.json"
    steps[name] = {
        "exit": int(code),
        "seconds": int(seconds),
        "result": json.loads(result.read_text()) if result.is_file() else None,
    }
out.write_text(json.dumps({"failed": [n for n, s in steps.items() if s["exit"]], "steps": steps}, indent=2))
PY
if grep -qv " 0 [0-9]*$" "$PARTS/status"; then
    echo "gpu_check: some steps failed (see $OUT_DIR/gpu_check.json)"
    exit 1
fi
echo "gpu_check: every step passed ($OUT_DIR/gpu_check.json)"
