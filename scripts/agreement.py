"""Prints one 2PC run against its plaintext run: equal predictions, top-1 on the CIFAR-10 labels,
logit error, online and dealer bytes per image, rounds, seconds. Usage:
agreement.py LABELS.bin.gz MPC.json PLAIN.json (the last JSON lines of `masq run --json`)."""
import gzip
import json
import sys

labels_file, mpc_file, plain_file = sys.argv[1:4]
labels = list(gzip.open(labels_file).read()[::3073])
s, p = json.load(open(mpc_file)), json.load(open(plain_file))
ps, pp = s["predictions"], p["predictions"]
n = len(ps)
print(json.dumps({
    "run": mpc_file,
    "images": n,
    "equal_predictions": sum(a == b for a, b in zip(ps, pp)),
    "secure_correct": sum(a == l for a, l in zip(ps, labels)),
    "plain_correct": sum(a == l for a, l in zip(pp, labels)),
    "max_abs_error": s["max_abs_error"],
    "range_overflows": s["range_overflows"],
    "online_bytes_per_image": s["online_bytes"] / n,
    "dealer_bytes_per_image": s["offline_bytes"] / n,
    "rounds": s["rounds"],
    "online_seconds": s["seconds"],
    "offline_seconds": s["offline_seconds"],
}))
