#!/usr/bin/env python3
"""Export torchvision classification models to ONNX as test fixtures for masq (issue #14).

Each case is MODEL:EXPORTER:OPSET:SIZE:BATCH, e.g. `resnet18:dynamo:default:64:1` or
`vit_b_16:legacy:13:224:1`:

  MODEL     a torchvision.models classification builder (resnet18, mobilenet_v3_small, ...),
            built with weights=None (random initialisation) under a seed from (SEED, MODEL), its
            BatchNorm statistics calibrated on 8 random images of the case's size (see
            calibrate_batchnorm), all-zero Linear weights (vit's head) made random (see
            reinit_zero_linears), then in eval mode
  EXPORTER  `dynamo` (torch.onnx.export's default, dynamo=True, weights in model.onnx.data) or
            `legacy` (dynamo=False, weights inside model.onnx)
  OPSET     an opset number, or `default` (the exporter's own default)
  SIZE      the input's height and width (the input is [BATCH, 3, SIZE, SIZE])
  BATCH     images per input

For every case the script writes into OUT/<case id>/: model.onnx (and model.onnx.data for the
dynamo exporter), input.npy (standard-normal, seeded) and torch.npy (torch's own output on it),
and it writes OUT/manifest.json (or --manifest NAME) listing all cases in order with their
status: "ok", or "torch cannot export" with torch's error (e.g. the legacy exporter has no opset-13 lowering of
scaled_dot_product_attention, which vit_b_16 needs), or "torch cannot run" where the model rejects
the input size. The script never fails because one case does; it exits 2 on bad arguments.

Everything is deterministic: the weights depend on (SEED, MODEL) only, the BatchNorm statistics
on (SEED, MODEL, SIZE), the input on (SEED, SIZE, BATCH). A case whose folder already holds a complete export by the same EXPORT_VERSION of this
script, torch and torchvision versions and seed (its `case.json`) is reused, unless --force is given.

Usage: .masq/python scripts/torchvision_export.py --out DIR [--seed 0] [--force] [--manifest NAME] CASE...
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import traceback
import warnings

# Bump when a change to this script changes what it writes: cached cases of another version are
# exported again. MODEL_REVISIONS does the same for one model's cases (a change to its recipe).
EXPORT_VERSION = 3
MODEL_REVISIONS = {"vit_b_16": 1}  # 1: zero-initialised head replaced (see reinit_zero_linears)


def parse_case(text):
    parts = text.split(":")
    if len(parts) != 5:
        raise ValueError(f"{text!r}: expected MODEL:EXPORTER:OPSET:SIZE:BATCH")
    model, exporter, opset, size, batch = parts
    if exporter not in ("dynamo", "legacy"):
        raise ValueError(f"{text!r}: exporter must be dynamo or legacy, not {exporter!r}")
    if opset != "default" and not opset.isdigit():
        raise ValueError(f"{text!r}: opset must be a number or 'default', not {opset!r}")
    if not size.isdigit() or int(size) < 1 or not batch.isdigit() or int(batch) < 1:
        raise ValueError(f"{text!r}: size and batch must be positive integers")
    return {
        "model": model,
        "exporter": exporter,
        "opset": None if opset == "default" else int(opset),
        "size": int(size),
        "batch": int(batch),
    }


def case_id(c):
    opset = "default" if c["opset"] is None else str(c["opset"])
    return f"{c['model']}-{c['exporter']}-{opset}-{c['size']}x{c['size']}-b{c['batch']}"


def model_seed(seed, name):
    # Independent of the case's other fields, so one model has the same weights in every export.
    h = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def short_error(e):
    text = str(e).split(" Please feel free to request support")[0].split("[Caused by")[0]
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    msg = f"{type(e).__name__}: {lines[0] if lines else ''}"
    # The dynamo exporter wraps the cause; keep the most specific line that names it.
    for l in lines[1:]:
        if "Error" in l or "not supported" in l or "Unsupported" in l:
            msg += f" ({l[:300]})"
            break
    return msg[:600]


def reinit_zero_linears(model, std=0.02):
    """Give Linear layers initialised to all-zero weights (vit_b_16's classification head) seeded
    normal(0, std) weights: a zero head makes every logit equal to its bias, zero, whatever the
    input, and any comparison vacuous. Returns the names of the layers changed."""
    import torch

    names = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and not m.weight.detach().any():
            with torch.no_grad():
                m.weight.normal_(0.0, std)
            names.append(name)
    return names


def calibrate_batchnorm(model, size, seed, images=8):
    """Set BatchNorm's running statistics from one train-mode pass over random images.

    Freshly initialised BatchNorm layers have mean 0 and variance 1, so in eval mode they pass
    activations through unnormalised and a random-weight network's logits shrink or grow layer by
    layer (mobilenet_v3_small's come out near 1e-10): meaningless in 16-bit fixed point. One
    calibration pass (cumulative averages of the batch statistics) gives every BatchNorm layer
    unit-variance outputs, as in a trained network. The weights stay the random initialisation.
    Returns whether the model has BatchNorm layers.
    """
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    g = torch.Generator().manual_seed(seed * 1_000_003 + size * 31 + 7_777)
    x = torch.randn(images, 3, size, size, generator=g)
    model.train()
    with torch.no_grad():
        model(x)
    return True


def onnx_opset(path):
    import onnx

    m = onnx.load(path, load_external_data=False)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def export_case(c, out_dir, seed, stamp, force):
    import numpy as np
    import torch
    import torchvision

    cid = case_id(c)
    d = os.path.join(out_dir, cid)
    entry = dict(c)
    entry["id"] = cid
    entry["dir"] = cid
    if c["model"] in MODEL_REVISIONS:
        stamp = f"{stamp}-r{MODEL_REVISIONS[c['model']]}"
    stamp_path = os.path.join(d, "case.json")
    if not force and os.path.isfile(stamp_path):
        try:
            with open(stamp_path) as f:
                old = json.load(f)
            if old.get("stamp") == stamp and old.get("status"):
                old["reused"] = True
                return old
        except (OSError, ValueError):
            pass
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    entry["stamp"] = stamp
    t0 = time.time()
    try:
        builder = torchvision.models.get_model_builder(c["model"])
    except Exception as e:  # noqa: BLE001 - recorded, not raised
        entry.update(status="unknown model", error=short_error(e))
        return finish(entry, stamp_path)
    torch.manual_seed(model_seed(seed, c["model"]))
    kwargs = {"weights": None}
    if c["model"] == "googlenet":
        kwargs.update(aux_logits=False, init_weights=True)
    if c["model"] == "inception_v3":
        kwargs.update(aux_logits=False, init_weights=True)
    model = builder(**kwargs)
    entry["reinitialised"] = reinit_zero_linears(model)
    entry["bn_calibrated"] = calibrate_batchnorm(model, c["size"], seed)
    model.eval()
    g = torch.Generator().manual_seed(seed * 1_000_003 + c["size"] * 31 + c["batch"])
    x = torch.randn(c["batch"], 3, c["size"], c["size"], generator=g)
    try:
        with torch.no_grad():
            y = model(x)
    except Exception as e:  # noqa: BLE001
        entry.update(status="torch cannot run", error=short_error(e))
        return finish(entry, stamp_path)
    np.save(os.path.join(d, "input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(d, "torch.npy"), y.detach().numpy().astype(np.float32))
    path = os.path.join(d, "model.onnx")
    # The exporters print graphs and diagnostics on stdout (partly from C++): into export.log.
    log = open(os.path.join(d, "export.log"), "w")
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(log.fileno(), 1)
    try:
        # Not under torch.no_grad(): without autograd nn.MultiheadAttention takes its fused fast path
        # (aten::_native_multi_head_attention), which the legacy exporter has no lowering for at any
        # opset; with it, attention is scaled_dot_product_attention (opset >= 14), as users export it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if c["exporter"] == "dynamo":
                # torch.onnx.export's defaults: dynamo=True, external_data=True, optimize=True.
                torch.onnx.export(
                    model,
                    (x,),
                    path,
                    dynamo=True,
                    opset_version=c["opset"],
                    input_names=["input"],
                    output_names=["logits"],
                    verbose=False,
                )
            else:
                torch.onnx.export(
                    model,
                    (x,),
                    path,
                    dynamo=False,
                    opset_version=c["opset"],
                    input_names=["input"],
                    output_names=["logits"],
                )
    except Exception as e:  # noqa: BLE001
        restore_stdout(saved_stdout, log)
        entry.update(status="torch cannot export", error=short_error(e))
        for f in ("model.onnx", "model.onnx.data"):
            if os.path.exists(os.path.join(d, f)):
                os.remove(os.path.join(d, f))
        return finish(entry, stamp_path)
    restore_stdout(saved_stdout, log)
    entry.update(
        status="ok",
        onnx_opset=onnx_opset(path),
        external_data=os.path.exists(path + ".data"),
        input_shape=list(x.shape),
        output_shape=list(y.shape),
        torch_output_max_abs=float(y.abs().max()),
        export_seconds=round(time.time() - t0, 2),
    )
    return finish(entry, stamp_path)


def restore_stdout(saved, log):
    sys.stdout.flush()
    os.dup2(saved, 1)
    os.close(saved)
    log.close()


def finish(entry, stamp_path):
    with open(stamp_path + ".tmp", "w") as f:
        json.dump(entry, f, indent=1)
    os.replace(stamp_path + ".tmp", stamp_path)
    entry["reused"] = False
    return entry


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="re-export cases already in OUT")
    ap.add_argument("--manifest", default="manifest.json", help="the manifest's file name in OUT")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("cases", nargs="+", metavar="CASE", help="MODEL:EXPORTER:OPSET:SIZE:BATCH")
    a = ap.parse_args()
    try:
        cases = [parse_case(t) for t in a.cases]
    except ValueError as e:
        print(f"torchvision_export: {e}", file=sys.stderr)
        return 2
    try:
        import torch
        import torchvision
        import onnx  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as e:
        print(f"torchvision_export: missing Python package ({e}); run `make setup`", file=sys.stderr)
        return 3
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.makedirs(a.out, exist_ok=True)
    stamp = f"v{EXPORT_VERSION}-torch{torch.__version__}-tv{torchvision.__version__}-seed{a.seed}"
    entries = []
    for c in cases:
        try:
            e = export_case(c, a.out, a.seed, stamp, a.force)
        except Exception as ex:  # noqa: BLE001 - never lose the manifest over one case
            traceback.print_exc()
            e = dict(c, id=case_id(c), dir=case_id(c), status="script error", error=short_error(ex))
        print(
            f"torchvision_export: {e['id']}: {e['status']}"
            + (" (cached)" if e.get("reused") else "")
            + (f": {e['error']}" if e.get("error") else ""),
            file=sys.stderr,
            flush=True,
        )
        entries.append(e)
    manifest = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "seed": a.seed,
        "cases": entries,
    }
    path = os.path.join(a.out, a.manifest)
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(path + ".tmp", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
