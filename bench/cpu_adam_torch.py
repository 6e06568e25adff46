#!/usr/bin/env python3
"""bench: PyTorch's own CPU AdamW, the baseline for zinf's CPU Adam.

Implements: params/s of torch.optim.AdamW on CPU for N parameters (default
100M), as one flat tensor and as a list of per-layer tensors (GPT-style block
shapes, d = 1024, the same split bench_cpu_adam uses), with foreach=True (the
baseline named in issue 5), foreach=False, and fused=True where this PyTorch
has a CPU fused AdamW (2.4+). Prints one JSON object. Run it on the same host
and with the same thread count as bench_cpu_adam:

    python3 bench/cpu_adam_torch.py --n 100000000 --threads 16
"""
import argparse
import json
import platform
import statistics
import time

import torch


def layer_sizes(n, d=1024):
    block = [d, d, 3 * d * d, 3 * d, d * d, d, d, d, 4 * d * d, 4 * d, 4 * d * d, d]
    sizes, used = [], 0
    while used < n:
        for s in block:
            take = min(s, n - used)
            if take <= 0:
                break
            sizes.append(take)
            used += take
    return sizes


def bench(sizes, steps, **opts):
    params = []
    for s in sizes:
        p = torch.full((s,), 0.5, requires_grad=True)
        p.grad = torch.full((s,), 0.01)
        params.append(p)
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, **opts)
    opt.step()  # warm-up: allocates the state
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    n = sum(sizes)
    del opt, params
    return n / statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000_000, help="parameters")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median reported) after one warm-up")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0 = leave PyTorch's default")
    args = ap.parse_args()
    if args.n <= 0 or args.steps <= 0 or args.threads < 0:
        ap.error("--n and --steps must be > 0, --threads >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    out = {
        "bench": "cpu_adam_torch",
        "n": args.n,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }
    layers = layer_sizes(args.n)
    out["layers"] = len(layers)
    for name, opts in [("foreach", {"foreach": True}), ("forloop", {"foreach": False}), ("fused", {"fused": True})]:
        for shape, sizes in [("flat", [args.n]), ("layers", layers)]:
            key = f"torch_{name}_{shape}_params_per_s"
            try:
                out[key] = bench(sizes, args.steps, **opts)
            except (RuntimeError, TypeError, ValueError) as e:  # fused on CPU needs PyTorch 2.4+
                out[key] = None
                out[f"torch_{name}_error"] = str(e).splitlines()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
