"""The labelled data sets of benchmarks/clustering.py: scikit-learn's, mclust's (through
``Rscript``) and synthetic mixtures with known structure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

R_DATA = {
    # mclust data set: (label column, feature columns or None for all others, note)
    "banknote": ("Status", None, "Swiss bank notes, 200 x 6, 2 classes"),
    "diabetes": ("class", None, "Reaven-Miller diabetes, 145 x 3, 3 classes"),
    "thyroid": ("Diagnosis", None, "thyroid gland, 215 x 5, 3 classes"),
    "wdbc": (
        "Diagnosis",
        ["Texture_mean", "Area_extreme", "Smoothness_extreme"],
        "breast cancer, 569 x 3: the 3 of 30 features the mclust book uses, 2 classes",
    ),
}


def _r_dataset(name: str, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    label, cols, _ = R_DATA[name]
    out = workdir / f"{name}.csv"
    code = (
        "suppressMessages(library(mclust)); "
        f"data({name}); d <- {name}; "
        + (f"d <- d[, c('{label}', {', '.join(repr(c) for c in cols)})]; " if cols else "")
        + f"d$label__ <- as.integer(d${label}); d${label} <- NULL; "
        + ("d$ID <- NULL; " if name == "wdbc" else "")
        + f"write.csv(d, '{out}', row.names = FALSE)"
    )
    subprocess.run(["Rscript", "-e", code], check=True, capture_output=True, text=True)
    import pandas as pd

    frame = pd.read_csv(out)
    y = frame.pop("label__").to_numpy()
    return frame.to_numpy(float), y


def _mixture(seed, n, weights, centres, scales, rotate=True):
    """n points from a Gaussian mixture with the given weights and centres; component k
    has axis standard deviations scales[k], randomly rotated when ``rotate``."""
    rng = np.random.default_rng(seed)
    k, d = np.shape(centres)
    z = rng.choice(k, size=n, p=np.asarray(weights) / np.sum(weights))
    x = np.empty((n, d))
    for j in range(k):
        q = np.linalg.qr(rng.normal(size=(d, d)))[0] if rotate else np.eye(d)
        a = q * np.asarray(scales[j])  # covariance q diag(s^2) q'
        m = z == j
        x[m] = centres[j] + rng.normal(size=(m.sum(), d)) @ a.T
    return x, z


def synthetic(name: str):
    if name == "sep_k3_d2":  # well separated, unequal sizes and shapes
        return _mixture(
            11,
            300,
            [0.55, 0.3, 0.15],
            [[0, 0], [6, 0], [2, 6]],
            [[2.0, 0.6], [1.0, 0.3], [0.5, 0.5]],
        )
    if name == "overlap_k4_d3":  # overlapping, unequal sizes and shapes
        return _mixture(
            12,
            400,
            [0.4, 0.3, 0.2, 0.1],
            [[0, 0, 0], [3, 0, 0], [0, 3, 1], [3, 3, -2]],
            [[1.2, 0.8, 0.5], [1.0, 0.5, 0.5], [0.8, 0.8, 0.3], [0.5, 0.4, 0.3]],
        )
    if name == "sep_k3_d6":  # separated, one tight and two wide components, D = 6
        c = np.zeros((3, 6))
        c[1, 0], c[2, 1] = 6.0, 6.0
        return _mixture(
            13,
            450,
            [0.5, 0.3, 0.2],
            c,
            [[2, 1.5, 1, 1, 0.7, 0.5], [1, 1, 0.5, 0.5, 0.5, 0.3], [0.3] * 6],
        )
    if name == "overlap_k2_d5":  # two overlapping, 80/20, different shapes
        c = np.zeros((2, 5))
        c[1, :2] = 2.5
        return _mixture(14, 300, [0.8, 0.2], c, [[1.5, 1.2, 1, 1, 1], [0.6, 0.4, 0.4, 0.4, 0.4]])
    raise ValueError(name)


SYNTHETIC = {
    "sep_k3_d2": "synthetic, 300 x 2, 3 separated, sizes 55/30/15 %, elongated / round",
    "overlap_k4_d3": "synthetic, 400 x 3, 4 overlapping, sizes 40/30/20/10 %",
    "sep_k3_d6": "synthetic, 450 x 6, 3 separated, sizes 50/30/20 %, one tight",
    "overlap_k2_d5": "synthetic, 300 x 5, 2 overlapping, 80/20 %, wide vs tight",
}
SKLEARN_DATA = {
    "iris": "iris, 150 x 4, 3 species",
    "wine": "wine, 178 x 13, 3 cultivars",
}
DATASETS = list(SKLEARN_DATA) + list(R_DATA) + list(SYNTHETIC)
QUICK_DATASETS = ["iris", "sep_k3_d2"]


def load(name: str, workdir: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(X, labels, description) of a data set in ``DATASETS``."""
    if name in SKLEARN_DATA:
        from sklearn import datasets

        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        return x, y, SKLEARN_DATA[name]
    if name in R_DATA:
        x, y = _r_dataset(name, workdir)
        return x, y, R_DATA[name][2]
    x, y = synthetic(name)
    return x, y, SYNTHETIC[name]


# ---------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------
