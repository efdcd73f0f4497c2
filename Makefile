# masq: the two commands users need are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup build test demo demo-2pc three-hosts bench torchvision prune-experiments quant-experiments fault-trials serve-load fuzz fmt clippy clean-env

# One idempotent set-up: the Python environment with libtorch and libonnxruntime, cached under
# ~/.cache/masq keyed by the pinned versions (a second run takes seconds).
setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release

# Set-up if needed, then the whole test suite (unit, property, integration and end-to-end tests).
# Benches are compiled and run once each as smoke tests first; the last command is the test run
# proper (unit, property, integration, end-to-end and doc tests, one build profile for all).
test: setup
	$(CARGO) test --workspace --benches --no-fail-fast
	$(CARGO) test --workspace --no-fail-fast

# The main job: train a small CNN on the built-in synthetic set, cut its ReLUs to three budgets
# (AutoReP and random), export each, evaluate in the clear and under 2PC; table on stdout, artifacts,
# summary.json and plots in $(DEMO_OUT). DEMO_ARGS adds flags (e.g. --quick, or --dataset mnist --data DIR).
DEMO_OUT ?= masq-demo
DEMO_ARGS ?=
demo: build
	./target/release/masq demo --out $(DEMO_OUT) $(DEMO_ARGS)

# Encrypted inference between two real processes: deal K=5, serve in the background, 3 queries, then one each through a LAN- and a WAN-shaped `masq relay`
# (CIFAR-10 test images if $$MASQ_DATA_DIR/cifar10 exists), measured vs estimated figures.
# DEMO_MODEL=path/to/artifact-dir picks another model (default zoo:resnet20, random weights).
demo-2pc: build
	@bash scripts/demo_2pc.sh

# The dealer, the server (P0) and the client (P1) as three hosts: Linux network namespaces on a bridge
# (needs root and `ip netns`; prints "skipped: ..." otherwise), mutual TLS from one `masq keygen`,
# QUERIES queries (default 3) each unshaped and through `masq relay` on every link as LAN and WAN:
# measured online seconds beside the cost model's estimate, answers checked against plaintext
# (scripts/three_hosts.sh; MODEL=zoo:resnet20 by default, CIFAR-10 images if $$MASQ_DATA_DIR/cifar10).
# THREE_HOSTS_ARGS=--require-netns makes a skip a failure. `cargo test --test it three_hosts` is the test.
THREE_HOSTS_ARGS ?=
three-hosts: build
	@bash scripts/three_hosts.sh $(THREE_HOSTS_ARGS)

bench: build
	$(CARGO) bench -p masq-mpc

# torchvision's classification models (random weights) exported by torch's default (dynamo) and
# legacy (opsets 13, 17) ONNX exporters, run by masq in the clear (224x224) and under 2PC (32x32)
# against onnxruntime, estimate vs measured (tests/it/torchvision.rs, scripts/torchvision_export.py).
# Prints the table and writes it to $(TORCHVISION_OUT). TORCHVISION_MODELS=resnet18,vgg11_bn picks models.
# `cargo test --test it torchvision` alone runs the fast CI slice.
TORCHVISION_MODELS ?= all
TORCHVISION_OUT ?= docs/TORCHVISION.md
torchvision: setup
	MASQ_TORCHVISION=$(TORCHVISION_MODELS) MASQ_TORCHVISION_OUT=$(abspath $(TORCHVISION_OUT)) \
	  $(CARGO) test --release --test it torchvision -- --nocapture

# The README's pruning figures on real CIFAR-10 (needs MASQ_DATA_DIR, and MASQ_MODELS_DIR for the
# Rotated ReLU run on the pretrained ResNet-20): the filter-sparsity table (sa, mag, magsign, snip,
# random at 50% and 70% on cnn_small), Rotated ReLU, and prune-then-reduce. About an hour on 2 cores;
# JSON Lines per run in $(PRUNE_OUT). See scripts/prune_experiments.sh for the knobs.
PRUNE_OUT ?= runs/prune-experiments
prune-experiments: build
	OUT=$(PRUNE_OUT) bash scripts/prune_experiments.sh

# The README's sparse and few-bit figures (reweighted L1, quantization, 2PC); about an hour here.
QUANT_OUT ?= runs/quant-experiments
quant-experiments: build
	OUT=$(QUANT_OUT) bash scripts/quant_experiments.sh

# kill -9 of `masq deal`, `masq serve`, `masq query`, `masq train` and `masq export` at random points, TRIALS each,
# and the rules that must hold afterwards (scripts/fault_trials.sh; FAULT_SECTIONS="deal train" runs
# some). About 6 minutes here.
TRIALS ?= 20
fault-trials: build
	TRIALS=$(TRIALS) bash scripts/fault_trials.sh

# `masq serve` under MASQ_SERVE_CLIENTS concurrent clients (the make test slice runs 8): all served
# or refused busy, no slot used twice, the server's peak RSS printed.
MASQ_SERVE_CLIENTS ?= 20
serve-load: setup
	MASQ_SERVE_CLIENTS=$(MASQ_SERVE_CLIENTS) $(CARGO) test --test it serve_concurrency::many_clients -- --nocapture

# libFuzzer campaigns of fuzz/ (cargo-fuzz, installed under .masq/cargo), FUZZ_SECONDS per target;
# the counts of the last campaign are in docs/FUZZING.md. Crashing inputs kept in fuzz/regressions/
# are replayed by `make test` (tests/it/fuzz_regressions.rs).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets
