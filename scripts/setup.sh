#!/usr/bin/env bash
# Create (or reuse) the Python environment that provides masq's two native libraries:
#   libtorch       from PyPI torch==$TORCH_VERSION        (for tch / masq-trainer)
#   libonnxruntime from PyPI onnxruntime==$ORT_VERSION    (for ort load-dynamic / masq-runtime)
# plus `onnx` and `numpy` for cross-checks and test fixtures.
#
# The environment lives outside the checkout, under ${MASQ_CACHE:-~/.cache/masq}, in a folder
# keyed by the pinned versions, so a second run (or a second checkout) reuses it in seconds.
# Inside the checkout, `.masq/` holds symlinks to it that `.cargo/config.toml` refers to.
set -euo pipefail

TORCH_VERSION=2.13.0
ORT_VERSION=1.31.1
ONNX_VERSION=1.19.1
NUMPY_VERSION=2.3.4
# Test-fixture extras (torchvision models and the default torch.onnx exporter), installed into the
# same environment under their own stamp so that adding them does not re-download torch.
TORCHVISION_VERSION=0.28.0
ONNXSCRIPT_VERSION=0.7.2

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${MASQ_CACHE:-$HOME/.cache/masq}
key="py$(python3 -c 'import sys;print(f"{sys.version_info[0]}{sys.version_info[1]}")')-torch${TORCH_VERSION}-ort${ORT_VERSION}-onnx${ONNX_VERSION}-np${NUMPY_VERSION}"
venv="$cache/$key"
stamp="$venv/.masq-complete"

if [ ! -f "$stamp" ]; then
  echo "masq setup: creating Python environment $venv (one-time; torch is a large download)" >&2
  rm -rf "$venv.tmp"
  mkdir -p "$cache"
  python3 -m venv "$venv.tmp"
  "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check \
    "torch==$TORCH_VERSION" "onnxruntime==$ORT_VERSION" "onnx==$ONNX_VERSION" "numpy==$NUMPY_VERSION"
  # venvs hard-code their own path in scripts; build in .tmp, then rebuild in place is costly,
  # so we only rely on bin/python (a symlink) and site-packages, which are path-independent.
  rm -rf "$venv"
  mv "$venv.tmp" "$venv"
  touch "$stamp"
fi

py="$venv/bin/python"
extras="$venv/.masq-extras-tv${TORCHVISION_VERSION}-onnxscript${ONNXSCRIPT_VERSION}"
if [ ! -f "$extras" ]; then
  echo "masq setup: adding torchvision $TORCHVISION_VERSION and onnxscript $ONNXSCRIPT_VERSION" >&2
  "$py" -m pip install --quiet --disable-pip-version-check \
    "torchvision==$TORCHVISION_VERSION" "onnxscript==$ONNXSCRIPT_VERSION" \
    "torch==$TORCH_VERSION" "onnxruntime==$ORT_VERSION" "onnx==$ONNX_VERSION" "numpy==$NUMPY_VERSION"
  touch "$extras"
fi
site=$("$py" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
ortlib=$(ls "$site"/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1 || true)
[ -d "$site/torch/lib" ] || { echo "masq setup: $site/torch/lib missing; delete $venv and rerun" >&2; exit 1; }
[ -n "$ortlib" ] || { echo "masq setup: libonnxruntime.so not found under $site/onnxruntime/capi; delete $venv and rerun" >&2; exit 1; }

mkdir -p "$root/.masq"
ln -sfn "$venv" "$root/.masq/venv"
ln -sfn "$site/torch" "$root/.masq/libtorch"
ln -sfn "$ortlib" "$root/.masq/libonnxruntime.so"
# A wrapper, not a symlink: Python recognises its venv only when started by the venv's own path.
rm -f "$root/.masq/python"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$py" > "$root/.masq/python"
chmod +x "$root/.masq/python"
echo "masq setup: ready ($key)" >&2
