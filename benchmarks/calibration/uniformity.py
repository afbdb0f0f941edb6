"""Are the ranks uniform? Chi-square and KS tests, Holm's correction, rank histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from calibration.design import L_DRAWS, NUM_BINS


def chi_square_p(ranks: np.ndarray) -> float:
    """Chi-square test of the ranks' counts in ``NUM_BINS`` equal bins."""
    counts = np.bincount(ranks * NUM_BINS // (L_DRAWS + 1), minlength=NUM_BINS)
    return float(stats.chisquare(counts).pvalue)


def ks_p(ranks: np.ndarray, rng: np.random.Generator) -> float:
    """KS test of (rank + U) / (L + 1), exactly uniform on (0, 1) under the null."""
    u = (ranks + rng.uniform(size=ranks.shape)) / (L_DRAWS + 1)
    return float(stats.kstest(u, "uniform").pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of p-values (family-wise error rate), in input order."""
    p = np.asarray(pvalues, float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        adjusted[j] = running
    return adjusted.tolist()


def analyse(records: list[dict], seed: int) -> dict:
    """Test the ranks of each quantity over an experiment's replications.

    Returns
    -------
    dict
        ``quantities``: per quantity the chi-square and KS p-values, Holm-adjusted within
        the experiment, and the mean rank fraction; ``min_p``, ``min_p_holm`` and
        ``num_tests``.
    """
    names = list(records[0]["ranks"])
    rng = np.random.default_rng([seed, 99])
    per_q = {}
    for n in names:
        r = np.array([rec["ranks"][n] for rec in records])
        per_q[n] = {
            "chi2_p": chi_square_p(r),
            "ks_p": ks_p(r, rng),
            "mean_rank_fraction": float(np.mean((r + 0.5) / (L_DRAWS + 1))),
        }
    flat = [per_q[n][t] for n in names for t in ("chi2_p", "ks_p")]
    adj = holm(flat)
    for i, n in enumerate(names):
        per_q[n]["chi2_p_holm"] = adj[2 * i]
        per_q[n]["ks_p_holm"] = adj[2 * i + 1]
    return {
        "quantities": per_q,
        "min_p": float(min(flat)),
        "min_p_holm": float(min(adj)),
        "num_tests": len(flat),
    }


def holm_over_run(experiments: dict) -> int:
    """Adjust every test of the main run together (all samplers and configurations).

    Adds ``chi2_p_holm_all`` and ``ks_p_holm_all`` to each quantity and ``min_p_holm_all``
    to each experiment's analysis; returns the number of tests.
    """
    flat, where = [], []
    for label, experiment in experiments.items():
        for n, q in experiment["analysis"]["quantities"].items():
            for t in ("chi2_p", "ks_p"):
                flat.append(q[t])
                where.append((label, n, t))
    for (label, n, t), p in zip(where, holm(flat), strict=True):
        experiments[label]["analysis"]["quantities"][n][t + "_holm_all"] = p
    for experiment in experiments.values():
        qs = experiment["analysis"]["quantities"].values()
        experiment["analysis"]["min_p_holm_all"] = min(
            min(q["chi2_p_holm_all"], q["ks_p_holm_all"]) for q in qs
        )
    return len(flat)


def figure(path: Path, title: str, records: list[dict], analysis: dict) -> None:
    """Save the rank histograms of an experiment: a panel per quantity, grey the binomial
    99 % band of a bin, red the quantities whose Holm-adjusted chi-square p is <= 0.01."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(records[0]["ranks"])
    r = len(records)
    ncols = 5
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 1.75 * nrows + 0.5), squeeze=False)
    lo, hi = stats.binom.ppf([0.005, 0.995], r, 1 / NUM_BINS)
    edges = np.arange(NUM_BINS + 1) * (L_DRAWS + 1) / NUM_BINS
    for ax, n in zip(axes.flat, names, strict=False):
        ranks = np.array([rec["ranks"][n] for rec in records])
        ax.axhspan(lo, hi, color="0.85", lw=0)
        ax.axhline(r / NUM_BINS, color="0.5", lw=0.8)
        ax.hist(
            ranks,
            bins=edges,
            color="tab:blue" if analysis["quantities"][n]["chi2_p_holm"] > 0.01 else "tab:red",
            alpha=0.85,
        )
        q = analysis["quantities"][n]
        ax.set_title(f"{n}\nchi2 p={q['chi2_p']:.2g}, KS p={q['ks_p']:.2g}", fontsize=7)
        ax.set_xlim(0, L_DRAWS + 1)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
