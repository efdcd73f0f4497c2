#!/usr/bin/env bash
# The README's pruning figures (`make prune-experiments`): on real CIFAR-10 ($MASQ_DATA_DIR/cifar10)
#   1. a filter-sparsity table on cnn_small: sa, mag, magsign, snip, random at 50% and 70%, each
#      from the same training and followed by the same retraining;
#   2. Rotated ReLU on the pretrained ResNet-20 ($MASQ_MODELS_DIR/akamaster);
#   3. one composed run: prune (mag 50%) then reduce (AutoReP to half the ReLUs).
# Every run's result is the last JSON line of $OUT/<name>.jsonl. Knobs: TRAIN_EPOCHS, RETRAIN_EPOCHS,
# SA_TEMPS, RRELU_EPOCHS, RRELU_L1, THREADS, ONLY (a space-separated subset of: table rrelu compose).
set -euo pipefail
MASQ=${MASQ:-target/release/masq}
OUT=${OUT:-runs/prune-experiments}
DATA=${MASQ_DATA_DIR:?set MASQ_DATA_DIR to the directory holding cifar10/}
MODELS=${MASQ_MODELS_DIR:-}
THREADS=${THREADS:-2}
TRAIN_EPOCHS=${TRAIN_EPOCHS:-8}
RETRAIN_EPOCHS=${RETRAIN_EPOCHS:-4}
SA_TEMPS=${SA_TEMPS:-500}
RRELU_EPOCHS=${RRELU_EPOCHS:-5}
RRELU_L1=${RRELU_L1:-5e-3}
ONLY=${ONLY:-table rrelu compose}
mkdir -p "$OUT"
common=(--dataset cifar10 --data "$DATA" --threads "$THREADS" --test-limit 1000 --json)

want() { [[ " $ONLY " == *" $1 "* ]]; }

if want table; then
  for s in 0.5 0.7; do
    for m in sa mag magsign snip random; do
      name="cnn_small-$m-$s"
      echo "== $name" >&2
      "$MASQ" prune --from zoo:cnn_small --method "$m" --filter-sparsity "$s" --train-epochs "$TRAIN_EPOCHS" \
        --rewind final --epochs "$RETRAIN_EPOCHS" --lr 0.05 --sa-temperatures "$SA_TEMPS" \
        --out "$OUT/$name" "${common[@]}" > "$OUT/$name.jsonl"
    done
  done
fi

if want rrelu; then
  w="$MODELS/akamaster/resnet20-12fca82f.safetensors"
  if [[ -z "$MODELS" || ! -f "$w" ]]; then
    echo "skipping the Rotated ReLU run: no $w (set MASQ_MODELS_DIR)" >&2
  else
    # ζ by the validation rule (the default), then the ζ that removes 30% of the slope channels.
    for rule in validation 0.3; do
      name=resnet20-rrelu; threshold=()
      if [[ $rule != validation ]]; then name="resnet20-rrelu-${rule#0.}0"; threshold=(--filter-sparsity "$rule"); fi
      echo "== $name" >&2
      "$MASQ" prune --from zoo:resnet20 --weights "$w" --method rrelu --slope-init ones --l1 "$RRELU_L1" \
        --epochs "$RRELU_EPOCHS" --lr 0.02 --finetune-epochs 2 --val-images 2000 "${threshold[@]}" \
        --out "$OUT/$name" "${common[@]}" > "$OUT/$name.jsonl"
    done
    # Distilled, slopes ranked within their ReLU, 27% of the slope channels (the README's target row).
    echo "== resnet20-rrelu-distill-27" >&2
    "$MASQ" prune --from zoo:resnet20 --weights "$w" --method rrelu --slope-init ones --l1 1e-2 \
      --epochs 3 --lr 0.01 --distill --slope-ranking site --filter-sparsity 0.27 --finetune-epochs 8 \
      --finetune-lr 0.01 --out "$OUT/resnet20-rrelu-distill-27" "${common[@]}" > "$OUT/resnet20-rrelu-distill-27.jsonl"
  fi
fi

if want compose; then
  echo "== compose: prune then reduce" >&2
  "$MASQ" prune --from zoo:cnn_small --method mag --filter-sparsity 0.5 --train-epochs "$TRAIN_EPOCHS" \
    --rewind final --epochs "$RETRAIN_EPOCHS" --lr 0.05 --out "$OUT/compose-prune" "${common[@]}" \
    > "$OUT/compose-prune.jsonl"
  "$MASQ" reduce --from "$OUT/compose-prune/pruned.safetensors" --relu-sparsity 0.5 --mask-epochs 4 \
    --finetune-epochs 2 --distill --out "$OUT/compose-reduce" "${common[@]}" > "$OUT/compose-reduce.jsonl"
  for stage in compose-prune/pruned.safetensors compose-reduce/reduced.safetensors; do
    "$MASQ" estimate "$OUT/$stage" --json | tail -n 1 > "$OUT/$(dirname "$stage").estimate.json"
  done
fi
echo "results in $OUT" >&2
