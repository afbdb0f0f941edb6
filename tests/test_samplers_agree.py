"""HMC, NUTS and Gibbs sample the same posterior (issue: trustworthy posteriors).

On the tutorial's data and priors (the different prior means keep the labels apart) each
pair of samplers must agree on the posterior means of the weights, locations, covariances
and the label-invariant data log-likelihood: |m_a - m_b| / sqrt(MCSE_a^2 + MCSE_b^2) < 4.
Over 3 pairs x 22 numbers the false failure rate is about 66 * 6e-5 = 4e-3 per run if the
MCSEs were exact; ArviZ's MCSE from a few hundred effective draws is itself uncertain by
~10%, which the bound of 4 absorbs.
"""

import itertools

import numpy as np
import pytest

import bgmm
from bgmm.tutorial import tutorial_data, tutorial_start

Z_LIMIT = 4.0


@pytest.fixture(scope="module")
def runs():
    common = {"priors": "tutorial", "num_chains": 4, "random_state": 11}
    settings = {
        "hmc": {"num_warmup": 500, "num_draws": 1000},
        "nuts": {"num_warmup": 500, "num_draws": 1000},
        # Gibbs sweeps are cheap but mix slowly on these overlapping clusters (design 1.5).
        "gibbs": {"num_warmup": 1000, "num_draws": 10_000},
    }
    start = bgmm.Params(*tutorial_start())
    return {
        name: bgmm.BayesianGMM(3, sampler=name, **common, **options)
        .fit(tutorial_data(), initial=start)
        .result_
        for name, options in settings.items()
    }


def _quantities(result):
    post = result.idata.posterior
    lower = np.tril_indices(2)
    return {
        "weights": post["weights"].values,
        "means": post["means"].values,
        "covariance": post["covariance"].values[..., lower[0], lower[1]],
        "data_log_likelihood": result.idata.sample_stats["data_log_likelihood"].values[..., None],
    }


@pytest.mark.slow
@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(["hmc", "nuts", "gibbs"], 2)))
def test_samplers_agree(runs, mcse, a, b):
    qa, qb = _quantities(runs[a]), _quantities(runs[b])
    for name in qa:
        diff = qa[name].mean(axis=(0, 1)) - qb[name].mean(axis=(0, 1))
        z = diff / np.hypot(mcse(qa[name]), mcse(qb[name]))
        assert np.all(np.abs(z) < Z_LIMIT), f"{a} vs {b}, {name}: z = {np.round(z, 2)}"


@pytest.mark.slow
def test_every_sampler_converged(runs):
    # Not z-tests: R-hat has no MCSE, and a divergence is a failure of the integrator, not
    # an estimate; 1.05 is a diagnostic threshold that chains in different modes exceed.
    for name, result in runs.items():
        assert result.summary["rhat_max"] < 1.05, name
        assert result.summary["divergences"] == 0, name
