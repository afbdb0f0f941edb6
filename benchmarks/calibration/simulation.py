"""Simulating the data of a replication, and the test quantities whose ranks SBC checks.

Everything here is NumPy and SciPy, independent of bgmm's own densities and samplers.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import gammaln, logsumexp, multigammaln

from bgmm.model import Params, Priors


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
