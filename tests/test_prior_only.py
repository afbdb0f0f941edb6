"""A run without data must reproduce the prior's moments: the check that catches a missing
Wishart-on-Cholesky Jacobian (docs/design.md 1.2).

Error rate: every moment is tested with |mean - truth| / MCSE < 4.5; with 13 moments the
chance of a false failure is about 13 * 7e-6 ~ 1e-4 per run.
"""

import jax
import numpy as np
import pytest
from priors_for_tests import TEST_PRIORS

from bgmm.config import RunConfig
from bgmm.inference import sample_posterior
from bgmm.model import Params

Z_LIMIT = 4.5

PRIORS = TEST_PRIORS


def _prior_run(target: str, seed: int = 0) -> dict[str, np.ndarray]:
    k, d = 2, 2
    start = np.linalg.cholesky(PRIORS.wishart_df * PRIORS.wishart_scale)
    num_chains = 4
    initial = Params(
        np.full((num_chains, k), 1.0 / k),
        np.repeat(PRIORS.mean_loc[None], num_chains, axis=0),
        np.broadcast_to(start, (num_chains, k, d, d)).copy(),
    )
    settings = RunConfig(
        n_components=k, target=target, num_warmup=1000, num_draws=4000, num_leapfrog_steps=16
    ).sampler_settings(chain_method="sequential")
    run = sample_posterior(jax.random.key(seed), np.zeros((0, d)), PRIORS, initial, settings)
    return run.draws


def _prior_moment_z(draws, z_scores):
    chol = draws["chol_precision"]
    precision = chol @ np.swapaxes(chol, -1, -2)
    k = PRIORS.num_components
    lower = np.tril_indices(2)
    expected_t = PRIORS.wishart_df * PRIORS.wishart_scale
    return {
        "weights": z_scores(draws["weights"], PRIORS.concentration / PRIORS.concentration.sum()),
        "means": z_scores(draws["means"], PRIORS.mean_loc),
        "precision": z_scores(
            precision[..., lower[0], lower[1]], np.tile(expected_t[lower], (k, 1))
        ),
    }


@pytest.mark.slow
def test_prior_only_run_reproduces_prior_moments_with_jacobian(z_scores):
    z = _prior_moment_z(_prior_run("correct"), z_scores)
    for name, values in z.items():
        assert np.all(np.abs(values) < Z_LIMIT), f"{name}: z = {values}"


@pytest.mark.slow
def test_tutorial_density_misses_the_wishart_moments(z_scores):
    """Negative control: without the Jacobian E[T] is far from nu S (docs/design.md 1.2)."""
    z = _prior_moment_z(_prior_run("tutorial"), z_scores)
    assert np.max(np.abs(z["precision"])) > 10 * Z_LIMIT
