#!/usr/bin/env bash
# Writes the seed corpus of the fuzz targets into fuzz/seeds/<target>/ (or into $1): small valid
# inputs made by masq's own writers (fuzz/src/bin/fuzz_corpus.rs), so each campaign starts deep in
# its decoder. Deterministic except for timestamps, nonces and timings inside the files.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/fuzz/seeds}
cd "$root"
${CARGO:-cargo} build --release --quiet --manifest-path fuzz/Cargo.toml --no-default-features --features corpus \
    --bin fuzz_corpus
rm -rf "$out"
fuzz/target/release/fuzz_corpus "$out"
