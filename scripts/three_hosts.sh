#!/usr/bin/env bash
# `make three-hosts`: encrypted inference with the dealer, the server (P0) and the client (P1) on
# three "hosts": Linux network namespaces joined by veth pairs to a bridge in a fourth namespace.
#
#   masq3-dealer-ID  10.213.X.1  masq dealer --tls           (holds ca.pem dealer.pem dealer.key)
#   masq3-server-ID  10.213.X.2  masq serve --dealer --tls   (holds ca.pem server.pem server.key)
#   masq3-client-ID  10.213.X.3  masq query --dealer --tls   (holds ca.pem client.pem client.key)
#   masq3-net-ID                 bridge br0 and the host ends of the three veth pairs
#
# ID is this script's PID, so parallel runs do not clash (every address lives inside this run's own
# namespaces: nothing is added to the root namespace). The kernel's netem qdisc is not used;
# shaping is masq's own userspace relay (`masq relay`), run in the namespace of the connecting side
# of each link (client -> server, client -> dealer, server -> dealer), the connecting process
# pointed at its local relay.
#
# Three runs of QUERIES queries each (default 3): unshaped (direct), LAN (3 Gbps, 0.3 ms) and WAN
# (400 Mbps, 40 ms). Prints the measured online seconds of the client beside the cost model's
# estimate for the profile (`est_lan_seconds` / `est_wan_seconds` of the unshaped queries, whose
# compute was measured without shaping, as scripts/demo_2pc.sh does), and checks every answer:
# predictions equal to `masq run --mode plain`, logits within fixed-point tolerance (max abs diff
# printed), and the dealer sent each inference's two halves exactly once.
#
# MODEL (default zoo:resnet20), MASQ (default ./target/release/masq), QUERIES, CMP_MODE (dealer's
# comparison mode, default one-round). Inputs: CIFAR-10 test images 0.. if
# $MASQ_DATA_DIR/cifar10/exact_test_batch_first1000.bin.gz exists, seeded synthetic ones otherwise.
# Needs root (ip netns); without it prints "skipped: ..." and exits 0, or 1 with --require-netns.
# Always removes its namespaces and stops its processes on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIRE_NETNS=0
for a in "$@"; do
    case "$a" in
    --require-netns) REQUIRE_NETNS=1 ;;
    -h | --help)
        sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "unknown argument: $a (only --require-netns)" >&2
        exit 2
        ;;
    esac
done

MASQ=${MASQ:-./target/release/masq}
MODEL=${MODEL:-zoo:resnet20}
QUERIES=${QUERIES:-3}
CMP_MODE=${CMP_MODE:-one-round}
PY=${PY:-.masq/python}
[[ -x "$PY" ]] || PY=python3
TIMEOUT=${TIMEOUT:-120}
[[ "$MASQ" == /* ]] || MASQ="$PWD/$MASQ"
[[ -x "$MASQ" ]] || {
    echo "no masq binary at $MASQ (cargo build --release -p masq, or MASQ=path)" >&2
    exit 1
}

ID=$$
SUB="10.213.$((ID % 250))"
NS_NET="masq3-net-$ID"
declare -A NS=([dealer]="masq3-dealer-$ID" [server]="masq3-server-$ID" [client]="masq3-client-$ID")
declare -A IP=([dealer]="$SUB.1" [server]="$SUB.2" [client]="$SUB.3")
ROLES=(dealer server client)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/masq-three-hosts.XXXXXX")
PIDS=()
MADE_NS=()

cleanup() {
    local rc=$?
    set +e
    # Our own processes first (by PID), then anything still running inside our namespaces.
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for ns in "${MADE_NS[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    done
    # Deleting the bridge namespace deletes the veth pairs (and so their ends in the hosts).
    for ns in "${MADE_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    if [[ $rc -ne 0 && -d "$WORK" ]]; then
        for f in "$WORK"/*.log; do
            [[ -s "$f" ]] && {
                echo "== $(basename "$f") (last lines) ==" >&2
                tail -n 15 "$f" >&2
            }
        done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

skip() {
    echo "skipped: $*"
    if [[ $REQUIRE_NETNS -eq 1 ]]; then exit 1; fi
    exit 0
}
die() {
    echo "three_hosts: $*" >&2
    exit 1
}

# ---- the three hosts ----------------------------------------------------------------------------
command -v ip >/dev/null 2>&1 || skip "no \`ip\` command (iproute2) to create network namespaces"
[[ $(id -u) -eq 0 ]] || skip "network namespaces need root (running as uid $(id -u))"
ip netns add "$NS_NET" 2>"$WORK/netns.err" || skip "ip netns add failed: $(tr '\n' ' ' <"$WORK/netns.err")"
MADE_NS+=("$NS_NET")
ip -n "$NS_NET" link set lo up
ip -n "$NS_NET" link add br0 type bridge
ip -n "$NS_NET" link set br0 up
for r in "${ROLES[@]}"; do
    ip netns add "${NS[$r]}" || die "ip netns add ${NS[$r]} failed"
    MADE_NS+=("${NS[$r]}")
    ip -n "${NS[$r]}" link set lo up
    ip -n "$NS_NET" link add "v-$r" type veth peer name eth0 netns "${NS[$r]}"
    ip -n "$NS_NET" link set "v-$r" master br0
    ip -n "$NS_NET" link set "v-$r" up
    ip -n "${NS[$r]}" addr add "${IP[$r]}/24" dev eth0
    ip -n "${NS[$r]}" link set eth0 up
done
echo "== hosts: dealer ${IP[dealer]} (${NS[dealer]}), server ${IP[server]} (${NS[server]}), client ${IP[client]} (${NS[client]}); bridge in $NS_NET =="

in_ns() {
    local r=$1
    shift
    ip netns exec "${NS[$r]}" "$@"
}

# Starts CMD... in ROLE's namespace in the background, stdout to NAME.out, stderr to NAME.log.
start() {
    local name=$1 r=$2
    shift 2
    # A simple command, not a function, in the background: bash forks and execs `ip`, which execs
    # masq, so $! is masq's own PID (a function would leave a subshell between them).
    ip netns exec "${NS[$r]}" "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
# Waits for the first stdout line of NAME matching the sed expression; prints the capture.
wait_addr() {
    local name=$1 expr=$2 pid=$3 a=""
    for _ in $(seq 1 $((TIMEOUT * 20))); do
        a=$(sed -n "$expr" "$WORK/$name.out" 2>/dev/null | head -n1)
        [[ -n "$a" ]] && {
            echo "$a"
            return 0
        }
        kill -0 "$pid" 2>/dev/null || die "$name exited before it was ready: $(tail -n 5 "$WORK/$name.log")"
        sleep 0.05
    done
    die "$name did not start within ${TIMEOUT}s"
}
stop() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# A relay in ROLE's namespace from 127.0.0.1 there to TO, shaped as PROFILE: its address in
# RELAY_ADDR, its PID appended to PROFILE_PIDS (not run in a subshell, so the PID stays ours).
relay() {
    local name=$1 r=$2 to=$3 profile=$4
    start "$name" "$r" "$MASQ" relay --listen 127.0.0.1:0 --to "$to" --network "$profile"
    PROFILE_PIDS+=("$LAST_PID")
    RELAY_ADDR=$(wait_addr "$name" 's/^relaying \([^ ]*\) .*/\1/p' "$LAST_PID")
}

# ---- keys: one keygen, each host gets ca.pem and its own role's pair ----------------------------
"$MASQ" keygen --out "$WORK/keys" >/dev/null
for r in "${ROLES[@]}"; do
    mkdir -p "$WORK/$r/tls"
    cp "$WORK/keys/ca.pem" "$WORK/keys/$r.pem" "$WORK/keys/$r.key" "$WORK/$r/tls/"
    chmod 600 "$WORK/$r/tls/$r.key"
done

# ---- inputs and the in-process reference ----------------------------------------------------------
# One image's shape (C,H,W) from `masq inspect`: CIFAR-10 images for a 3x32x32 input, seeded
# uniform noise in [-1, 1) of the model's shape otherwise.
SHAPE=$("$MASQ" inspect "$MODEL" --json | tail -n1 | "$PY" -c '
import json, sys
dims = json.load(sys.stdin)["inputs"][0][1][1:]
print(",".join(str(d["Fixed"]) for d in dims))')
CIFAR="${MASQ_DATA_DIR:-}/cifar10/exact_test_batch_first1000.bin.gz"
if [[ $SHAPE != 3,32,32 ]]; then
    INPUTS="seeded noise of shape [1,$SHAPE], seeds 0..$((QUERIES - 1))"
elif [[ -n "${MASQ_DATA_DIR:-}" && -f "$CIFAR" ]]; then
    INPUTS="CIFAR-10 test images 0..$((QUERIES - 1))"
else
    INPUTS="synthetic images 0..$((QUERIES - 1)) (no \$MASQ_DATA_DIR/cifar10)"
fi
LABELS=()
for i in $(seq 0 $((QUERIES - 1))); do
    x="$WORK/client/x$i.npy"
    if [[ $SHAPE != 3,32,32 ]]; then
        "$PY" - "$SHAPE" "$i" "$x" <<'PYEOF'
import random, struct, sys
shape = [1] + [int(d) for d in sys.argv[1].split(",")]
rng, n = random.Random(int(sys.argv[2])), 1
for d in shape:
    n *= d
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(f"{d}, " for d in shape)
hdr += " " * (63 - (10 + len(hdr)) % 64) + "\n"
with open(sys.argv[3], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode("latin1"))
    f.write(struct.pack(f"<{n}f", *(rng.uniform(-1, 1) for _ in range(n))))
PYEOF
        LABELS+=(255)
    elif [[ -n "${MASQ_DATA_DIR:-}" && -f "$CIFAR" ]]; then
        LABELS+=("$("$MASQ" cifar-npy --file "$CIFAR" --index "$i" --out "$x")")
    else
        LABELS+=("$("$MASQ" cifar-npy --synthetic "$i" --out "$x")")
    fi
    "$MASQ" run "$MODEL" --input "$x" --mode plain --output "$WORK/ref$i.npy" --json >"$WORK/ref$i.json"
done
echo "== model $MODEL, $INPUTS, $QUERIES queries per profile =="

# ---- the dealer ----------------------------------------------------------------------------------
start dealer dealer "$MASQ" dealer --model "$MODEL" --state "$WORK/dealer/state" --listen "${IP[dealer]}:0" \
    --tls "$WORK/dealer/tls" --cmp-mode "$CMP_MODE" --timeout "$TIMEOUT"
DEALER_PID=$LAST_PID
DEALER=$(wait_addr dealer 's/^listening on //p' "$DEALER_PID")
echo "dealer listening on $DEALER"

# ---- one profile: a server, then QUERIES queries from the client host ----------------------------
run_profile() {
    local profile=$1 to_dealer_s=$DEALER to_dealer_c=$DEALER to_server server_pid
    PROFILE_PIDS=()
    if [[ $profile != direct ]]; then
        relay "relay-$profile-server-dealer" server "$DEALER" "$profile"
        to_dealer_s=$RELAY_ADDR
    fi
    start "server-$profile" server "$MASQ" serve --model "$MODEL" --dealer "$to_dealer_s" --listen "${IP[server]}:0" \
        --tls "$WORK/server/tls" --timeout "$TIMEOUT"
    server_pid=$LAST_PID
    to_server=$(wait_addr "server-$profile" 's/^listening on //p' "$server_pid")
    if [[ $profile != direct ]]; then
        relay "relay-$profile-client-server" client "$to_server" "$profile"
        local rs=$RELAY_ADDR
        relay "relay-$profile-client-dealer" client "$DEALER" "$profile"
        to_dealer_c=$RELAY_ADDR
        echo "-- $profile: server on $to_server (dealer via its relay $to_dealer_s); client via its relays $rs -> server, $to_dealer_c -> dealer"
        to_server=$rs
    else
        echo "-- direct: server on $to_server, dealer $DEALER"
    fi
    for i in $(seq 0 $((QUERIES - 1))); do
        in_ns client "$MASQ" query --connect "$to_server" --dealer "$to_dealer_c" --input "$WORK/client/x$i.npy" \
            --tls "$WORK/client/tls" --timeout "$TIMEOUT" --json >"$WORK/q-$profile-$i.json" 2>"$WORK/q-$profile-$i.log" ||
            die "query $i ($profile) failed: $(tail -n 5 "$WORK/q-$profile-$i.log")"
    done
    stop "$server_pid"
    for p in "${PROFILE_PIDS[@]}"; do stop "$p"; done
}

echo "== queries =="
for profile in direct lan wan; do
    run_profile "$profile"
done
stop "$DEALER_PID"
cp "$WORK/dealer.log" "$WORK/dealer.txt"

echo "== dealer log (last lines) =="
tail -n 6 "$WORK/dealer.txt"

echo "== measured vs estimated =="
"$PY" - "$WORK" "$QUERIES" "$MODEL" "${LABELS[@]}" <<'PYEOF'
import json, re, struct, sys

work, n, model, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
profiles = ["direct", "lan", "wan"]
nets = {"direct": "unshaped", "lan": "LAN (3 Gbps, 0.3 ms)", "wan": "WAN (400 Mbps, 40 ms)"}


def npy_f32(path):
    """The flat float32 values of a little-endian .npy file (no numpy needed)."""
    b = open(path, "rb").read()
    assert b[:6] == b"\x93NUMPY", path
    major = b[6]
    hl = struct.unpack("<H", b[8:10])[0] if major == 1 else struct.unpack("<I", b[8:12])[0]
    off = (10 if major == 1 else 12) + hl
    hdr = b[off - hl : off].decode("latin1")
    assert "'<f4'" in hdr and "'fortran_order': False" in hdr, hdr
    k = (len(b) - off) // 4
    return list(struct.unpack(f"<{k}f", b[off : off + 4 * k]))


q = {p: [json.load(open(f"{work}/q-{p}-{i}.json")) for i in range(n)] for p in profiles}
ref = [npy_f32(f"{work}/ref{i}.npy") for i in range(n)]
ref_pred = [max(range(len(r)), key=r.__getitem__) for r in ref]
mean = lambda xs: sum(xs) / len(xs)
problems = []

# Answers: every query's logits against plaintext, and against the unshaped query of its image.
max_plain, max_direct = 0.0, 0.0
for p in profiles:
    for i, r in enumerate(q[p]):
        if len(r["output"]) != len(ref[i]):
            problems.append(f"{p} query {i}: {len(r['output'])} logits, plaintext has {len(ref[i])}")
            continue
        max_plain = max(max_plain, max(abs(a - b) for a, b in zip(r["output"], ref[i])))
        max_direct = max(max_direct, max(abs(a - b) for a, b in zip(r["output"], q["direct"][i]["output"])))
        if r["prediction"] != ref_pred[i]:
            problems.append(f"{p} query {i}: prediction {r['prediction']}, plaintext {ref_pred[i]}")
        for k in ("online_bytes_p0_to_p1", "online_bytes_p1_to_p0", "rounds"):
            if r[k] != r[f"predicted_{k}"]:
                problems.append(f"{p} query {i}: {k} {r[k]} != predicted {r['predicted_' + k]}")

# The dealer: each inference's P0 half and P1 half sent exactly once.
halves = {}
for line in open(f"{work}/dealer.txt"):
    m = re.search(r"inference (\d+): (P[01])'s half sent", line)
    if m:
        halves.setdefault(int(m.group(1)), []).append(m.group(2))
used = sorted(r["inference_index"] for p in profiles for r in q[p])
if len(set(used)) != len(used):
    problems.append(f"an inference number was used twice: {used}")
for s in used:
    if sorted(halves.get(s, [])) != ["P0", "P1"]:
        problems.append(f"inference {s}: halves sent {halves.get(s, [])} (want P0 and P1 once each)")
extra = sorted(set(halves) - set(used))

print(f"{'query':>5} {'label':>5} {'plain':>5} " + " ".join(f"{p + ' pred':>11}" for p in profiles))
for i in range(n):
    lab = labels[i] if i < len(labels) and labels[i] != "255" else "-"
    print(f"{i:>5} {lab:>5} {ref_pred[i]:>5} " + " ".join(f"{q[p][i]['prediction']:>11}" for p in profiles))
print(
    f"logits: max |masq query - masq run --mode plain| = {max_plain:.3g}; "
    f"max |shaped - unshaped query| = {max_direct:.3g}"
)
print(
    f"dealer: {len(used)} inferences, each P0's and P1's half sent once"
    + ("" if not extra else f" (also dealt, unused: {extra})")
)
print()

d = q["direct"]
def mb(b): return f"{b / 1e6:.2f}"
print(f"model {model}, {n} queries per profile, TLS on, three network namespaces; times are means (min-max)")
hdr = (f"{'profile':<22} {'online s (measured)':>22} {'estimate s':>10} {'meas/est':>8} "
       f"{'whole query s':>20} {'rounds':>6} {'MB P0->P1':>9} {'MB P1->P0':>9}")
print(hdr)
print("-" * len(hdr))
for p in profiles:
    on = [r["seconds"] for r in q[p]]
    tot = [r["total_seconds"] for r in q[p]]
    if p == "direct":
        est, ratio = "-", "-"
    else:
        e = mean([r[f"est_{p}_seconds"] for r in d])
        est, ratio = f"{e:.3f}", f"{mean(on) / e:.2f}"
    r0 = q[p][0]
    print(
        f"{nets[p]:<22} {mean(on):>8.3f} ({min(on):.3f}-{max(on):.3f}) {est:>10} {ratio:>8} "
        f"{mean(tot):>6.3f} ({min(tot):.3f}-{max(tot):.3f}) {r0['rounds']:>6} "
        f"{mb(r0['online_bytes_p0_to_p1']):>9} {mb(r0['online_bytes_p1_to_p0']):>9}"
    )
print(
    f"estimate: the unshaped queries' est_lan_seconds / est_wan_seconds (mean; their compute, "
    f"measured unshaped, plus {d[0]['formula']}); cost model: {d[0]['predicted_rounds']} rounds, "
    f"{mb(d[0]['predicted_online_bytes_p0_to_p1'])} / {mb(d[0]['predicted_online_bytes_p1_to_p0'])} MB"
)
if problems:
    print()
    for pr in problems:
        print("PROBLEM:", pr)
    sys.exit(1)
PYEOF
