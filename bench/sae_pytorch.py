#!/usr/bin/env python3
"""PyTorch eager baseline for bench/sae_bench: the same SAE training steps written the usual
Python way (autograd + torch.optim.Adam), timed the same way (fastest of --reps after a warm-up).

relu-l1 is the reference recipe (tied pre-bias, ReLU, loss = MSE + l1 * sum|z|, decoder rows kept
at unit norm with the parallel gradient component removed); topk keeps the k largest
pre-activations. Run it in the same session as sae_bench and compare step_ms.
Usage: python3 bench/sae_pytorch.py [--device cpu|cuda] [--reps 3] [--dims 768,1024] [--batch 4096]
"""
import argparse
import os
import time

import torch


def fake_embeddings(b, d, dev):
    torch.manual_seed(1)
    return torch.relu(torch.randn(b, d) * 0.8 + 0.3).to(dev)


def time_s(dev, reps, f):
    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()
    f()
    sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def make_step(arch, D, B, dev, k=32, l1=3e-5):
    n = 8 * D
    W_dec = torch.randn(n, D, device=dev)
    W_dec = (W_dec / W_dec.norm(dim=1, keepdim=True)).requires_grad_()
    W_enc = W_dec.detach().t().clone().requires_grad_()
    b_enc = torch.zeros(n, device=dev, requires_grad=True)
    b_dec = torch.zeros(D, device=dev, requires_grad=True)
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=5e-4)
    x = fake_embeddings(B, D, dev)

    def step():
        opt.zero_grad(set_to_none=True)
        pre = torch.addmm(b_enc, x - b_dec, W_enc)
        if arch == "relu-l1":
            z = torch.relu(pre)
            xhat = torch.addmm(b_dec, z, W_dec)
            loss = (xhat - x).pow(2).sum(1).mean() + l1 * z.abs().sum(1).mean()
        else:
            vals, idx = torch.relu(pre).topk(k, dim=1)
            z = torch.zeros_like(pre).scatter(1, idx, vals)
            xhat = torch.addmm(b_dec, z, W_dec)
            loss = (xhat - x).pow(2).sum(1).mean()
        loss.backward()
        with torch.no_grad():
            g = W_dec.grad
            g.sub_((g * W_dec).sum(1, keepdim=True) * W_dec)
        opt.step()
        with torch.no_grad():
            W_dec.div_(W_dec.norm(dim=1, keepdim=True))

    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dims", default="768,1024")
    ap.add_argument("--batch", type=int, default=4096)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    dev = torch.device(a.device)
    print(f"sae_pytorch (torch {torch.__version__}) on {dev}, {torch.get_num_threads()} threads, "
          f"batch {a.batch}, expansion 8, k 32, {a.reps} reps")
    print(f"{'D':<6} {'arch':<10} {'step_ms':>12}")
    for D in (int(s) for s in a.dims.split(",")):
        for arch in ("relu-l1", "topk"):
            t = time_s(dev, a.reps, make_step(arch, D, a.batch, dev))
            print(f"{D:<6} {arch:<10} {t * 1e3:12.1f}", flush=True)


if __name__ == "__main__":
    main()
