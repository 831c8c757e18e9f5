#!/usr/bin/env python3
"""Reference timing for cbm_bench: scikit-learn's SGDClassifier(loss="log_loss", penalty="l1",
alpha=1e-3) -- what the DermFM-Zero reference uses -- on CSR input, over the SAME data and splits
that `cbm_bench --dump DIR` wrote. Optional: needs python3-sklearn (Debian) and prints a notice
otherwise.

usage: cbm_bench --dump /tmp/cbmb && python3 bench/cbm_sklearn.py /tmp/cbmb [--jobs N] [--splits N] [--only c2|c7]
"""
import os
import sys
import time

try:
    import numpy as np
    import scipy.sparse as sp
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import f1_score, roc_auc_score
    from joblib import Parallel, delayed
except ImportError as e:  # keep the comparison optional
    print(f"cbm_sklearn: scikit-learn not available ({e}); skipping")
    sys.exit(0)


def fit_split(X, y, test, seed, alpha):
    tr = ~test
    clf = SGDClassifier(loss="log_loss", penalty="l1", alpha=alpha, random_state=seed)
    clf.fit(X[tr], y[tr])
    Xt, yt = X[test], y[test]
    if len(np.unique(y)) == 2:
        auc = roc_auc_score(yt, clf.decision_function(Xt))
    else:
        auc = roc_auc_score(yt, clf.predict_proba(Xt), multi_class="ovr", average="macro")
    f1 = f1_score(yt, clf.predict(Xt), average="macro")
    obj = float("nan")
    if len(np.unique(y)) == 2:  # the objective both fits minimise: mean log-loss + alpha |w|_1
        z = clf.decision_function(X[tr])
        obj = float(np.mean(np.logaddexp(0, z) - (y[tr] == clf.classes_[1]) * z) + alpha * np.abs(clf.coef_).sum())
    return auc, f1, int(np.count_nonzero(clf.coef_)), clf.n_iter_, obj


def main():
    root = sys.argv[1]
    jobs = int(sys.argv[sys.argv.index("--jobs") + 1]) if "--jobs" in sys.argv else os.cpu_count()
    max_splits = int(sys.argv[sys.argv.index("--splits") + 1]) if "--splits" in sys.argv else None
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    alpha = 1e-3
    for sub in sorted(os.listdir(root)):
        if only and sub != only:
            continue
        d = os.path.join(root, sub)
        n, f = map(int, open(os.path.join(d, "shape.txt")).read().split())
        X = sp.csr_matrix(
            (np.load(f"{d}/values.npy"), np.load(f"{d}/indices.npy"), np.load(f"{d}/indptr.npy")), shape=(n, f)
        )
        y = np.load(f"{d}/y.npy")
        masks = np.load(f"{d}/test_mask.npy").astype(bool)[:max_splits]
        t0 = time.perf_counter()
        res = Parallel(n_jobs=jobs)(delayed(fit_split)(X, y, masks[s], s, alpha) for s in range(len(masks)))
        wall = time.perf_counter() - t0
        auc = np.array([r[0] for r in res])
        f1 = np.array([r[1] for r in res])
        nnz = np.array([r[2] for r in res])
        iters = np.array([r[3] for r in res])
        obj = np.array([r[4] for r in res])
        print(
            f"sklearn {sub}: {n} x {f}, {len(masks)} splits, {jobs} jobs: wall {wall:.3f} s "
            f"({1000 * wall / len(masks):.1f} ms/split), mean AUROC {auc.mean():.4f} (std {auc.std(ddof=1):.4f}), "
            f"macro-F1 {f1.mean():.4f}, nnz weights {nnz.mean():.1f}, mean epochs {iters.mean():.1f}, "
            f"mean train objective {obj.mean():.5f}"
        )


if __name__ == "__main__":
    main()
