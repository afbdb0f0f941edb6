import os
import tempfile

import jax
import numpy as np
import pytest

import bgmm

# The test process is a host like any user's program: it opts in to one device per CPU
# core, and to float64 for the tests' own reference computations (bgmm itself changes
# neither; tests/test_host_state.py checks that in fresh processes).
bgmm.use_cpu_cores()
jax.config.update("jax_enable_x64", True)

# The CLI tests start many `bgmm` processes: let them share one compilation cache (kept out
# of the user's own), so each program compiles once per test session.
os.environ.setdefault("BGMM_CACHE_DIR", os.path.join(tempfile.gettempdir(), "bgmm-test-cache"))


def mcse_of_mean(draws: np.ndarray) -> np.ndarray:
    """ArviZ's Monte Carlo standard error of the mean of every scalar of (chain, draw, ...)."""
    import arviz as az
    import xarray as xr

    c, s = draws.shape[:2]
    flat = draws.reshape(c, s, -1)
    mcse = az.mcse(xr.Dataset({"x": (("chain", "draw", "i"), flat)}))["x"].values
    return mcse.reshape(draws.shape[2:])


def monte_carlo_z(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(mean - truth) / MCSE for every scalar of ``draws`` (chain, draw, ...)."""
    return (draws.mean(axis=(0, 1)) - truth) / mcse_of_mean(draws)


def two_run_z(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(mean_a - mean_b) / sqrt(MCSE_a^2 + MCSE_b^2) for every scalar of two independent runs'
    draws ``a`` and ``b`` (chain, draw, ...): about N(0, 1) when both sample one distribution."""
    return (a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))) / np.hypot(mcse_of_mean(a), mcse_of_mean(b))


def recovery_z(mean, sd, mcse, truth) -> np.ndarray:
    """(posterior mean - the value the data were simulated from) / sqrt(posterior sd^2 + MCSE^2).

    For checks against the simulation's parameters, which are not the estimand: the exact
    posterior mean misses them by the data's noise, about one posterior sd when N is large and
    the prior weak (Bernstein-von Mises), and the run's mean misses the posterior mean by its
    Monte Carlo error, independently. So z is about N(0, 1) over data sets and runs (a weak
    prior moves the posterior mean by a small fraction of a posterior sd). Not for variances
    under the default priors, which pull a tight cluster's variance up by far more.
    """
    return (np.asarray(mean) - np.asarray(truth)) / np.hypot(sd, mcse)


def separated_cluster_posterior(data: np.ndarray, centres: np.ndarray, concentration=1.0):
    """The posterior means of the component means (K, D) and weights (K,) on simulated
    clusters too far apart for any row's component to be in doubt, in the centres' order.

    Each row goes to its nearest centre; a component's posterior mean location is then its
    rows' sample mean, and its weight (n_k + alpha) / (N + K alpha) under a symmetric
    Dirichlet(alpha) prior, exactly but for the prior on the locations. That pulls a mean
    towards the prior mean by (prior precision / data precision) x distance: for the default
    priors (s0 = 2 in standardised units) and the tests' clusters (40 or more rows, sd at
    most a fifth of the data's, within 1.5 data sds of the centre) about 0.01 posterior sd or
    less, so 0.01 sqrt(ESS) MCSE: 0.2 or less at the tests' ESS (a few hundred). A run's
    means are tested against these with |estimate - truth| / MCSE.
    """
    data, centres = np.asarray(data, dtype=np.float64), np.asarray(centres, dtype=np.float64)
    nearest = np.argmin(((data[:, None, :] - centres[None]) ** 2).sum(axis=-1), axis=1)
    k = len(centres)
    counts = np.bincount(nearest, minlength=k)
    means = np.stack([data[nearest == j].mean(axis=0) for j in range(k)])
    return means, (counts + concentration) / (len(data) + k * concentration)


def record_moments(record: dict, var: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior mean, sd and ArviZ MCSE of ``var`` ("weights" or "means") from a JSON record's
    ``parameters`` rows, each shaped like ``record[f"{var}_mean"]`` ((K,) or (K, D))."""
    shape = np.shape(record[f"{var}_mean"])
    rows = [p for p in record["parameters"] if p["name"].startswith(f"{var}[")]
    return tuple(np.reshape([p[key] for p in rows], shape) for key in ("mean", "sd", "mcse"))


@pytest.fixture
def z_scores():
    return monte_carlo_z


@pytest.fixture
def mcse():
    return mcse_of_mean


@pytest.fixture(name="two_run_z")
def two_run_z_fixture():
    return two_run_z


@pytest.fixture(name="recovery_z")
def recovery_z_fixture():
    return recovery_z


@pytest.fixture(name="separated_cluster_posterior")
def separated_cluster_posterior_fixture():
    return separated_cluster_posterior


@pytest.fixture(name="record_moments")
def record_moments_fixture():
    return record_moments


@pytest.fixture
def no_fit(monkeypatch):
    """Fail the test if a fit (and so any compiling or sampling) starts."""
    import bgmm

    def refuse(*args, **kwargs):
        raise AssertionError("the fit started")

    monkeypatch.setattr(bgmm.BayesianGMM, "fit", refuse)
    monkeypatch.setattr(bgmm, "demo", refuse)
