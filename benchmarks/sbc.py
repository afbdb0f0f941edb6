"""Simulation-based calibration (Talts et al. 2018) of bgmm's HMC, NUTS and Gibbs samplers.

    python benchmarks/sbc.py [--replications 200] [--quick] [--json benchmarks/sbc_results.json]

For each configuration (K, D, N, priors) and each replication: draw the parameters from the
prior (theta ~ Dirichlet(alpha0), mu_k ~ N(m0_k, s0^2 I), T_k ~ Wishart(nu, S), L_k =
chol(T_k); scipy's samplers, not bgmm's), draw N observations from the mixture, run
``bgmm.inference.sample_posterior`` (one chain, started from an independent draw from the
prior), thin the kept draws to L = 99 equally spaced ones (the chain is rerun 4x longer when
the smallest bulk ESS of the test quantities is below L) and record the rank of the true value
of each test quantity among the L draws. Under a correct sampler every rank is uniform on
0..L. Uniformity is tested with a chi-square test on 20 bins and a Kolmogorov-Smirnov test of
the jittered ranks; p-values are Holm-corrected within each sampler x configuration and over
the whole run. Rank histograms with the binomial 99% band go to docs/sbc-*.png. A negative
control reruns one configuration with kernels that target a different posterior (HMC with
``target="tutorial"``, the Wishart prior without the Cholesky Jacobian; Gibbs with nu + 1
degrees of freedom) and must be rejected. docs/sbc.md has the method and the results.

The run is a benchmark part, not a test (about 25 minutes on 2 cores for 200 replications);
``--quick`` is a smoke run of a few replications on the smallest configuration.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata as md
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from scipy import stats
from scipy.special import gammaln, logsumexp, multigammaln

import bgmm
from bgmm.inference import SamplerSettings, sample_posterior
from bgmm.model import Params, Priors, default_priors

bgmm.use_cpu_cores()  # opt-ins of this host: one device per CPU core, float64 arrays
jax.config.update("jax_enable_x64", True)

REPO = Path(__file__).resolve().parent.parent
L_DRAWS = 99  # thinned draws per replication: ranks 0..99
NUM_BINS = 20  # 100 rank values, 5 per bin
RETRY_FACTOR = 4  # a chain whose min bulk ESS < L is rerun this much longer ...
MAX_ATTEMPTS = 3  # ... at most twice


# ----------------------------------------------------------------------------- configurations


def _configs() -> dict[str, dict]:
    return {
        # Exchangeable priors (bgmm's defaults for standardised data): every test quantity
        # is a symmetric function of the components.
        "K2-D1-N20": {"K": 2, "D": 1, "N": 20, "priors": default_priors(2, 1)},
        "K2-D2-N30": {"K": 2, "D": 2, "N": 30, "priors": default_priors(2, 2)},
        # Symmetry-breaking priors in the style of the tutorial's (distinct m0_k, s0 = 1),
        # spread so far apart that the labels are identified: per-component quantities too.
        "K3-D1-N50": {
            "K": 3,
            "D": 1,
            "N": 50,
            "priors": Priors(
                concentration=np.ones(3),
                mean_loc=np.array([[-3.0], [0.0], [3.0]]),
                mean_scale=1.0,
                wishart_df=5.0,
                wishart_scale=np.eye(1),
            ),
        },
    }


CONFIGS = _configs()

# Warm-up and kept draws per chain, sized from pilot runs so that the smallest bulk ESS over
# the test quantities exceeds L = 99 in most replications; a chain below it is rerun
# RETRY_FACTOR times longer, at most MAX_ATTEMPTS - 1 times (Talts et al. 2018, section 5.1:
# thin by the effective sample size, lengthen the chain where it is too small).
SAMPLERS = {
    "hmc": {"num_warmup": 1000, "num_draws": 2000},
    "nuts": {"num_warmup": 1000, "num_draws": 1000},
    "gibbs": {"num_warmup": 500, "num_draws": 4000},
}
LENGTH_OVERRIDES = {
    # Gibbs mixes slowly where a component is (nearly) empty: the per-label weights of the
    # identifying priors need the longest chains.
    ("gibbs", "K3-D1-N50"): {"num_warmup": 1000, "num_draws": 16000},
}


def chain_lengths(sampler: str, config: str) -> dict:
    return {**SAMPLERS[sampler], **LENGTH_OVERRIDES.get((sampler, config), {})}


# Kernels that sample another posterior than the one the data were simulated from.
NEGATIVE_CONTROLS = {
    "hmc-tutorial-target": {
        "sampler": "hmc",
        "target": "tutorial",
        "description": 'HMC with target="tutorial": the Wishart density of L_k without the '
        "Jacobian of T = L L' (the TFP tutorial's prior), data simulated from the model as written",
    },
    "gibbs-df-plus-1": {
        "sampler": "gibbs",
        "target": "correct",
        "df_shift": 1.0,
        "description": "Gibbs with the Wishart degrees of freedom nu + 1 in every conditional "
        "(an off-by-one in the precision update), data simulated with nu",
    },
}
NEGATIVE_CONFIG = "K2-D2-N30"


# ----------------------------------------------------------------------------- simulation


def draw_from_prior(rng: np.random.Generator, priors: Priors) -> Params:
    """theta, mu, L with L L' ~ Wishart(nu, S); scipy's samplers (independent of bgmm's)."""
    k, d = priors.num_components, priors.num_features
    weights = rng.dirichlet(np.asarray(priors.concentration, float))
    means = rng.normal(np.asarray(priors.mean_loc, float), priors.mean_scale, size=(k, d))
    precision = stats.wishart(
        df=priors.wishart_df, scale=np.asarray(priors.wishart_scale, float)
    ).rvs(size=k, random_state=rng)
    precision = np.reshape(precision, (k, d, d))
    chol = np.linalg.cholesky(precision)
    return Params(weights, means, chol)


def draw_data(rng: np.random.Generator, params: Params, n: int) -> np.ndarray:
    """y_i = mu_z + L_z'^{-1} eps, so that cov = (L L')^{-1} = T^{-1}."""
    k, d = params.means.shape
    z = rng.choice(k, size=n, p=params.weights)
    eps = rng.normal(size=(n, d))
    noise = np.stack([np.linalg.solve(params.chol_precision[z[i]].T, eps[i]) for i in range(n)])
    return params.means[z] + noise


def simulate(seed: int, config_index: int, replication: int, config: dict):
    """The true parameters, the data and an independent start (a second prior draw)."""
    rng = np.random.default_rng([seed, config_index, replication])
    truth = draw_from_prior(rng, config["priors"])
    data = draw_data(rng, truth, config["N"])
    start = draw_from_prior(
        np.random.default_rng([seed, config_index, replication, 1]), config["priors"]
    )
    return truth, data, start


# ----------------------------------------------------------------------------- test quantities


def log_likelihood(weights, means, chol, data) -> np.ndarray:
    """log p(y | params) of S parameter sets: weights (S, K), means (S, K, D), chol (S, K, D, D)."""
    d = data.shape[1]
    # z_ske = sum_d (y_nd - mu_kd) L_kde
    diff = data[None, None, :, :] - means[:, :, None, :]  # (S, K, N, D)
    z = np.einsum("sknd,skde->skne", diff, chol)
    log_det = np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # (S, K)
    comp = (np.log(weights) + log_det - 0.5 * d * np.log(2 * np.pi))[:, :, None] - 0.5 * np.sum(
        z * z, axis=-1
    )
    return np.sum(logsumexp(comp, axis=1), axis=-1)


def log_prior_density(weights, means, chol, priors: Priors) -> np.ndarray:
    """log p(theta) + log p(mu) + log p(T) (the Wishart density of T = L L'), (S,)."""
    alpha = np.asarray(priors.concentration, float)
    m0 = np.asarray(priors.mean_loc, float)
    d = m0.shape[1]
    nu = priors.wishart_df
    scale = np.asarray(priors.wishart_scale, float)
    lp_w = gammaln(alpha.sum()) - gammaln(alpha).sum() + np.sum((alpha - 1) * np.log(weights), -1)
    lp_mu = np.sum(stats.norm.logpdf(means, m0, priors.mean_scale), axis=(-2, -1))
    precision = chol @ np.swapaxes(chol, -1, -2)
    log_det_t = 2 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    trace = np.einsum("de,sked->sk", np.linalg.inv(scale), precision)
    log_norm = (
        0.5 * nu * d * np.log(2)
        + 0.5 * nu * np.linalg.slogdet(scale)[1]
        + multigammaln(0.5 * nu, d)
    )
    lp_t = np.sum(0.5 * (nu - d - 1) * log_det_t - 0.5 * trace - log_norm, axis=-1)
    return lp_w + lp_mu + lp_t


def test_quantities(weights, means, chol, data, config: dict) -> dict[str, np.ndarray]:
    """Scalar test quantities of S parameter sets, each (S,).

    Exchangeable priors: only symmetric functions of the components (label switching
    cannot change them): the mixture's mean and total variance, the largest weight, the
    data log-likelihood, the log prior density, and the components ordered by their mean
    (first coordinate): the left component's weight, mean and log det T (and, D = 2, the
    off-diagonal of its Cholesky factor). Identifying priors: per-label quantities too.
    """
    priors = config["priors"]
    k, d = config["K"], config["D"]
    precision = chol @ np.swapaxes(chol, -1, -2)
    covariance = np.linalg.inv(precision)
    mix_mean = np.einsum("sk,skd->sd", weights, means)
    second = np.einsum(
        "sk,skd->s",
        weights,
        np.trace(covariance, axis1=-2, axis2=-1)[..., None] + np.sum(means**2, -1, keepdims=True),
    )
    mix_var = second - np.sum(mix_mean**2, -1)  # trace of the mixture covariance
    log_det_t = 2 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # (S, K)
    q: dict[str, np.ndarray] = {}
    for j in range(d):
        q["mix_mean" if d == 1 else f"mix_mean[{j}]"] = mix_mean[:, j]
    q["mix_var"] = mix_var
    q["max_weight"] = weights.max(-1)
    exchangeable = bool(
        np.all(priors.concentration == priors.concentration[0])
        and np.all(priors.mean_loc == priors.mean_loc[0])
    )
    rows = np.arange(weights.shape[0])
    if exchangeable:
        order = np.argsort(means[:, :, 0], axis=-1)
        left, right = order[:, 0], order[:, -1]
        q["left_weight"] = weights[rows, left]
        for j in range(d):
            q["left_mean" if d == 1 else f"left_mean[{j}]"] = means[rows, left, j]
        q["right_mean" if d == 1 else "right_mean[0]"] = means[rows, right, 0]
        q["left_logdet_T"] = log_det_t[rows, left]
        q["right_logdet_T"] = log_det_t[rows, right]
        if d == 2:
            q["left_L[1,0]"] = chol[rows, left, 1, 0]
    else:
        for c in range(k):
            q[f"weight[{c}]"] = weights[:, c]
        for c in range(k):
            q[f"mean[{c}]" if d == 1 else f"mean[{c},0]"] = means[:, c, 0]
        for c in range(k):
            q[f"logdet_T[{c}]"] = log_det_t[:, c]
    q["log_lik"] = log_likelihood(weights, means, chol, data)
    q["log_prior"] = log_prior_density(weights, means, chol, priors)
    return q


# ----------------------------------------------------------------------------- one replication


def bulk_ess(x: np.ndarray) -> np.ndarray:
    """Bulk ESS of one chain, per column: x (S, Q) -> (Q,); NaN for a constant column.

    ArviZ's ``ess(method="bulk")`` vectorised over columns (it takes 0.1 s a column at
    S = 16000): split the chain in halves, rank-normalise, FFT autocovariances, Geyer's
    initial positive and monotone sequence (Vehtari et al. 2021). Agrees with ArviZ to
    floating-point rounding.
    """
    s, q = x.shape
    n = s // 2
    halves = np.stack([x[:n], x[s - n :]])  # (2, n, Q); an odd S loses its middle draw
    flat = halves.reshape(2 * n, q)
    ranks = stats.rankdata(flat, axis=0)
    z = stats.norm.ppf((ranks - 0.375) / (2 * n + 0.25)).reshape(2, n, q)
    centred = z - z.mean(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n  # (2, n, Q)
    chain_var = acov[:, 0] * n / (n - 1.0)  # (2, Q)
    mean_var = chain_var.mean(0)
    var_plus = mean_var * (n - 1.0) / n + z.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (mean_var - acov.mean(0)) / var_plus  # (n, Q)
        rho[0] = 1.0
        out = np.empty(q)
        for j in range(q):
            r = rho[:, j]
            if not np.isfinite(var_plus[j]) or var_plus[j] <= 0 or np.ptp(x[:, j]) == 0:
                out[j] = np.nan
                continue
            # Geyer: sums of adjacent pairs, while positive, made monotone.
            pairs = r[0 : n - 1 : 2][: (n - 1) // 2 + 1] + r[1:n:2][: (n - 1) // 2 + 1]
            m = len(pairs)
            stop = np.flatnonzero(pairs <= 0)
            m = stop[0] if stop.size else m
            pairs = np.minimum.accumulate(pairs[:m]) if m else pairs[:0]
            tau = -1.0 + 2.0 * np.sum(pairs)
            # ArviZ adds the last positive autocorrelation when the sequence was cut short.
            if m and 2 * m < n and r[2 * m] > 0:
                tau += r[2 * m]
            out[j] = 2 * n / max(tau, 1.0 / np.log10(2 * n))
    return out


def keep_programs_in_memory() -> bool:
    """Compile each of the sampler's programs once per process, not once per call.

    ``sample_posterior`` builds its programs afresh on every call (from bgmm's program store
    or JAX's compilation cache when they are on: 0.2 to 1 s a call, more than the sampling
    itself at these sizes). Programs are keyed here exactly as bgmm keys its program store
    (``program_key``: everything the program closes over, argument shapes, devices), so a
    replication reuses the compiled program of the previous one with the same shapes and
    settings. Only compilation is shared; every call runs the whole of ``sample_posterior``.
    Returns False (and changes nothing) if bgmm's internals are not as expected.
    """
    try:
        from bgmm.samplers import programs, runner

        original = runner.compile_program
        key_of = programs.program_key
    except (ImportError, AttributeError):
        return False
    memo: dict = {}

    def compile_program(fn, example_args, *, identity, devices):
        if identity is None:
            return original(fn, example_args, identity=identity, devices=devices)
        key = key_of(identity, example_args, devices)
        if key not in memo:
            memo[key] = original(fn, example_args, identity=identity, devices=devices)
        return memo[key]

    runner.compile_program = compile_program
    return True


def run_chain(key, data, priors, start, sampler, num_warmup, num_draws, target):
    settings = SamplerSettings(
        sampler=sampler, num_warmup=num_warmup, num_draws=num_draws, chain_method="sequential"
    )
    init = Params(*(np.asarray(p)[None] for p in start))
    out = sample_posterior(key, data, priors, init, settings, target=target)
    return out.draws


def one_replication(
    seed, config_name, replication, sampler, lengths, target="correct", df_shift=0.0, rng_tag=0
) -> dict:
    config_index = list(CONFIGS).index(config_name)
    config = CONFIGS[config_name]
    truth, data, start = simulate(seed, config_index, replication, config)
    priors = config["priors"]
    run_priors = priors._replace(wishart_df=priors.wishart_df + df_shift) if df_shift else priors
    true_q = test_quantities(
        truth.weights[None], truth.means[None], truth.chol_precision[None], data, config
    )
    names = list(true_q)
    sampler_index = list(SAMPLERS).index(sampler)
    num_draws = lengths["num_draws"]
    attempts = []
    t0 = time.perf_counter()
    for attempt in range(MAX_ATTEMPTS):
        key = jax.random.key(
            np.random.default_rng(
                [seed, config_index, replication, 2, sampler_index, rng_tag, attempt]
            ).integers(2**31)
        )
        draws = run_chain(
            key, data, run_priors, start, sampler, lengths["num_warmup"], num_draws, target
        )
        w, m, c = (draws[n][0] for n in ("weights", "means", "chol_precision"))
        q = test_quantities(w, m, c, data, config)
        matrix = np.stack([q[n] for n in names], axis=1)
        finite = bool(np.all(np.isfinite(matrix)))
        ess = bulk_ess(matrix) if finite else np.full(len(names), np.nan)
        min_ess = float(np.nanmin(ess)) if finite else 0.0
        attempts.append({"num_draws": num_draws, "min_ess": min_ess})
        if min_ess >= L_DRAWS or attempt == MAX_ATTEMPTS - 1:
            break
        num_draws *= RETRY_FACTOR
    step = num_draws // L_DRAWS
    idx = num_draws - L_DRAWS * step + step * np.arange(L_DRAWS)  # the last L*step, every step-th
    thinned = matrix[idx]
    tie_rng = np.random.default_rng([seed, config_index, replication, 3, sampler_index, rng_tag])
    ranks = {}
    for j, n in enumerate(names):
        t = true_q[n][0]
        below = int(np.sum(thinned[:, j] < t))
        ties = int(np.sum(thinned[:, j] == t))
        ranks[n] = below + int(tie_rng.integers(ties + 1))
    record = {
        "ranks": ranks,
        "ess_bulk": {
            n: (None if not np.isfinite(e) else round(float(e), 1))
            for n, e in zip(names, ess, strict=True)
        },
        "min_ess": min_ess,
        "attempts": attempts,
        "thin": int(step),
        "seconds": time.perf_counter() - t0,
        "finite": finite,
    }
    if sampler != "gibbs":
        record["acceptance_rate"] = float(np.mean(draws["acceptance_rate"]))
        record["divergences"] = int(np.sum(draws["diverging"]))
        record["step_size"] = float(np.asarray(draws["step_size"])[0, -1])
    return record


# ----------------------------------------------------------------------------- tests


def chi_square_p(ranks: np.ndarray) -> float:
    counts = np.bincount(ranks * NUM_BINS // (L_DRAWS + 1), minlength=NUM_BINS)
    return float(stats.chisquare(counts).pvalue)


def ks_p(ranks: np.ndarray, rng: np.random.Generator) -> float:
    """KS test of (rank + U) / (L + 1), exactly uniform on (0, 1) under the null."""
    u = (ranks + rng.uniform(size=ranks.shape)) / (L_DRAWS + 1)
    return float(stats.kstest(u, "uniform").pvalue)


def holm(pvalues: list[float]) -> list[float]:
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


# ----------------------------------------------------------------------------- figures


def figure(path: Path, title: str, records: list[dict], analysis: dict) -> None:
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


# ----------------------------------------------------------------------------- machine


def machine_info() -> dict:
    info = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
    }
    try:
        models = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        info["cpu_model"] = models[0] if models else None
    except OSError:
        info["cpu_model"] = platform.processor() or None
    info["versions"] = {}
    for package in ("bgmm", "jax", "jaxlib", "numpy", "blackjax", "arviz", "scipy"):
        try:
            info["versions"][package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["git_head"] = head
        info["src_uncommitted_changes"] = bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


# ----------------------------------------------------------------------------- driver


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_experiment(label, seed, config_name, sampler, lengths, replications, **kwargs):
    records = []
    t0 = time.perf_counter()
    for rep in range(replications):
        records.append(one_replication(seed, config_name, rep, sampler, lengths, **kwargs))
        if (rep + 1) % max(1, replications // 5) == 0 or rep == 0:
            log(
                f"  {label}: {rep + 1}/{replications} replications, "
                f"{time.perf_counter() - t0:.0f} s"
            )
    wall = time.perf_counter() - t0
    analysis = analyse(records, seed)
    retried = sum(len(rec["attempts"]) > 1 for rec in records)
    low_ess = sum(rec["min_ess"] < L_DRAWS for rec in records)
    summary = {
        "config": config_name,
        "sampler": sampler,
        "num_warmup": lengths["num_warmup"],
        "num_draws": lengths["num_draws"],
        "replications": replications,
        "wall_seconds": round(wall, 1),
        "retried_longer": retried,
        "min_ess_below_L_after_retry": low_ess,
        "non_finite": sum(not rec["finite"] for rec in records),
        "median_min_ess": float(np.median([rec["min_ess"] for rec in records])),
        "median_thin": float(np.median([rec["thin"] for rec in records])),
    }
    if sampler != "gibbs":
        summary["divergences"] = int(sum(rec["divergences"] for rec in records))
        summary["median_acceptance_rate"] = float(
            np.median([rec["acceptance_rate"] for rec in records])
        )
    summary.update({k: v for k, v in kwargs.items() if k in ("target", "df_shift")})
    log(
        f"{label}: {wall:.0f} s, min p {analysis['min_p']:.3g}, "
        f"min Holm p {analysis['min_p_holm']:.3g}, retried {retried}, ESS<L {low_ess}"
    )
    return {"summary": summary, "analysis": analysis, "records": records}


def compact(experiment: dict) -> dict:
    """What the JSON keeps of an experiment: per-replication columns instead of records."""
    records = experiment["records"]
    names = list(records[0]["ranks"])
    columns = {
        "ranks": {n: [rec["ranks"][n] for rec in records] for n in names},
        "min_ess": [round(rec["min_ess"], 1) for rec in records],
        "num_draws": [rec["attempts"][-1]["num_draws"] for rec in records],
        "attempts": [len(rec["attempts"]) for rec in records],
        "thin": [rec["thin"] for rec in records],
        "seconds": [round(rec["seconds"], 3) for rec in records],
    }
    if "divergences" in records[0]:
        columns["acceptance_rate"] = [round(rec["acceptance_rate"], 3) for rec in records]
        columns["divergences"] = [rec["divergences"] for rec in records]
    analysis = experiment["analysis"]
    for n in names:
        ess = [rec["ess_bulk"][n] for rec in records if rec["ess_bulk"][n] is not None]
        analysis["quantities"][n]["median_ess_bulk"] = float(np.median(ess)) if ess else None
    return {"summary": experiment["summary"], "analysis": analysis, "replications": columns}


def dump_json(results: dict) -> str:
    """Indented JSON with every list of numbers on one line."""
    text = json.dumps(results, indent=1)
    return re.sub(
        r"\[\n\s*([-0-9.eE+,\s]+?)\n\s*\]",  # a list json.dumps spread over lines: no key
        lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
        text,
    )


def slug(text: str) -> str:
    return text.lower().replace("-", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 4 replications of the smallest configuration, "
        "short chains, no negative control; writes to a temporary directory",
    )
    parser.add_argument(
        "--json",
        default=None,
        help="default benchmarks/sbc_results.json (--quick: a temporary file)",
    )
    parser.add_argument(
        "--figures",
        default=None,
        help="directory for the figures (default docs/; --quick: temporary)",
    )
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--no-negative-control", action="store_true")
    parser.add_argument("--seed", type=int, default=20180101)
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="turn on bgmm's compilation cache in this directory (default: off; "
        "each program is compiled once per process)",
    )
    args = parser.parse_args()

    configs = args.configs.split(",")
    samplers = args.samplers.split(",")
    replications = args.replications
    negative = not args.no_negative_control
    if args.quick:
        out_dir = Path(tempfile.mkdtemp(prefix="bgmm-sbc-quick-"))
        configs, replications, negative = configs[:1], min(replications, 4), False
    json_path = (
        Path(args.json)
        if args.json
        else (
            out_dir / "sbc_results.json" if args.quick else REPO / "benchmarks" / "sbc_results.json"
        )
    )
    fig_dir = Path(args.figures) if args.figures else (out_dir if args.quick else REPO / "docs")
    fig_dir.mkdir(parents=True, exist_ok=True)
    if args.cache_dir:
        log(f"compilation cache: {bgmm.enable_compilation_cache(args.cache_dir)}")
    programs_in_memory = keep_programs_in_memory()
    log(f"programs kept in memory: {programs_in_memory}")

    machine = machine_info()
    t_start = time.perf_counter()
    results: dict = {
        "settings": {
            "replications": replications,
            "L": L_DRAWS,
            "bins": NUM_BINS,
            "retry_factor": RETRY_FACTOR,
            "seed": args.seed,
            "quick": args.quick,
            "chains": 1,
            "chain_method": "sequential",
            "start": "an independent draw from the prior",
            "programs_in_memory": programs_in_memory,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "configs": {
                name: {
                    "K": c["K"],
                    "D": c["D"],
                    "N": c["N"],
                    "priors": {f: np.asarray(v).tolist() for f, v in c["priors"]._asdict().items()},
                }
                for name, c in CONFIGS.items()
                if name in configs
            },
            "chain_lengths": {
                f"{smp} {c}": chain_lengths(smp, c) for c in configs for smp in samplers
            },
            "max_attempts": MAX_ATTEMPTS,
        },
        "machine": machine,
        "experiments": {},
        "negative_controls": {},
    }
    for config_name in configs:
        for sampler in samplers:
            label = f"{sampler} {config_name}"
            lengths = chain_lengths(sampler, config_name)
            if args.quick:
                lengths = {"num_warmup": 200, "num_draws": 400}
                results["settings"]["chain_lengths"][label] = lengths
            results["experiments"][label] = run_experiment(
                label, args.seed, config_name, sampler, lengths, replications
            )
    if negative:
        for name, control in NEGATIVE_CONTROLS.items():
            sampler = control["sampler"]
            label = f"{name} {NEGATIVE_CONFIG}"
            extra = {"target": control["target"]}
            if "df_shift" in control:
                extra["df_shift"] = control["df_shift"]
            exp = run_experiment(
                label,
                args.seed,
                NEGATIVE_CONFIG,
                sampler,
                chain_lengths(sampler, NEGATIVE_CONFIG),
                replications,
                rng_tag=1,
                **extra,
            )
            exp["summary"]["description"] = control["description"]
            results["negative_controls"][label] = exp

    # Holm over every test of the main run (all samplers and configurations).
    labels = list(results["experiments"])
    flat, where = [], []
    for label in labels:
        for n, q in results["experiments"][label]["analysis"]["quantities"].items():
            for t in ("chi2_p", "ks_p"):
                flat.append(q[t])
                where.append((label, n, t))
    for (label, n, t), p in zip(where, holm(flat), strict=True):
        results["experiments"][label]["analysis"]["quantities"][n][t + "_holm_all"] = p
    for label in labels:
        qs = results["experiments"][label]["analysis"]["quantities"].values()
        results["experiments"][label]["analysis"]["min_p_holm_all"] = min(
            min(q["chi2_p_holm_all"], q["ks_p_holm_all"]) for q in qs
        )
    results["total_tests"] = len(flat)
    results["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]

    figures = []
    for label, exp in [*results["experiments"].items(), *results["negative_controls"].items()]:
        s = exp["summary"]
        name = label.split()[0] if label in results["negative_controls"] else s["sampler"]
        path = fig_dir / f"sbc-{name}-{slug(s['config'])}.png"
        title = (
            f"SBC {label}: {s['replications']} replications; rank among L = {L_DRAWS} thinned "
            f"draws (warm-up {s['num_warmup']}, {s['num_draws']} draws, x{RETRY_FACTOR} longer "
            f"when ESS < L)\ngrey: binomial 99% band of a bin; red: Holm p < 0.01"
        )
        figure(path, title, exp["records"], exp["analysis"])
        figures.append(str(path.relative_to(REPO) if path.is_relative_to(REPO) else path))
    results["figures"] = figures
    for group in ("experiments", "negative_controls"):
        results[group] = {label: compact(exp) for label, exp in results[group].items()}
    json_path.write_text(dump_json(results) + "\n")

    print(
        f"{'experiment':34s} {'reps':>4s} {'wall s':>7s} {'retry':>5s} "
        f"{'min p':>8s} {'Holm p':>8s} {'Holm all':>8s}"
    )
    for label, exp in [*results["experiments"].items(), *results["negative_controls"].items()]:
        s, a = exp["summary"], exp["analysis"]
        print(
            f"{label:34s} {s['replications']:4d} {s['wall_seconds']:7.0f} "
            f"{s['retried_longer']:5d} {a['min_p']:8.2g} {a['min_p_holm']:8.2g} "
            f"{a.get('min_p_holm_all', float('nan')):8.2g}"
        )
    print(f"total {results['wall_seconds']:.0f} s; wrote {json_path} and {len(figures)} figures")


if __name__ == "__main__":
    main()
