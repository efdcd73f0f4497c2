#!/usr/bin/env bash
# `make fault-trials`: kill -9 of `masq deal`, `masq serve` and `masq query` at random points,
# TRIALS times each (default 20), and what must hold afterwards:
#   deal:  the directory holds the old pair or the new one (one pair id, a session works), or a
#          torn pair that the handshake refuses; the next `masq deal --force` succeeds and leaves
#          no temporary file;
#   serve: the client fails with an error (no panic), every slot the client spent is spent at the
#          server too, and a restarted server serves the next client;
#   query: the server keeps serving, the flags stay consistent, and the next client is served.
# Prints one line per trial and a summary; exits 1 if any trial broke a rule.
set -uo pipefail
cd "$(dirname "$0")/.."

MASQ=${MASQ:-./target/release/masq}
PY=${PY:-.masq/python}
TRIALS=${TRIALS:-20}
MODEL=${FAULT_MODEL:-zoo:mnist_cnn}
W=$(mktemp -d "${TMPDIR:-/tmp}/masq-fault-trials.XXXXXX")
SERVER_PID=""
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill -9 "$SERVER_PID" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

broken=0
ok_count=0
note() { echo "$*"; }
bad() { echo "BROKEN: $*"; broken=$((broken + 1)); }
good() { ok_count=$((ok_count + 1)); }

# A random pause of 0 to $1 milliseconds.
pause() { sleep "$(awk -v ms="$((RANDOM % $1))" 'BEGIN { printf "%.3f", ms / 1000 }')"; }

pair_id() { od -An -tx1 -j16 -N16 "$1" | tr -d ' \n'; }
# Spent flags of a dealer file as a string of 0/1 (header: count at 84, flags from 92).
flags() {
    local n
    n=$(od -An -tu8 -j84 -N8 "$1" | tr -d ' ')
    od -An -tu1 -j92 -N"$n" -v "$1" | tr -s ' \n' ' ' | tr -d ' '
}
# Every slot spent in p1 ($2) is spent in p0 ($1).
consistent() {
    local a b i
    a=$(flags "$1")
    b=$(flags "$2")
    for ((i = 0; i < ${#b}; i++)); do
        if [[ "${b:i:1}" == 1 && "${a:i:1}" != 1 ]]; then return 1; fi
    done
    return 0
}

start_server() { # p0.bin, extra args...
    local p0=$1
    shift
    "$MASQ" serve --model "$MODEL" --preprocessing "$p0" --listen 127.0.0.1:0 --timeout 5 "$@" \
        > "$W/serve.out" 2> "$W/serve.err" &
    SERVER_PID=$!
    for _ in $(seq 200); do
        ADDR=$(sed -n 's/^listening on //p' "$W/serve.out")
        [[ -n "$ADDR" ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "server did not start: $(cat "$W/serve.err")"
    return 1
}
stop_server() {
    [[ -n "$SERVER_PID" ]] && kill -9 "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}
query() { # p1.bin -> status
    "$MASQ" query --connect "$ADDR" --preprocessing "$1" --input "$W/x.npy" --timeout 10 > "$W/q.out" 2> "$W/q.err"
}
no_panic() { ! grep -q panicked "$@"; }

[[ -x "$MASQ" ]] || { echo "no $MASQ: run make build first"; exit 2; }
"$PY" -c "import numpy as np; np.save('$W/x.npy', (np.arange(784) % 23 / 23.0 - 0.4).reshape(1, 1, 28, 28).astype(np.float32))"

echo "== deal: kill -9 while replacing a pair ($TRIALS trials) =="
# A small model for the deals (the kill lands anywhere in a whole deal, its renames included).
DEAL_MODEL=${FAULT_DEAL_MODEL:-zoo:mnist_cnn@8x8}
"$PY" -c "import numpy as np; np.save('$W/x8.npy', (np.arange(64) % 23 / 23.0 - 0.4).reshape(1, 1, 8, 8).astype(np.float32))"
t0=$(date +%s%N)
"$MASQ" deal --model "$DEAL_MODEL" --count 8 --out "$W/timing" > /dev/null
deal_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
rm -rf "$W/timing"
note "a whole deal takes ${deal_ms} ms; kills land in 0 to $((deal_ms * 12 / 10)) ms"
for t in $(seq "$TRIALS"); do
    d="$W/deal$t"
    "$MASQ" deal --model "$DEAL_MODEL" --count 1 --out "$d" > /dev/null || { bad "deal $t: setup"; continue; }
    old=$(pair_id "$d/p0.bin")
    "$MASQ" deal --model "$DEAL_MODEL" --count 8 --out "$d" --force > /dev/null 2>&1 &
    pid=$!
    pause $((deal_ms * 12 / 10 + 1))
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    a=$(pair_id "$d/p0.bin")
    b=$(pair_id "$d/p1.bin")
    MODEL=$DEAL_MODEL start_server "$d/p0.bin" || { bad "deal $t: server"; continue; }
    "$MASQ" query --connect "$ADDR" --preprocessing "$d/p1.bin" --input "$W/x8.npy" --timeout 10 \
        > "$W/q.out" 2> "$W/q.err"
    st=$?
    if [[ "$a" == "$b" ]]; then
        state=$([[ "$a" == "$old" ]] && echo old || echo new)
        if [[ $st -eq 0 ]]; then good; else bad "deal $t: $state pair not served: $(cat "$W/q.err")"; fi
    else
        state=torn
        if [[ $st -ne 0 ]] && grep -q "pair id" "$W/q.err"; then good; else bad "deal $t: torn pair accepted"; fi
    fi
    stop_server
    if "$MASQ" deal --model "$DEAL_MODEL" --count 1 --out "$d" --force > /dev/null 2>&1 \
        && [[ -z "$(find "$d" -name '.p*.tmp')" ]]; then :; else bad "deal $t: next deal failed or left temporaries"; fi
    note "deal $t: killed -> $state pair"
    rm -rf "$d"
done

echo "== serve: kill -9 of the server during a session ($TRIALS trials) =="
d="$W/serve"
"$MASQ" deal --model "$MODEL" --count $((2 * TRIALS + 2)) --out "$d" --batch 4 > /dev/null
"$PY" -c "import numpy as np; np.save('$W/x.npy', (np.arange(4*784) % 23 / 23.0 - 0.4).reshape(4, 1, 28, 28).astype(np.float32))"
for t in $(seq "$TRIALS"); do
    start_server "$d/p0.bin" || { bad "serve $t: start"; continue; }
    query "$d/p1.bin" &
    qpid=$!
    pause 1500
    stop_server
    wait "$qpid"
    st=$?
    outcome=$([[ $st -eq 0 ]] && echo "finished first" || echo "client failed")
    no_panic "$W/q.err" || bad "serve $t: the client panicked"
    consistent "$d/p0.bin" "$d/p1.bin" || bad "serve $t: flags inconsistent: $(flags "$d/p0.bin") / $(flags "$d/p1.bin")"
    start_server "$d/p0.bin" || { bad "serve $t: restart"; continue; }
    if query "$d/p1.bin"; then good; else bad "serve $t: restarted server did not serve: $(cat "$W/q.err")"; fi
    stop_server
    note "serve $t: $outcome; flags $(flags "$d/p0.bin") / $(flags "$d/p1.bin")"
done

echo "== query: kill -9 of the client during a session ($TRIALS trials) =="
d="$W/query"
"$MASQ" deal --model "$MODEL" --count $((2 * TRIALS + 2)) --out "$d" --batch 4 > /dev/null
start_server "$d/p0.bin" || exit 1
for t in $(seq "$TRIALS"); do
    "$MASQ" query --connect "$ADDR" --preprocessing "$d/p1.bin" --input "$W/x.npy" > /dev/null 2>&1 &
    qpid=$!
    pause 1500
    kill -9 "$qpid" 2>/dev/null
    wait "$qpid" 2>/dev/null
    kill -0 "$SERVER_PID" 2>/dev/null || { bad "query $t: the server died"; break; }
    consistent "$d/p0.bin" "$d/p1.bin" || bad "query $t: flags inconsistent"
    # The server notices the dead client within its timeout; the next client is served meanwhile.
    if query "$d/p1.bin"; then good; else bad "query $t: next client not served: $(cat "$W/q.err")"; fi
    note "query $t: flags $(flags "$d/p0.bin") / $(flags "$d/p1.bin")"
done
no_panic "$W/serve.err" || bad "the server panicked"
stop_server

echo "== $((3 * TRIALS)) trials: $ok_count passed, $broken broken =="
[[ $broken -eq 0 ]]
