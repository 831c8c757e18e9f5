#!/usr/bin/env python3
"""Reference L1 sparse autoencoder, trained the usual PyTorch way (autograd + torch.optim.Adam),
to cross-check `conceptlab sae train --arch relu-l1` and to give reference figures.

Recipe (the DermFM-Zero concept-discovery SAE, ai-safety-foundation `sparse_autoencoder` design):
tied pre-encoder / post-decoder bias b_dec initialised at zero; encoder Linear with
kaiming-uniform weight and bias (bound 1/sqrt(D)); ReLU; decoder rows (one per latent) kept at
unit norm (gradient component parallel to each row removed before the step, rows renormalised
after it); loss per item = mean_d (x - x_hat)^2 + l1 * sum_i |z_i|, averaged over the batch;
Adam lr 5e-4, betas (0.9, 0.999), eps 1e-8; expansion 8, l1 3e-5, batch 4096, 200 epochs.

`--init S0.h5` starts from the weights of a conceptlab SAE file (e.g. written by
`conceptlab sae train ... --epochs 0`) so both implementations start from the same point.
Prints one JSON object with the same metric definitions as `conceptlab sae eval`.
Usage: python3 bench/sae_reference.py --embeddings E.h5 [--epochs 200] [--init S0.h5] [--out S.h5]
"""
import argparse
import json
import math
import os
import time

import h5py
import numpy as np
import torch


def load_init(path):
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] in (b"conceptlab.sae", "conceptlab.sae"), f"{path}: not a conceptlab.sae file"
        return [torch.from_numpy(f[k][:].astype(np.float32)) for k in ("W_enc", "b_enc", "W_dec", "b_dec")]


def fresh_init(D, n, gen):
    bound = 1.0 / math.sqrt(D)  # nn.Linear's kaiming_uniform(a=sqrt(5)) bound for fan_in = D
    W_enc = torch.empty(D, n).uniform_(-bound, bound, generator=gen)
    b_enc = torch.empty(n).uniform_(-bound, bound, generator=gen)
    W_dec = torch.randn(n, D, generator=gen)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    return [W_enc, b_enc, W_dec, torch.zeros(D)]


def forward(x, W_enc, b_enc, W_dec, b_dec):
    z = torch.relu((x - b_dec) @ W_enc + b_enc)
    return z, z @ W_dec + b_dec


@torch.no_grad()
def evaluate(X, params, batch=8192):
    """mse, fvu (float64 sums), l0 and dead latents (never fire on any row), as `sae eval`."""
    sse, l0, fired = 0.0, 0.0, torch.zeros(params[0].shape[1], dtype=torch.bool)
    for i in range(0, X.shape[0], batch):
        z, xhat = forward(X[i:i + batch], *params)
        sse += (X[i:i + batch] - xhat).double().pow(2).sum().item()
        l0 += (z > 0).sum().item()
        fired |= (z > 0).any(0)
    var = (X.double() - X.double().mean(0)).pow(2).sum().item()
    N, D = X.shape
    n_dead = int((~fired).sum())
    return {"mse": sse / (N * D), "fvu": sse / var if var > 0 else 0.0, "l0": l0 / N,
            "dead_fraction": n_dead / fired.numel(), "n_dead": n_dead, "n_latents": fired.numel()}


def save(path, params, a, metrics):
    with h5py.File(path, "w") as f:
        for name, t in zip(("W_enc", "b_enc", "W_dec", "b_dec"), params):
            f.create_dataset(name, data=t.detach().numpy().astype(np.float32))
        f.attrs.update({"format": "conceptlab.sae", "schema_version": 1, "arch": "relu-l1", "k": 0,
                        "threshold": 0.0, "d_in": params[0].shape[0], "n_latents": params[0].shape[1],
                        "config": json.dumps({"source": "bench/sae_reference.py", **vars(a)}),
                        "metrics": json.dumps(metrics)})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embeddings", required=True, help="conceptlab.embeddings .h5")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--l1", type=float, default=3e-5)
    ap.add_argument("--expansion", type=int, default=8)
    ap.add_argument("--n-latents", type=int, default=0, help="0: expansion * D")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--init", help="start from the weights of this conceptlab.sae file")
    ap.add_argument("--out", help="write the trained SAE here (conceptlab.sae format)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with h5py.File(a.embeddings, "r") as f:
        X = torch.from_numpy(f["embeddings"][:].astype(np.float32))
    N, D = X.shape
    gen = torch.Generator().manual_seed(a.seed)
    if a.init:
        params = load_init(a.init)
        assert params[0].shape[0] == D, f"{a.init}: d_in {params[0].shape[0]}, embeddings have {D}"
    else:
        params = fresh_init(D, a.n_latents or a.expansion * D, gen)
    params = [p.clone().requires_grad_() for p in params]
    W_enc, b_enc, W_dec, b_dec = params
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    t0, steps = time.perf_counter(), 0
    for _ in range(a.epochs):
        order = torch.randperm(N, generator=gen) if a.batch < N else torch.arange(N)
        for i in range(0, N, a.batch):
            x = X[order[i:i + a.batch]]
            z, xhat = forward(x, *params)
            loss = ((xhat - x).pow(2).mean(1) + a.l1 * z.abs().sum(1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():  # unit-norm atoms: drop the radial gradient, step, renormalise
                W_dec.grad -= (W_dec.grad * W_dec).sum(1, keepdim=True) * W_dec
                opt.step()
                W_dec /= W_dec.norm(dim=1, keepdim=True)
            steps += 1
    seconds = time.perf_counter() - t0

    m = evaluate(X, [p.detach() for p in params])
    m.update(epochs=a.epochs, steps=steps, seconds=round(seconds, 3))
    if a.out:
        save(a.out, params, a, m)
    print(json.dumps(m))


if __name__ == "__main__":
    main()
