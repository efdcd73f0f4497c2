#!/usr/bin/env bash
# The README's sparse and few-bit figures (`make quant-experiments`), on real CIFAR-10
# ($MASQ_DATA_DIR/cifar10, exact 1000-image test subset) from the pretrained akamaster ResNet-20
# ($MASQ_MODELS_DIR/akamaster):
#   1. unstructured pruning to 75% zero weights: reweighted L1 and magnitude, same retrain, both
#      distilled from the pretrained network (--distill; DISTILL=0 runs without);
#   2. linear quantization: 8 bits, and 8 bits at the ends with 6 in between, each scored;
#   3. under 2PC on the first $SECURE_IMAGES test images: float and 8-bit models with calibrated
#      widths at 16 fractional bits, and the 8-bit model at $QUANT_FRAC_BITS, against plaintext.
# Every run's result is the last JSON line of $OUT/<name>.jsonl (the 2PC runs: <name>.json).
# Knobs: THREADS, RL1_EPOCHS, RETRAIN_EPOCHS, DISTILL, SECURE_IMAGES, QUANT_FRAC_BITS, ONLY (a
# space-separated subset of: sparse quant secure).
set -euo pipefail
MASQ=${MASQ:-target/release/masq}
PY=${PY:-.masq/python}
OUT=${OUT:-runs/quant-experiments}
DATA=${MASQ_DATA_DIR:?set MASQ_DATA_DIR to the directory holding cifar10/}
MODELS=${MASQ_MODELS_DIR:?set MASQ_MODELS_DIR to the directory holding akamaster/}
THREADS=${THREADS:-2}
RL1_EPOCHS=${RL1_EPOCHS:-2}
RETRAIN_EPOCHS=${RETRAIN_EPOCHS:-8}
SECURE_IMAGES=${SECURE_IMAGES:-1000}
QUANT_FRAC_BITS=${QUANT_FRAC_BITS:-8}
DISTILL=${DISTILL:-1}
ONLY=${ONLY:-sparse quant secure}
W="$MODELS/akamaster/resnet20-12fca82f.safetensors"
mkdir -p "$OUT"
common=(--dataset cifar10 --data "$DATA" --threads "$THREADS" --test-limit 1000 --json)
want() { [[ " $ONLY " == *" $1 "* ]]; }
kd=()
[[ "$DISTILL" == 1 ]] && kd=(--distill)

if want sparse; then
  echo "== resnet20-rl1-75" >&2
  "$MASQ" prune --from zoo:resnet20 --weights "$W" --method reweighted-l1 --weight-sparsity 0.75 \
    --train-epochs "$RL1_EPOCHS" --epochs "$RETRAIN_EPOCHS" "${kd[@]}" --out "$OUT/resnet20-rl1-75" "${common[@]}" \
    > "$OUT/resnet20-rl1-75.jsonl"
  echo "== resnet20-mag-75" >&2
  "$MASQ" prune --from zoo:resnet20 --weights "$W" --method mag --weight-sparsity 0.75 \
    --epochs "$RETRAIN_EPOCHS" "${kd[@]}" --out "$OUT/resnet20-mag-75" "${common[@]}" > "$OUT/resnet20-mag-75.jsonl"
fi

if want quant; then
  mixed=8$(printf ',6%.0s' $(seq 18)),8
  for spec in "q8:--bits 8" "q8-6:--layer-bits $mixed"; do
    name=resnet20-${spec%%:*}
    echo "== $name" >&2
    # shellcheck disable=SC2086
    "$MASQ" quantize --from zoo:resnet20 --weights "$W" ${spec#*:} --out "$OUT/$name" "${common[@]}" \
      > "$OUT/$name.jsonl"
    "$MASQ" inspect "$OUT/$name/quantized.safetensors" --score micronet --assume-sparsity 0.5 --json \
      > "$OUT/$name-score-s05.json"
  done
  if [[ -f "$OUT/resnet20-rl1-75/pruned.safetensors" ]]; then
    for spec in "q8:--bits 8" "q8-6:--layer-bits $mixed"; do
      name=resnet20-rl1-75-${spec%%:*}
      echo "== $name" >&2
      # shellcheck disable=SC2086
      "$MASQ" quantize --from "$OUT/resnet20-rl1-75/pruned.safetensors" ${spec#*:} --out "$OUT/$name" \
        "${common[@]}" > "$OUT/$name.jsonl"
      "$MASQ" inspect "$OUT/$name/quantized.safetensors" --score micronet --json > "$OUT/$name-score.json"
    done
  fi
fi

if want secure; then
  x="$OUT/x$SECURE_IMAGES.npy"
  "$MASQ" cifar-npy --file "$DATA/cifar10/exact_test_batch_first1000.bin.gz" --count "$SECURE_IMAGES" --out "$x" >/dev/null
  "$MASQ" load-weights --model zoo:resnet20 --weights "$W" --out "$OUT/resnet20.safetensors" >/dev/null
  cal() { "$MASQ" calibrate "$1" --dataset cifar10 --data "$DATA" --holdout 1000 --frac-bits "$3" -o "$2" --json > "$2.cal.json"; }
  cal "$OUT/resnet20.safetensors" "$OUT/float-cal.safetensors" 16
  cal "$OUT/resnet20-q8/quantized.safetensors" "$OUT/q8-cal.safetensors" 16
  cal "$OUT/resnet20-q8/quantized.safetensors" "$OUT/q8-cal-f$QUANT_FRAC_BITS.safetensors" "$QUANT_FRAC_BITS"
  for run in "float:float-cal:16" "q8:q8-cal:16" "q8-f$QUANT_FRAC_BITS:q8-cal-f$QUANT_FRAC_BITS:$QUANT_FRAC_BITS"; do
    IFS=: read -r name model f <<< "$run"
    echo "== 2pc $name" >&2
    "$MASQ" run "$OUT/$model.safetensors" --input "$x" --mode plain --json | tail -1 > "$OUT/plain-$name.json"
    "$MASQ" run "$OUT/$model.safetensors" --input "$x" --mode mpc --cmp-mode compact --frac-bits "$f" --json \
      | tail -1 > "$OUT/mpc-$name.json"
    "$PY" scripts/agreement.py "$DATA/cifar10/exact_test_batch_first1000.bin.gz" "$OUT/mpc-$name.json" "$OUT/plain-$name.json"
  done
fi
