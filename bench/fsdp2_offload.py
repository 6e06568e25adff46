#!/usr/bin/env python3
"""Implements: the PyTorch peers of zinf's offload benchmarks (issue 5, 2a/2b).

Trains bench/train_reference.py's GPT (the same model as zinf's lib/model) on
one GPU in one of two ways and prints one JSON line:
  --mode fsdp2-offload  FSDP2 `fully_shard` on every block and the root, with
                        CPUOffloadPolicy (parameters, gradients and the
                        optimizer step on the CPU) and MixedPrecisionPolicy
                        (bf16 compute, fp32 reduce), world size 1 in a
                        single-process "cpu:gloo,cuda:nccl" group on localhost;
                        torch.optim.AdamW over the CPU-resident fp32 shards.
  --mode plain          plain in-GPU PyTorch: fp32 parameters under bf16
                        autocast, AdamW(fused=True), everything on the GPU.
Both accumulate --grad-accum micro-batches per optimizer step and clip the
global norm at 1.0. Reports mean step time, tokens/s and TFLOP/s (zinf's
formula) over the steps after --warmup, and peak GPU memory.

Usage: python3 bench/fsdp2_offload.py --mode fsdp2-offload --hidden-size 2048 --layers 24 \
           --heads 16 --seq-len 1024 --batch-size 8 --grad-accum 1 --steps 10
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_reference import GPT  # noqa: E402  (the same model as zinf's)


def fsdp2_api():
    try:  # torch >= 2.6
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard
    except ImportError:  # torch 2.4 / 2.5
        from torch.distributed._composable.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard
    return fully_shard, CPUOffloadPolicy, MixedPrecisionPolicy


def main():
    ap = argparse.ArgumentParser(description="PyTorch FSDP2-with-CPU-offload and plain in-GPU peers of zinf")
    ap.add_argument("--mode", choices=["fsdp2-offload", "plain"], required=True)
    ap.add_argument("--hidden-size", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--vocab-size", type=int, default=50304)
    ap.add_argument("--batch-size", type=int, default=8, help="micro-batch")
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--port", type=int, default=29533)
    args = ap.parse_args()
    assert torch.cuda.is_available(), "the peers run on CUDA"
    torch.manual_seed(1234)
    dev = torch.device("cuda", 0)
    torch.cuda.set_device(dev)

    if args.mode == "fsdp2-offload":
        dist.init_process_group("cpu:gloo,cuda:nccl", init_method=f"tcp://127.0.0.1:{args.port}", rank=0, world_size=1)
        fully_shard, CPUOffloadPolicy, MixedPrecisionPolicy = fsdp2_api()
        model = GPT(args.vocab_size, args.seq_len, args.hidden_size, args.layers, args.heads)  # built on the CPU
        policy = dict(offload_policy=CPUOffloadPolicy(pin_memory=True),
                      mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32))
        for block in model.blocks:
            fully_shard(block, **policy)
        fully_shard(model, **policy)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    else:
        model = GPT(args.vocab_size, args.seq_len, args.hidden_size, args.layers, args.heads).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                                fused=True)
    n_params = sum(p.numel() for p in model.parameters())

    tokens_per_step = args.batch_size * args.seq_len * args.grad_accum
    flops_per_token = 6 * (n_params - args.seq_len * args.hidden_size) + 12 * args.layers * args.hidden_size * args.seq_len
    torch.cuda.reset_peak_memory_stats(dev)
    times, losses = [], []
    for step in range(args.steps):
        t0 = time.perf_counter()
        total = 0.0
        for micro in range(args.grad_accum):
            idx = torch.randint(0, 256, (args.batch_size, args.seq_len + 1), device=dev)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.mode == "plain"):
                loss = model(idx[:, :-1], idx[:, 1:])
            (loss / args.grad_accum).backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(total) / args.grad_accum)  # syncs, as zinf's per-step loss read does
        times.append(time.perf_counter() - t0)
        print(f"step {step + 1}: loss {losses[-1]:.4f} {times[-1]:.3f}s", file=sys.stderr)
    timed = times[args.warmup:] if len(times) > args.warmup else times
    step_s = sum(timed) / len(timed)
    tps = tokens_per_step / step_s
    print(json.dumps({
        "impl": "pytorch-" + args.mode,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(dev),
        "parameters": n_params,
        "grad_accum": args.grad_accum,
        "tokens_per_step": tokens_per_step,
        "mean_step_s": step_s,
        "mean_tokens_per_s": tps,
        "mean_tflops": tps * flops_per_token / 1e12,
        "peak_gpu_bytes": torch.cuda.max_memory_allocated(dev),
        "final_loss": losses[-1],
    }))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
