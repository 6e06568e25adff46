#!/usr/bin/env python3
"""Implements: the PyTorch peers of zinf's Llama training speed (issue 16).

Two implementations of one training step on the same Llama shapes, with the
recipe zinf's stage none runs on CUDA: bf16 parameters, activations and
gradients, fp32 master weights, torch.optim.AdamW(fused=True) over the
masters, global-norm clipping at 1.0, loss in fp32.
  --impl plain          a minimal Llama (RMSNorm, RoPE, GQA, SwiGLU) through
                        F.scaled_dot_product_attention: what plain PyTorch does
  --impl transformers   transformers' LlamaForCausalLM (attn_implementation sdpa)
Prints one JSON line: mean tokens/s after --warmup steps, peak GPU memory,
parameters, TFLOP/s by zinf's formula (6 * matmul parameters +
12 * layers * hidden * seq_len per token).
Also `--make-model DIR`: save a randomly initialised LlamaForCausalLM of
these shapes (bf16 safetensors, 2 GB shards) for `zinf train --from-pretrained`.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def rms_norm(x, w, eps):
    f = x.float()
    return w * (f * torch.rsqrt(f.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        h, hd = a.hidden_size, a.hidden_size // a.heads
        self.a, self.hd = a, hd
        self.ln1 = nn.Parameter(torch.ones(h))
        self.q = nn.Linear(h, a.heads * hd, bias=False)
        self.k = nn.Linear(h, a.kv_heads * hd, bias=False)
        self.v = nn.Linear(h, a.kv_heads * hd, bias=False)
        self.o = nn.Linear(a.heads * hd, h, bias=False)
        self.ln2 = nn.Parameter(torch.ones(h))
        self.gate = nn.Linear(h, a.intermediate_size, bias=False)
        self.up = nn.Linear(h, a.intermediate_size, bias=False)
        self.down = nn.Linear(a.intermediate_size, h, bias=False)

    def forward(self, x, cos, sin):
        a, B, T = self.a, x.shape[0], x.shape[1]
        h = rms_norm(x, self.ln1, 1e-5)
        q = self.q(h).view(B, T, a.heads, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, a.kv_heads, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, a.kv_heads, self.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=a.kv_heads != a.heads)
        x = x + self.o(y.transpose(1, 2).reshape(B, T, -1))
        m = rms_norm(x, self.ln2, 1e-5)
        return x + self.down(F.silu(self.gate(m)) * self.up(m))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab_size, a.hidden_size)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = nn.Parameter(torch.ones(a.hidden_size))
        self.head = nn.Linear(a.hidden_size, a.vocab_size, bias=False)
        hd = a.hidden_size // a.heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
        f = torch.outer(torch.arange(a.seq_len).float(), inv)
        e = torch.cat((f, f), -1)
        self.register_buffer("cos", e.cos(), persistent=False)
        self.register_buffer("sin", e.sin(), persistent=False)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, targets):
        x = self.embed(idx)
        cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
        for b in self.blocks:
            x = b(x, cos, sin)
        logits = self.head(rms_norm(x, self.norm, 1e-5))
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))


def hf_config(a):
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=a.vocab_size, hidden_size=a.hidden_size, intermediate_size=a.intermediate_size,
                       num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                       max_position_embeddings=max(a.seq_len, 2048), rms_norm_eps=1e-5, tie_word_embeddings=False)


class HfLlama(nn.Module):
    def __init__(self, a):
        super().__init__()
        from transformers import LlamaForCausalLM
        self.m = LlamaForCausalLM._from_config(hf_config(a), attn_implementation="sdpa")

    def forward(self, idx, targets):
        logits = self.m(input_ids=idx).logits
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description="PyTorch peers of zinf's Llama training step")
    ap.add_argument("--impl", choices=["plain", "transformers"], default="plain")
    ap.add_argument("--hidden-size", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=16)
    ap.add_argument("--intermediate-size", type=int, default=5632)
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--make-model", metavar="DIR", help="save a random LlamaForCausalLM of these shapes and exit")
    a = ap.parse_args()
    torch.manual_seed(1234)
    if a.make_model:
        from transformers import LlamaForCausalLM
        m = LlamaForCausalLM(hf_config(a)).to(torch.bfloat16)
        m.save_pretrained(a.make_model, safe_serialization=True, max_shard_size="2GB")
        print(json.dumps({"saved": a.make_model, "parameters": sum(p.numel() for p in m.parameters())}))
        return
    dev = torch.device("cuda")
    model = (Llama(a) if a.impl == "plain" else HfLlama(a)).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    master = [p.detach().clone().float().requires_grad_(True) for p in model.parameters()]
    model = model.to(torch.bfloat16)
    params = list(model.parameters())
    opt = torch.optim.AdamW(master, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, fused=True)
    tokens_per_step = a.batch_size * a.seq_len
    flops_per_token = 6 * n_params + 12 * a.layers * a.hidden_size * a.seq_len
    torch.cuda.reset_peak_memory_stats(dev)
    times, losses = [], []
    for _ in range(a.steps):
        idx = torch.randint(0, a.vocab_size, (a.batch_size, a.seq_len + 1), device=dev)
        t0 = time.perf_counter()
        loss = model(idx[:, :-1], idx[:, 1:])
        loss.backward()
        for m, p in zip(master, params):
            m.grad = p.grad.float()
            p.grad = None
        torch.nn.utils.clip_grad_norm_(master, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_copy_(params, master)
        losses.append(loss.item())
        times.append(time.perf_counter() - t0)
    timed = times[a.warmup:] if len(times) > a.warmup else times
    tps = tokens_per_step * len(timed) / sum(timed)
    print(json.dumps({"impl": a.impl, "torch": torch.__version__, "gpu": torch.cuda.get_device_name(dev),
                      "parameters": n_params, "tokens_per_step": tokens_per_step, "mean_tokens_per_s": tps,
                      "mean_tflops": tps * flops_per_token / 1e12, "peak_gpu_bytes": torch.cuda.max_memory_allocated(dev),
                      "final_loss": losses[-1]}))


if __name__ == "__main__":
    main()
