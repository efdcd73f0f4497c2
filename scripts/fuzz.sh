#!/usr/bin/env bash
# Fuzz campaigns with cargo-fuzz (libFuzzer), one target after the other (see docs/FUZZING.md).
#
#   scripts/fuzz.sh [TARGET...]        every target of fuzz/Cargo.toml when none is named
#
# FUZZ_SECONDS  seconds per target (default 60)
# FUZZ_RUNS     stop a target after this many executions instead (0: no limit, the default)
# FUZZ_SANITIZER  none (default: Rust code is memory-safe, and a build without ASan runs about
#               twice as fast) or address
# FUZZ_FORK     1: run in libFuzzer's fork mode and keep going after a crash, OOM or timeout (every
#               crashing input is still saved); 0 (default): stop at the first one
# FUZZ_RSS_MB   memory limit per run (default 2048)
# FUZZ_BUILD    0: run the targets as last built, without building (default 1)
#
# Installs cargo-fuzz under .masq/cargo when missing (and needs the nightly toolchain). The
# seed corpus is generated into fuzz/seeds/ (scripts/fuzz_corpus.sh) when missing; the growing
# corpus is kept in fuzz/corpus/<target>/, crashing inputs in fuzz/artifacts/<target>/, the logs
# in fuzz/logs/. Builds with debug assertions and overflow checks (-a). Prints a table of
# executions and seconds per target and exits non-zero when a run found a crash.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-0}
sanitizer=${FUZZ_SANITIZER:-none}
fork=${FUZZ_FORK:-0}
rss=${FUZZ_RSS_MB:-2048}
toolchain=${FUZZ_TOOLCHAIN:-nightly}

export PATH="$root/.masq/cargo/bin:$PATH"
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$toolchain" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --root "$root/.masq/cargo"
fi

all=$(sed -n 's/^path = "fuzz_targets\/\(.*\)\.rs"$/\1/p' fuzz/Cargo.toml)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || read -r -a targets <<<"$(echo $all)"

# Longest input per target: room for the largest seed, small enough to keep runs fast.
max_len() {
    case $1 in
        npy) echo 1024 ;;
        onnx_import | checkpoint) echo 4096 ;;
        artifact | handshake | datasets) echo 8192 ;;
        dealer_file | dealer_stream) echo 65536 ;;
        *) echo 4096 ;;
    esac
}

# Every target at once (cargo fuzz build takes one target or all).
[ "${FUZZ_BUILD:-1}" = 0 ] || cargo "+$toolchain" fuzz build -s "$sanitizer" -a
[ -d fuzz/seeds ] || bash scripts/fuzz_corpus.sh
bin=fuzz/target/x86_64-unknown-linux-gnu/release
mkdir -p fuzz/logs/tmp
# libFuzzer's own temporary files (fork mode), and the files the targets write on every run (in
# memory when there is /dev/shm; a crashed run leaves its directory behind: removed at the end).
export TMPDIR="$root/fuzz/logs/tmp"
if [ -d /dev/shm ]; then scratch=/dev/shm/masq-fuzz-$$; else scratch=$TMPDIR/scratch-$$; fi
export MASQ_FUZZ_SCRATCH=$scratch
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
summary=()
crashed=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    before=$(ls "fuzz/artifacts/$t" | wc -l)
    args=(-max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb="$rss" -timeout=10
        -max_len="$(max_len "$t")" -artifact_prefix="fuzz/artifacts/$t/")
    [ "$runs" = 0 ] || args+=(-runs="$runs")
    [ "$fork" = 0 ] || args+=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
    seeds=()
    [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
    echo "== $t: ${seconds}s ($(date -u +%H:%M:%S) UTC)"
    start=$(date +%s)
    set +e
    "$bin/$t" "fuzz/corpus/$t" "${seeds[@]}" "${args[@]}" >"fuzz/logs/$t.log" 2>&1
    rc=$?
    set -e
    elapsed=$(($(date +%s) - start))
    # Executions: the final stats (plain mode) or the last status line (fork mode).
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "fuzz/logs/$t.log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\):* .*/\1/p' "fuzz/logs/$t.log" | tail -1)
    after=$(ls "fuzz/artifacts/$t" | wc -l)
    new=$((after - before))
    [ "$rc" = 0 ] && [ "$new" = 0 ] || crashed=1
    summary+=("$(printf '%-12s %12s execs %6ss  exit %3s  new crash files %s' "$t" "${execs:-?}" "$elapsed" "$rc" "$new")")
    tail -3 "fuzz/logs/$t.log"
done
echo
printf '%s\n' "${summary[@]}"
exit $crashed
