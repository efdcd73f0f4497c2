#!/usr/bin/env bash
# `make demo-2pc`: encrypted inference between three real processes on this machine, over mutual TLS.
#   masq dealer (service)  ==TLS==>  masq serve --dealer (P0, weights)  <==TLS==>  3 x masq query --dealer (P1, images)
#        \____________________________________________________________________________/  (each party fetches its half)
# then one query each through `masq relay` shaped as the LAN and the WAN profile (the server link;
# the dealer links stay unshaped), measured beside the cost model's estimate. The same on three
# separate network-namespace hosts, with every link shaped: `make three-hosts`.
# Real CIFAR-10 test images when $MASQ_DATA_DIR/cifar10 holds the binary test batch, seeded
# synthetic images otherwise. Model: $DEMO_MODEL (default zoo:resnet20 with seeded random
# weights; give an exported artifact directory for a trained one).
set -euo pipefail
cd "$(dirname "$0")/.."

MASQ=${MASQ:-./target/release/masq}
MODEL=${DEMO_MODEL:-zoo:resnet20}
PY=${PY:-.masq/python}
QUERIES=3
# Two more inferences: one through a LAN-shaped relay, one through a WAN-shaped one.
K=$((QUERIES + 2))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/masq-demo-2pc.XXXXXX")
SERVER_PID=""
DEALER_PID=""
cleanup() {
    for pid in "$SERVER_PID" "$DEALER_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

wait_addr() { # file pid what -> prints the address after "listening on "
    local a=""
    for _ in $(seq 1 600); do
        a=$(sed -n 's/^listening on //p' "$1" 2>/dev/null | head -n1)
        [[ -n "$a" ]] && { echo "$a"; return 0; }
        kill -0 "$2" 2>/dev/null || { echo "$3 failed to start" >&2; return 1; }
        sleep 0.1
    done
    echo "$3 did not start listening" >&2
    return 1
}

echo "== keys (masq keygen): a CA and one certificate per role =="
"$MASQ" keygen --out "$WORK/keys"

echo "== dealer service: $MODEL =="
"$MASQ" dealer --model "$MODEL" --state "$WORK/dealer" --listen 127.0.0.1:0 --tls "$WORK/keys" \
    --timeout 120 >"$WORK/dealer.out" 2>"$WORK/dealer.log" &
DEALER_PID=$!
DADDR=$(wait_addr "$WORK/dealer.out" "$DEALER_PID" dealer) || { cat "$WORK/dealer.log"; exit 1; }
echo "dealer listening on $DADDR"

echo "== server (P0) =="
"$MASQ" serve --model "$MODEL" --dealer "$DADDR" --tls "$WORK/keys" --listen 127.0.0.1:0 \
    --max-sessions "$K" --timeout 120 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 600); do
    ADDR=$(sed -n 's/^listening on //p' "$WORK/server.out" 2>/dev/null | head -n1)
    [[ -n "$ADDR" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; echo "server failed to start" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$ADDR" ]] || { echo "server did not start listening" >&2; exit 1; }
echo "listening on $ADDR"

CIFAR="${MASQ_DATA_DIR:-}/cifar10/exact_test_batch_first1000.bin.gz"
LABELS=()
for i in $(seq 0 $((QUERIES - 1))); do
    if [[ -n "${MASQ_DATA_DIR:-}" && -f "$CIFAR" ]]; then
        LABELS+=("$("$MASQ" cifar-npy --file "$CIFAR" --index "$i" --out "$WORK/x$i.npy")")
    else
        LABELS+=("$("$MASQ" cifar-npy --synthetic "$i" --out "$WORK/x$i.npy")")
    fi
done
if [[ -f "$CIFAR" ]]; then echo "inputs: CIFAR-10 test images 0..$((QUERIES - 1))"; else echo "inputs: synthetic (no \$MASQ_DATA_DIR/cifar10)"; fi

echo "== client (P1): $QUERIES queries =="
for i in $(seq 0 $((QUERIES - 1))); do
    "$MASQ" query --connect "$ADDR" --dealer "$DADDR" --tls "$WORK/keys" --input "$WORK/x$i.npy" \
        --timeout 120 --json >"$WORK/q$i.json"
done
echo "== the same query through a shaping relay (masq relay): LAN and WAN profiles =="
RELAY_PIDS=()
for net in lan wan; do
    "$MASQ" relay --listen 127.0.0.1:0 --to "$ADDR" --network "$net" >"$WORK/relay-$net.out" 2>&1 &
    RELAY_PIDS+=($!)
    RADDR=""
    for _ in $(seq 1 100); do
        RADDR=$(sed -n 's/^relaying \([^ ]*\) .*/\1/p' "$WORK/relay-$net.out" | head -n1)
        [[ -n "$RADDR" ]] && break
        sleep 0.05
    done
    "$MASQ" query --connect "$RADDR" --dealer "$DADDR" --tls "$WORK/keys" --input "$WORK/x0.npy" \
        --timeout 120 --json >"$WORK/q-$net.json"
done
kill "${RELAY_PIDS[@]}" 2>/dev/null || true
wait "$SERVER_PID" || true
SERVER_PID=""
kill -TERM "$DEALER_PID" 2>/dev/null || true
wait "$DEALER_PID" || true
DEALER_PID=""
echo "== dealer log =="
cat "$WORK/dealer.log"
echo "== server log =="
cat "$WORK/server.log"

echo "== measured vs estimated (per query) =="
"$PY" - "$WORK" "$QUERIES" "${LABELS[@]}" <<'PYEOF'
import json, sys
work, n, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def mb(b): return f"{b / 1e6:.2f} MB"
rows = [json.load(open(f"{work}/q{i}.json")) for i in range(n)]
hdr = f"{'query':>5} {'idx':>3} {'label':>5} {'pred':>4} {'P0->P1':>10} {'P1->P0':>10} {'rounds':>6} {'online s':>8} {'total s':>7} {'est LAN s':>9} {'est WAN s':>9}"
print(hdr)
for i, q in enumerate(rows):
    lab = labels[i] if i < len(labels) and labels[i] != "255" else "-"
    print(f"{i:>5} {q['inference_index']:>3} {lab:>5} {q['prediction']:>4} {mb(q['online_bytes_p0_to_p1']):>10} "
          f"{mb(q['online_bytes_p1_to_p0']):>10} {q['rounds']:>6} {q['seconds']:>8.3f} {q['total_seconds']:>7.3f} "
          f"{q['est_lan_seconds']:>9.3f} {q['est_wan_seconds']:>9.3f}")
q = rows[0]
print(f"{'cost model':>21} {mb(q['predicted_online_bytes_p0_to_p1']):>10} {mb(q['predicted_online_bytes_p1_to_p0']):>10} {q['predicted_rounds']:>6}")
print(f"ReLUs per image {q['relu_count']} (comparisons per inference {q['comparisons_per_batch']}); model load {mb(q['setup_bytes'])}; formula: {q['formula']}")
print()
print("measured through the relay vs the estimate from the direct query (compute measured on loopback):")
print(f"{'profile':>7} {'measured online s':>17} {'estimate s':>10} {'measured/est':>12} {'whole query s':>13}")
for net in ("lan", "wan"):
    m = json.load(open(f"{work}/q-{net}.json"))
    est = q[f"est_{net}_seconds"]
    print(f"{net:>7} {m['seconds']:>17.3f} {est:>10.3f} {m['seconds'] / est:>12.2f} {m['total_seconds']:>13.3f}")
PYEOF
