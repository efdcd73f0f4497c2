"""Check masq artifacts with the reference ONNX tools.

usage: ort_check.py CASES.json
CASES.json: [{"onnx": path, "input": x.npy, "expected": y.npy, "tol": 1e-5}, ...]
For each case: onnx.checker.check_model(full_check=True), then onnxruntime on the input, compared
with the expected output (max |a - b| <= tol * max(1e-3, max |b|)). Prints one line per case and exits
non-zero when any case fails.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    cases = json.load(open(sys.argv[1]))
    failed = 0
    for c in cases:
        try:
            model = onnx.load(c["onnx"])
            onnx.checker.check_model(model, full_check=True)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            sess = ort.InferenceSession(c["onnx"], opts, providers=["CPUExecutionProvider"])
            names = [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]
            assert names == (["input"], ["logits"]), f"names {names}"
            x = np.load(c["input"])
            (y,) = sess.run(None, {"input": x})
            want = np.load(c["expected"])
            assert y.shape == want.shape, f"shape {y.shape} != {want.shape}"
            err = float(np.max(np.abs(y - want)))
            scale = max(1e-3, float(np.max(np.abs(want))))
            assert err <= c["tol"] * scale, f"max error {err} > {c['tol']} * {scale}"
            print(f"ok   {c['onnx']} max_err={err:.3g}")
        except Exception as e:  # report every case
            failed += 1
            print(f"FAIL {c['onnx']}: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
