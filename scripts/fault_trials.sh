#!/usr/bin/env bash
# `make fault-trials`: kill -9 of `masq deal`, `masq serve`, `masq query`, `masq train` and
# `masq export` at random points, TRIALS times each (default 20), and what must hold afterwards:
#   deal:  once the server has opened p0.bin (which settles a killed deal's journal), both files
#          hold one pair id, the old one or the new one, no journal is left, and a session works;
#          a torn pair is a failure. The next `masq deal --force` succeeds and leaves no temporary;
#   serve: the client fails with an error (no panic), every slot the client spent is spent at the
#          server too, and a restarted server serves the next client;
#   query: the server keeps serving, the flags stay consistent, and the next client is served;
#   train: the run directory holds only run files (best.safetensors, last.safetensors, log.jsonl)
#          and temporaries of atomic writes, every checkpoint loads (`masq inspect`), every line of
#          the log is JSON; `--resume` continues the run (or, with no last.safetensors yet, refuses
#          clearly and `--force` starts it again) and finishes with best.safetensors and
#          last.safetensors byte-identical to an uninterrupted run's, and no temporary left;
#   export: `export --force` of a new model over an old artifact: OUT is then the complete old or
#          the complete new artifact (file by file), or absent with the old one whole in its hidden
#          `.OUT.masq-old-*` sibling; the next export restores or replaces it, leaves exactly the
#          new artifact and no sibling.
#   dealer: a dealer service (TLS) with a server and clients: kill -9 of the dealer (restarted on
#          its port and state), of the server, or of the client during a session: the others fail
#          with an error (no panic) or finish, the dealer's next number never goes back, the next
#          session works, and no half of any inference is sent twice, across every restart.
# FAULT_SECTIONS picks sections (default "deal serve query train export dealer"). Prints one line per trial and
# a summary with each section's passed trials; exits 1 if any trial broke a rule.
set -uo pipefail
cd "$(dirname "$0")/.."

MASQ=${MASQ:-./target/release/masq}
PY=${PY:-.masq/python}
TRIALS=${TRIALS:-20}
MODEL=${FAULT_MODEL:-zoo:mnist_cnn}
WANT=" ${FAULT_SECTIONS:-deal serve query train export dealer} "
want() { [[ "$WANT" == *" $1 "* ]]; }
W=$(mktemp -d "${TMPDIR:-/tmp}/masq-fault-trials.XXXXXX")
SERVER_PID=""
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill -9 "$SERVER_PID" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

broken=0
ok_count=0
# Trials passed and rules broken per section (deal, serve, query, train), for the summary.
SECTION=""
SECTIONS=()
declare -A passed=() failed=()
section() { SECTION=$1; SECTIONS+=("$1"); passed[$1]=0; failed[$1]=0; }
note() { echo "$*"; }
bad() { echo "BROKEN: $*"; broken=$((broken + 1)); failed[$SECTION]=$((${failed[$SECTION]} + 1)); }
good() { ok_count=$((ok_count + 1)); passed[$SECTION]=$((${passed[$SECTION]} + 1)); }

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
    # Emptied here, not by the redirection below: that one runs in the background process, which
    # may not have run yet when the loop first reads the file (and would find the last server's
    # address).
    : > "$W/serve.out"
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

if want deal; then
echo "== deal: kill -9 while replacing a pair ($TRIALS trials) =="
section deal
declare -A deal_states=()
# A small model for the deals (the kill lands anywhere in a whole deal, its renames included).
DEAL_MODEL=${FAULT_DEAL_MODEL:-zoo:mnist_cnn@8x8}
"$PY" -c "import numpy as np; np.save('$W/x8.npy', (np.arange(64) % 23 / 23.0 - 0.4).reshape(1, 1, 8, 8).astype(np.float32))"
t0=$(date +%s%N)
"$MASQ" deal --model "$DEAL_MODEL" --count 8 --out "$W/timing" > /dev/null
deal_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
rm -rf "$W/timing"
note "a whole deal takes ${deal_ms} ms; kills land in 0 to $((deal_ms * 12 / 10)) ms (odd trials), or when its" \
    "journal appears and up to about a millisecond later, among its renames (even trials)"
for t in $(seq "$TRIALS"); do
    d="$W/deal$t"
    "$MASQ" deal --model "$DEAL_MODEL" --count 1 --out "$d" > /dev/null || { bad "deal $t: setup"; continue; }
    old=$(pair_id "$d/p0.bin")
    "$MASQ" deal --model "$DEAL_MODEL" --count 8 --out "$d" --force > /dev/null 2>&1 &
    pid=$!
    if ((t % 2)); then pause $((deal_ms * 12 / 10 + 1)); else
        # As soon as its journal appears (the commit), then 0 to about 1 ms more: among its renames.
        until [[ -e "$d/.masq-deal.journal" ]] || ! kill -0 "$pid" 2>/dev/null; do :; done
        for ((i = RANDOM % 500; i > 0; i--)); do :; done
    fi
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    # What the kill left, before anyone opened the directory.
    left="$(find "$d" -name '.p*.tmp' | wc -l) temporaries$([[ -e "$d/.masq-deal.journal" ]] && echo ", journal")"
    left+=", ids $(pair_id "$d/p0.bin" | cut -c1-8)/$(pair_id "$d/p1.bin" | cut -c1-8)"
    # The server's open settles a journal (finishes the renames or removes the temporaries).
    MODEL=$DEAL_MODEL start_server "$d/p0.bin" || { bad "deal $t: server: $(cat "$W/serve.err")"; continue; }
    a=$(pair_id "$d/p0.bin")
    b=$(pair_id "$d/p1.bin")
    "$MASQ" query --connect "$ADDR" --preprocessing "$d/p1.bin" --input "$W/x8.npy" --timeout 10 \
        > "$W/q.out" 2> "$W/q.err"
    st=$?
    if [[ "$a" == "$b" ]]; then
        state=$([[ "$a" == "$old" ]] && echo old || echo new)
        if [[ -e "$d/.masq-deal.journal" ]]; then
            bad "deal $t: the server's open left the journal"
        elif [[ $st -eq 0 ]]; then
            good
        else
            bad "deal $t: $state pair not served: $(cat "$W/q.err")"
        fi
    else
        state=torn
        bad "deal $t: torn pair after the server's open (p0 $a, p1 $b; left: $left)"
    fi
    stop_server
    if "$MASQ" deal --model "$DEAL_MODEL" --count 1 --out "$d" --force > /dev/null 2>&1 \
        && [[ -z "$(find "$d" -name '.*.tmp' -o -name '.masq-deal.journal')" ]]; then :; else
        bad "deal $t: next deal failed or left temporaries"
    fi
    note "deal $t: killed ($left) -> $state pair"
    deal_states[$state]=$((${deal_states[$state]:-0} + 1))
    rm -rf "$d"
done

note "deal: old pair ${deal_states[old]:-0}, new pair ${deal_states[new]:-0}, torn ${deal_states[torn]:-0}"
fi

if want serve; then
echo "== serve: kill -9 of the server during a session ($TRIALS trials) =="
section serve
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

fi

if want query; then
echo "== query: kill -9 of the client during a session ($TRIALS trials) =="
section query
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
fi

if want train; then
echo "== train: kill -9 of \`masq train\` ($TRIALS trials) =="
section train
declare -A train_states=()
TRAIN_EPOCHS=${FAULT_TRAIN_EPOCHS:-6}
TRAIN=(train --model zoo:cnn_small --dataset synthetic --epochs "$TRAIN_EPOCHS" --max-batches 8 --batch-size 32
    --test-limit 200 --device cpu --threads 1 --json)
# The epoch a checkpoint holds (its masq.epoch), "?" if its header does not read.
ck_epoch() {
    "$PY" - "$1" << 'PYEOF' 2> /dev/null || echo "?"
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    print(json.loads(f.read(n))["__metadata__"]["masq.epoch"])
PYEOF
}
# Every line of a log is a JSON object, and the log ends with a newline.
log_ok() {
    "$PY" - "$1" << 'PYEOF'
import json, sys
data = open(sys.argv[1], "rb").read()
if data and not data.endswith(b"\n"):
    tail = data.rsplit(b"\n", 1)[-1][:60]
    sys.exit(f"a partial last line: {tail!r}")
for i, line in enumerate(data.split(b"\n")[:-1], 1):
    try:
        assert isinstance(json.loads(line), dict)
    except Exception:
        sys.exit(f"line {i} is not a JSON object: {line[:60]!r}")
PYEOF
}
# The rules for a run directory ($1; $2 = "final" after the run finished: no temporaries either).
check_run() {
    local o=$1 f n
    [[ -d "$o" ]] || return 0
    for f in "$o"/* "$o"/.[!.]*; do
        [[ -e "$f" ]] || continue
        n=$(basename "$f")
        case "$n" in
            best.safetensors | last.safetensors)
                "$MASQ" inspect "$f" --json > /dev/null 2> "$W/i.err" \
                    || bad "train $t: $n does not load: $(tail -1 "$W/i.err")" ;;
            log.jsonl) log_ok "$f" 2> "$W/l.err" || bad "train $t: torn log: $(tail -1 "$W/l.err")" ;;
            .masq-tmp-*) [[ "${2:-}" != final ]] || bad "train $t: temporary $n left after the run" ;;
            *) bad "train $t: unexpected file $n in the run directory" ;;
        esac
    done
}
if ! "$MASQ" train --help > /dev/null 2>&1; then
    note "skipped: $MASQ has no train command (built without the train feature)"
else
t0=$(date +%s%N)
"$MASQ" "${TRAIN[@]}" --out "$W/train-ref" > /dev/null 2> "$W/t.err" || { echo "reference run failed: $(cat "$W/t.err")"; exit 1; }
train_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
note "a whole run ($TRAIN_EPOCHS epochs) takes ${train_ms} ms; kills land in 0 to $((train_ms * 12 / 10)) ms"
for t in $(seq "$TRIALS"); do
    o="$W/train$t"
    b0=$broken
    "$MASQ" "${TRAIN[@]}" --out "$o" > /dev/null 2>&1 &
    pid=$!
    pause $((train_ms * 12 / 10 + 1))
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    tmps=$(find "$o" -name '.masq-tmp-*' 2> /dev/null | wc -l)
    check_run "$o"
    if [[ -e "$o/last.safetensors" ]]; then
        state="after epoch $(ck_epoch "$o/last.safetensors")"
        "$MASQ" "${TRAIN[@]}" --out "$o" --resume > /dev/null 2> "$W/t.err" \
            || bad "train $t: --resume $state failed: $(tail -1 "$W/t.err")"
    else
        state=$([[ -d "$o" ]] && echo "no checkpoint yet" || echo "no run directory")
        if "$MASQ" "${TRAIN[@]}" --out "$o" --resume > /dev/null 2> "$W/t.err"; then
            bad "train $t: --resume without a checkpoint succeeded"
        elif ! grep -q "holds no last.safetensors" "$W/t.err" || ! no_panic "$W/t.err"; then
            bad "train $t: --resume without a checkpoint: $(tail -1 "$W/t.err")"
        fi
        "$MASQ" "${TRAIN[@]}" --out "$o" --force > /dev/null 2> "$W/t.err" \
            || bad "train $t: --force after $state failed: $(tail -1 "$W/t.err")"
    fi
    check_run "$o" final
    [[ "$(ck_epoch "$o/last.safetensors")" == "$TRAIN_EPOCHS" ]] || bad "train $t: the run did not finish"
    for f in best.safetensors last.safetensors; do
        cmp -s "$o/$f" "$W/train-ref/$f" || bad "train $t: $f differs from the uninterrupted run's"
    done
    [[ $broken -eq $b0 ]] && good
    note "train $t: killed $state ($tmps temporaries) -> finished"
    train_states[$state]=$((${train_states[$state]:-0} + 1))
    rm -rf "$o"
done
summary=()
for s in "${!train_states[@]}"; do summary+=("$s: ${train_states[$s]}"); done
note "train: $(IFS=';'; echo "${summary[*]}" | sed 's/;/; /g')"
fi
fi

if want export; then
echo "== export: kill -9 of \`masq export --force\` ($TRIALS trials) =="
section export
declare -A export_states=()
# Exports are byte-identical at a fixed SOURCE_DATE_EPOCH, so a state is "old" or "new" exactly.
export SOURCE_DATE_EPOCH=1700000000
"$MASQ" export --from zoo:cnn_small --out "$W/exp-old" > /dev/null 2> "$W/e.err" || { echo "export failed: $(cat "$W/e.err")"; exit 1; }
t0=$(date +%s%N)
"$MASQ" export --from zoo:mnist_cnn --out "$W/exp-new" > /dev/null 2> "$W/e.err" || { echo "export failed: $(cat "$W/e.err")"; exit 1; }
export_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
note "a whole export takes ${export_ms} ms; kills land in 0 to $((export_ms * 12 / 10)) ms"
same() { diff -rq "$1" "$2" > /dev/null 2>&1; }
for t in $(seq "$TRIALS"); do
    d="$W/exp$t"
    mkdir -p "$d"
    o="$d/art"
    cp -a "$W/exp-old" "$o"
    b0=$broken
    "$MASQ" export --from zoo:mnist_cnn --out "$o" --force > /dev/null 2>&1 &
    pid=$!
    if ((t % 2 == 0)); then
        # Even trials aim at the renames: kill as soon as the old name is reserved.
        for _ in $(seq 20000); do
            compgen -G "$d/.art.masq-old-*" > /dev/null && break
            kill -0 "$pid" 2>/dev/null || break
        done
        pause 2
    else
        pause $((export_ms * 12 / 10 + 1))
    fi
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    olds=$(find "$d" -maxdepth 1 -name '.art.masq-old-*' | wc -l)
    if [[ -d "$o" ]] && same "$o" "$W/exp-old"; then
        state="old artifact"
    elif [[ -d "$o" ]] && same "$o" "$W/exp-new"; then
        state="new artifact"
    elif [[ ! -e "$o" ]]; then
        state="no OUT, old in its sibling"
        found=0
        for sib in "$d"/.art.masq-old-*; do same "$sib" "$W/exp-old" && found=1; done
        [[ $found == 1 ]] || bad "export $t: OUT gone and no sibling holds the old artifact"
        "$MASQ" inspect "$o" > /dev/null 2> "$W/e.err" && bad "export $t: a missing OUT was read"
        no_panic "$W/e.err" || bad "export $t: inspect panicked"
    else
        state="torn"
        bad "export $t: OUT is neither the old nor the new artifact"
    fi
    "$MASQ" export --from zoo:mnist_cnn --out "$o" --force > /dev/null 2> "$W/e.err" \
        || bad "export $t: the next export failed: $(tail -1 "$W/e.err")"
    same "$o" "$W/exp-new" || bad "export $t: the next export did not leave the new artifact"
    left=$(find "$d" -maxdepth 1 -name '.art.masq-*' | wc -l)
    [[ $left -eq 0 ]] || bad "export $t: $left hidden siblings left after the next export"
    [[ $broken -eq $b0 ]] && good
    note "export $t: killed -> $state ($olds old siblings) -> new"
    export_states[$state]=$((${export_states[$state]:-0} + 1))
    rm -rf "$d"
done
summary=()
for s in "${!export_states[@]}"; do summary+=("$s: ${export_states[$s]}"); done
note "export: $(IFS=';'; echo "${summary[*]}" | sed 's/;/; /g')"
unset SOURCE_DATE_EPOCH
fi

if want dealer; then
echo "== dealer service: kill -9 of the dealer, the server or the client ($TRIALS trials each) =="
K3="$W/keys"
"$MASQ" keygen --out "$K3" > /dev/null || { echo "keygen failed"; exit 1; }
DS="$W/dealer-state"
DEALER_PID=""
: > "$W/dealer.jsonl"
: > "$W/serve-d.err.all"
"$PY" -c "import numpy as np; np.save('$W/x1.npy', (np.arange(784) % 23 / 23.0 - 0.4).reshape(1, 1, 28, 28).astype(np.float32))"
start_dealer() { # [listen address]
    : > "$W/dealer.out"
    "$MASQ" dealer --model "$MODEL" --state "$DS" --listen "${1:-127.0.0.1:0}" --tls "$K3" --timeout 5 --json \
        > "$W/dealer.out" 2>> "$W/dealer.err" &
    DEALER_PID=$!
    for _ in $(seq 200); do
        DADDR=$(sed -n 's/.*"event":"listening".*"addr":"\([^"]*\)".*/\1/p; s/.*"addr":"\([^"]*\)".*"event":"listening".*/\1/p' "$W/dealer.out" | head -n1)
        [[ -n "$DADDR" ]] && return 0
        kill -0 "$DEALER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "dealer did not start: $(tail -3 "$W/dealer.err")"
    return 1
}
stop_dealer() {
    [[ -n "$DEALER_PID" ]] && kill -9 "$DEALER_PID" 2>/dev/null && wait "$DEALER_PID" 2>/dev/null
    DEALER_PID=""
    # Keep every answer the dealer printed, across its restarts.
    grep '"event":"request"' "$W/dealer.out" >> "$W/dealer.jsonl" 2>/dev/null
    : > "$W/dealer.out"
}
start_server_d() {
    : > "$W/serve.out"
    "$MASQ" serve --model "$MODEL" --dealer "$DADDR" --tls "$K3" --listen 127.0.0.1:0 --timeout 5 \
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
stop_server_d() { stop_server; cat "$W/serve.err" >> "$W/serve-d.err.all"; }
query_d() {
    "$MASQ" query --connect "$ADDR" --dealer "$DADDR" --tls "$K3" --input "$W/x1.npy" --timeout 10 \
        > "$W/q.out" 2> "$W/q.err"
}
next_number() { sed -n 's/^masq-dealer-next //p' "$DS/next" 2>/dev/null || echo 0; }
trap 'cleanup; [[ -n "$DEALER_PID" ]] && kill -9 "$DEALER_PID" 2>/dev/null' EXIT
start_dealer || exit 1
DPORT=${DADDR##*:}
start_server_d || exit 1
query_d || { echo "the first session failed: $(cat "$W/q.err")"; exit 1; }

section dealer
for t in $(seq "$TRIALS"); do
    before=$(next_number)
    query_d &
    qpid=$!
    pause 1500
    stop_dealer
    wait "$qpid"
    st=$?
    outcome=$([[ $st -eq 0 ]] && echo "finished first" || echo "client failed")
    no_panic "$W/q.err" || bad "dealer $t: the client panicked"
    kill -0 "$SERVER_PID" 2>/dev/null || bad "dealer $t: the server died with the dealer"
    [[ $st -eq 0 ]] || grep -qi "dealer\|refused\|disconnect\|closed" "$W/q.err" \
        || bad "dealer $t: the client's error does not say what happened: $(tail -1 "$W/q.err")"
    start_dealer "127.0.0.1:$DPORT" || { bad "dealer $t: restart"; continue; }
    after=$(next_number)
    ((after >= before)) || bad "dealer $t: the next number went back ($before -> $after)"
    if query_d; then good; else bad "dealer $t: no session after the dealer's restart: $(tail -1 "$W/q.err")"; fi
    note "dealer $t: $outcome; numbers $before -> $(next_number)"
done

section serve+dealer
for t in $(seq "$TRIALS"); do
    query_d &
    qpid=$!
    pause 1500
    stop_server_d
    wait "$qpid"
    st=$?
    no_panic "$W/q.err" || bad "serve+dealer $t: the client panicked"
    kill -0 "$DEALER_PID" 2>/dev/null || bad "serve+dealer $t: the dealer died with the server"
    start_server_d || { bad "serve+dealer $t: restart"; continue; }
    if query_d; then good; else bad "serve+dealer $t: restarted server did not serve: $(tail -1 "$W/q.err")"; fi
    note "serve+dealer $t: $([[ $st -eq 0 ]] && echo "finished first" || echo "client failed"); next number $(next_number)"
done

section query+dealer
for t in $(seq "$TRIALS"); do
    "$MASQ" query --connect "$ADDR" --dealer "$DADDR" --tls "$K3" --input "$W/x1.npy" > /dev/null 2>&1 &
    qpid=$!
    pause 1500
    kill -9 "$qpid" 2>/dev/null
    wait "$qpid" 2>/dev/null
    kill -0 "$SERVER_PID" 2>/dev/null || { bad "query+dealer $t: the server died"; break; }
    kill -0 "$DEALER_PID" 2>/dev/null || { bad "query+dealer $t: the dealer died"; break; }
    if query_d; then good; else bad "query+dealer $t: next client not served: $(tail -1 "$W/q.err")"; fi
    note "query+dealer $t: next number $(next_number)"
done
stop_server_d
stop_dealer
no_panic "$W/serve-d.err.all" "$W/dealer.err" || bad "the server or the dealer panicked"
# No half of any inference was sent twice, across every restart of the three.
"$PY" - "$W/dealer.jsonl" <<'PYEOF' || bad "a half of an inference was sent twice"
import json, sys
seen, twice = set(), []
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("ok") and "inference_index" in e:
        k = (e["inference_index"], e["party"])
        (twice if k in seen else [None]).append(k)
        seen.add(k)
twice = [k for k in twice if k]
print(f"dealer: {len(seen)} halves sent, {len({k[0] for k in seen})} inferences, {len(twice)} sent twice")
sys.exit(1 if twice else 0)
PYEOF
# The server started no inference number twice.
dups=$(sed -n 's/.*inference \([0-9]*\) started.*/\1/p' "$W/serve-d.err.all" | sort | uniq -d | wc -l)
[[ $dups -eq 0 ]] || bad "the server started $dups inference numbers twice"
fi

summary=()
for s in "${SECTIONS[@]}"; do summary+=("$s ${passed[$s]}/$TRIALS"); done
echo "== $(IFS=,; echo "${summary[*]}" | sed 's/,/, /g'); $ok_count passed, $broken rules broken =="
[[ $broken -eq 0 ]]
