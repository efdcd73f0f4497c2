#!/usr/bin/env python3
"""QDQ (quantized ONNX) fixtures and checks for masq's tests (runtime/tests/it/onnx_qdq.rs).

Two commands, both run with the project's Python (`.masq/python`, `make setup`):

  ort-quantized --out DIR [--seed 0]
      Builds a small float CNN with onnx.helper (Conv+bias -> Relu -> MaxPool -> Conv -> Relu ->
      GlobalAveragePool -> Flatten -> Gemm, input [1, 3, 8, 8], seeded random weights, opset 17),
      quantizes it with onnxruntime's own tool, `quantize_static(..., quant_format=QuantFormat.QDQ,
      weight_type=QInt8)`, for activation types QUInt8 and QInt8, each per tensor and per channel,
      calibrated (MinMax) on 8 seeded random images, and writes DIR/float.onnx,
      DIR/<case>.onnx, DIR/input.npy (a further seeded image) and, per model, the outputs of
      onnxruntime (see `run`). DIR/cases.json lists the cases:
      [{"name", "onnx", "input", "ort", "ort_optimized", "activation_type", "per_channel"}].

  check --out DIR MODEL.onnx INPUT.npy
      onnx.checker.check_model(full_check=True) on MODEL.onnx, then the outputs of `run` as
      DIR/<model stem>.ort.npy and DIR/<model stem>.ort_optimized.npy.

`run` evaluates a model with onnxruntime twice, on one thread: with graph optimisations disabled
(ORT_DISABLE_ALL), which evaluates every QuantizeLinear, DequantizeLinear and float op as the ONNX
spec defines them (the reference the tests compare masq's interpreter with), and with onnxruntime's
defaults (all optimisations), which fuse DequantizeLinear -> Conv -> QuantizeLinear into integer
kernels (QLinearConv) whose requantization may round differently; the tests report that one.

Prints one line per model and exits non-zero on any failure (2 on bad arguments).
"""

import argparse
import json
import logging
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnxruntime as ort


def float_model(seed):
    rng = np.random.default_rng(seed)

    def init(name, *shape, scale=1.0):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        init("w1", 8, 3, 3, 3, scale=0.3),
        init("b1", 8, scale=0.1),
        init("w2", 8, 8, 3, 3, scale=0.15),
        init("b2", 8, scale=0.1),
        init("fc_w", 10, 8, scale=0.4),
        init("fc_b", 10, scale=0.1),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def run(path, x):
    """(reference, optimized): onnxruntime without and with its graph optimisations."""
    outs = []
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.graph_optimization_level = level
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        outs.append(sess.run(None, {name: x})[0])
    return outs


def write_outputs(out_dir, model_path, x):
    stem = os.path.splitext(os.path.basename(model_path))[0]
    reference, optimized = run(model_path, x)
    paths = (os.path.join(out_dir, f"{stem}.ort.npy"), os.path.join(out_dir, f"{stem}.ort_optimized.npy"))
    np.save(paths[0], reference)
    np.save(paths[1], optimized)
    gap = float(np.max(np.abs(reference - optimized)))
    return paths, gap


def ort_quantized(out_dir, seed):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process the model first

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(seed + 1)
            self.data = iter([{"input": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.data, None)

    os.makedirs(out_dir, exist_ok=True)
    float_path = os.path.join(out_dir, "float.onnx")
    onnx.save(float_model(seed), float_path)
    x = np.random.default_rng(seed + 2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    input_path = os.path.join(out_dir, "input.npy")
    np.save(input_path, x)
    cases = []
    for act_name, act in (("quint8", QuantType.QUInt8), ("qint8", QuantType.QInt8)):
        for per_channel in (False, True):
            name = f"qdq_{act_name}_{'per_channel' if per_channel else 'per_tensor'}"
            path = os.path.join(out_dir, f"{name}.onnx")
            quantize_static(
                float_path,
                path,
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=act,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
            )
            onnx.checker.check_model(onnx.load(path), full_check=True)
            (reference, optimized), gap = write_outputs(out_dir, path, x)
            ops = sorted({n.op_type for n in onnx.load(path).graph.node})
            print(f"ok   {name}: ops {ops}, onnxruntime optimized vs not: max |diff| {gap:.3g}")
            cases.append(
                {
                    "name": name,
                    "onnx": path,
                    "input": input_path,
                    "ort": reference,
                    "ort_optimized": optimized,
                    "activation_type": act_name,
                    "per_channel": per_channel,
                }
            )
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)


def check(out_dir, model_path, input_path):
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    x = np.load(input_path)
    _, gap = write_outputs(out_dir, model_path, x)
    print(f"ok   {model_path}: onnx.checker (full) passed, onnxruntime optimized vs not: max |diff| {gap:.3g}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("ort-quantized")
    q.add_argument("--out", required=True)
    q.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("check")
    c.add_argument("--out", required=True)
    c.add_argument("model")
    c.add_argument("input")
    args = p.parse_args()
    try:
        if args.cmd == "ort-quantized":
            ort_quantized(args.out, args.seed)
        else:
            check(args.out, args.model, args.input)
    except Exception as e:  # one line the test can show
        print(f"FAIL {args.cmd}: {type(e).__name__}: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
