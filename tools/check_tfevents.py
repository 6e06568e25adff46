#!/usr/bin/env python3
"""Check zinf's TensorBoard events with TensorBoard's own reader.

usage: tools/check_tfevents.py TB_DIR RUN_DIR/metrics.jsonl

Loads TB_DIR with tensorboard's EventAccumulator and checks that every number
of every metrics.jsonl line is there under the tag zinf gives it
(docs/monitoring.md), equal as a float32. Exits 0 when all match, 1 on a
mismatch, 2 when the tensorboard package is missing.
"""
import json
import struct
import sys


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def expected(lines, batch):
    want = {}
    for l in lines:
        step = l["step"]
        for k, v in l.items():
            if k == "step" or isinstance(v, bool) or isinstance(v, str):
                continue
            ds = {"loss": "Train/Samples/train_loss", "lr": "Train/Samples/lr", "loss_scale": "Train/Samples/loss_scale"}
            if k in ds:
                want[(ds[k], "samples:" + k, step)] = v
            elif isinstance(v, dict):
                for sk, sv in v.items():
                    if isinstance(sv, (int, float)) and not isinstance(sv, bool):
                        want[("zinf/%s/%s" % (k, sk), step, step)] = sv
            elif isinstance(v, (int, float)):
                want[("zinf/" + k, step, step)] = v
    return want


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        print("tensorboard is not installed (pip install tensorboard)")
        return 2
    lines = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
    acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    bad = 0
    for (tag, x, step), v in sorted(expected(lines, None).items(), key=str):
        if tag not in tags:
            print("missing tag", tag)
            bad += 1
            continue
        events = acc.Scalars(tag)
        if isinstance(x, str):  # Train/Samples/*: x is the sample count; match the n-th line that has the key
            key = x.split(":", 1)[1]
            idx = [l["step"] for l in lines if key in l].index(step)
            ordered = sorted(events, key=lambda e: e.step)
            got = ordered[idx].value if idx < len(ordered) else None
        else:
            got = next((e.value for e in events if e.step == x), None)
        if got is None or f32(got) != f32(v):
            print("mismatch", tag, "step", step, "want", v, "got", got)
            bad += 1
    print("checked %d scalars, %d problems" % (len(expected(lines, None)), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
