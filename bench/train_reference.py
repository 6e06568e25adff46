#!/usr/bin/env python3
"""Implements: the plain PyTorch eager reference for zinf's training speed.

The same GPT-style decoder as zinf's lib/model (pre-LayerNorm, causal
self-attention through F.scaled_dot_product_attention, tanh-GELU MLP, learned
positions, LM head tied to the token embedding, GPT-2 initialisation) trained
the way zinf trains with stage none on CUDA: bf16 parameters, activations and
gradients, fp32 master weights, torch.optim.AdamW(fused=True) over the
masters, global-norm clipping at 1.0, loss computed in fp32. With --autocast
it instead keeps fp32 parameters under torch.autocast(bf16), the other common
recipe. Prints one JSON line: tokens/s (mean over the steps after --warmup),
peak GPU memory, the model's parameter count and TFLOP/s by zinf's formula
(6 * matmul parameters + 12 * layers * hidden * seq_len per token).

Usage: python3 bench/train_reference.py --hidden-size 768 --layers 12 --heads 12 \
           --seq-len 1024 --vocab-size 50304 --batch-size 8 --steps 30
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, h, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(h)
        self.c_attn = nn.Linear(h, 3 * h)
        self.c_proj = nn.Linear(h, h)
        self.ln_2 = nn.LayerNorm(h)
        self.c_fc = nn.Linear(h, 4 * h)
        self.mlp_proj = nn.Linear(4 * h, h)

    def forward(self, x):
        B, T, H = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(H, dim=2)
        q, k, v = (t.view(B, T, self.heads, H // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, H))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, seq_len, h, layers, heads):
        super().__init__()
        self.wte = nn.Embedding(vocab, h)
        self.wpe = nn.Embedding(seq_len, h)
        self.blocks = nn.ModuleList(Block(h, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(h)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "ln_" in name:
                nn.init.ones_(p)
            else:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe.weight[:T]
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied head
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))


def main():
    ap = argparse.ArgumentParser(description="plain PyTorch eager reference of zinf's GPT training step")
    ap.add_argument("--hidden-size", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--vocab-size", type=int, default=50304)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=2, help="steps left out of the mean (zinf leaves out 2)")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--autocast", action="store_true", help="fp32 parameters + bf16 autocast instead of bf16 parameters")
    args = ap.parse_args()
    assert torch.cuda.is_available(), "the reference runs on CUDA"
    torch.manual_seed(1234)
    dev = torch.device("cuda")
    model = GPT(args.vocab_size, args.seq_len, args.hidden_size, args.layers, args.heads).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    if args.autocast:
        params = list(model.parameters())
        master = params
    else:
        master = [p.detach().clone().float().requires_grad_(True) for p in model.parameters()]
        model = model.to(torch.bfloat16)
        params = list(model.parameters())
    opt = torch.optim.AdamW(master, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, fused=True)

    tokens_per_step = args.batch_size * args.seq_len
    flops_per_token = 6 * (n_params - args.seq_len * args.hidden_size) + 12 * args.layers * args.hidden_size * args.seq_len
    torch.cuda.reset_peak_memory_stats(dev)
    times, losses = [], []
    for step in range(args.steps):
        idx = torch.randint(0, 256, (args.batch_size, args.seq_len + 1), device=dev)
        t0 = time.perf_counter()
        if args.autocast:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(idx[:, :-1], idx[:, 1:])
        else:
            loss = model(idx[:, :-1], idx[:, 1:])
        loss.backward()
        if not args.autocast:
            for m, p in zip(master, params):
                m.grad = p.grad.float()
                p.grad = None
        torch.nn.utils.clip_grad_norm_(master, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if not args.autocast:
            with torch.no_grad():
                torch._foreach_copy_(params, master)
        losses.append(loss.item())  # syncs, as zinf's per-step loss read does
        times.append(time.perf_counter() - t0)
    timed = times[args.warmup:] if len(times) > args.warmup else times
    tps = tokens_per_step * len(timed) / sum(timed)
    print(json.dumps({
        "impl": "pytorch-eager" + ("-autocast" if args.autocast else "-bf16-fp32-master"),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(dev),
        "parameters": n_params,
        "tokens_per_step": tokens_per_step,
        "mean_tokens_per_s": tps,
        "mean_tflops": tps * flops_per_token / 1e12,
        "peak_gpu_bytes": torch.cuda.max_memory_allocated(dev),
        "final_loss": losses[-1],
    }))


if __name__ == "__main__":
    main()
