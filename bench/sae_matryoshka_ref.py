#!/usr/bin/env python3
"""One nested (Matryoshka) SAE step written the usual PyTorch way (autograd), to cross-check the
hand-written step of `conceptlab sae train --arch matryoshka-topk|matryoshka-batchtopk`.

Loss = mean over the nested sizes m (the full size last) of sum_bd (x - x_hat_m)^2 / (B D), with
x_hat_m = z[:, :m] W_dec[:m] + b_dec; z = relu(top-k per row) (matryoshka-topk) or relu(top k*B
over the whole batch) (matryoshka-batchtopk) of (x - b_dec) W_enc + b_enc. The decoder gradient
has the component parallel to each (unit-norm) row removed, as in the C++ step.

Input: an HDF5 file with W_enc [D, n], b_enc [n], W_dec [n, D], b_dec [D], x [B, D], prefixes
int64 [P] (ascending, the full size last) and root attributes arch, k. Output: an HDF5 file with
loss [1] and the gradients gW_enc, gb_enc, gW_dec, gb_dec (float64).
Usage: python3 bench/sae_matryoshka_ref.py IN.h5 OUT.h5
"""
import sys

import h5py
import numpy as np
import torch


def nested_loss(x, W_enc, b_enc, W_dec, b_dec, arch, k, prefixes):
    B, D = x.shape
    n = W_enc.shape[1]
    pre = (x - b_dec) @ W_enc + b_enc
    if arch == "matryoshka-topk":
        vals, idx = pre.topk(k, dim=1)
        z = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))
    elif arch == "matryoshka-batchtopk":
        flat = torch.relu(pre).reshape(-1)
        vals, idx = flat.topk(min(k * B, B * n))
        z = torch.zeros_like(flat).scatter(0, idx, vals).view(B, n)
    else:
        raise SystemExit(f"arch {arch}: expected matryoshka-topk or matryoshka-batchtopk")
    losses = [((z[:, :m] @ W_dec[:m] + b_dec - x) ** 2).sum() / (B * D) for m in prefixes]
    return torch.stack(losses).mean()


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with h5py.File(sys.argv[1], "r") as f:
        t = {k: torch.from_numpy(f[k][:].astype(np.float64)) for k in ("W_enc", "b_enc", "W_dec", "b_dec", "x")}
        arch = f.attrs["arch"]
        arch = arch.decode() if isinstance(arch, bytes) else str(arch)
        k = int(f.attrs["k"])
        prefixes = [int(m) for m in f["prefixes"][:]]
    params = {name: t[name].clone().requires_grad_(True) for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    loss = nested_loss(t["x"], params["W_enc"], params["b_enc"], params["W_dec"], params["b_dec"], arch, k, prefixes)
    loss.backward()
    g = {name: p.grad.detach() for name, p in params.items()}
    W_dec = t["W_dec"]
    g["W_dec"] = g["W_dec"] - (g["W_dec"] * W_dec).sum(1, keepdim=True) * W_dec
    with h5py.File(sys.argv[2], "w") as f:
        f["loss"] = np.array([loss.item()])
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            f["g" + name] = g[name].numpy()


if __name__ == "__main__":
    main()
