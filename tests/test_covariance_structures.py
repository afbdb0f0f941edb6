"""The covariance structures 'diag', 'tied' and 'spherical' (docs/design.md 1.6).

Closed-form checks against scipy (priors, likelihood), the unconstraining maps and their
log|J| against autodiff, the outputs' structure, and statistical checks of HMC, NUTS and
Gibbs per structure.

Statistical tests compare a Monte Carlo estimate with its exact value (or two runs with each
other) through |z| < Z_LIMIT = 4.5 with ArviZ's MCSE: a false failure has probability
6.8e-6 per moment for a normal estimate, so about 1e-3 for this whole file's ~125 moments
(prior-only runs ~38, Geweke ~60, sampler agreement ~27). Seeds are fixed for
reproducibility, not hunted. Each statistical check was seen to fail on a deliberately
broken kernel: the prior-only runs without the Jacobian of tau = l^2 (diag, spherical) or of
T = L L' (tied); the Geweke checks with a wrong Gamma rate (kept below as a negative
control), a wrong Gamma shape of the same prior mean (caught by the second moments) and a
wrong tied Wishart df; the agreement check with half the tied GEMM scatter term; the fit
check with per-column standardisation for 'spherical'.

Compiling, not sampling, is most of the cost (about 8-12 s per program on a 2-core CPU).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from geweke import expected_means_times_data, geweke_draws, prior_draw
from priors_for_tests import TEST_PRIORS
from scipy import stats

import bgmm
from bgmm.config import RunConfig
from bgmm.errors import UserError
from bgmm.inference import prepare_data, sample_posterior
from bgmm.model import Params, Priors, log_joint, log_prior
from bgmm.model.covariance import COVARIANCE_TYPES, gamma_prior, project_chol_precision
from bgmm.model.transforms import (
    UnconstrainedParams,
    to_constrained,
    to_unconstrained,
    unconstrained_log_det_jacobian,
)
from bgmm.samplers import gibbs
from bgmm.samplers.gibbs import gibbs_sweep

Z_LIMIT = 4.5
STRUCTURES = ("diag", "tied", "spherical")
PRIORS = TEST_PRIORS  # K = 2, D = 2, non-exchangeable, S not a multiple of I

jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


# ---------------------------------------------------------------------------
# Helpers: random structured parameters and the prior in scipy's terms
# ---------------------------------------------------------------------------


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


def random_priors(rng: np.random.Generator, k: int, d: int) -> Priors:
    return Priors(
        concentration=rng.uniform(0.5, 3.0, size=k),
        mean_loc=rng.normal(size=(k, d)),
        mean_scale=float(rng.uniform(0.5, 2.0)),
        wishart_df=float(d + rng.uniform(0.5, 4.0)),
        wishart_scale=random_spd(rng, d),
    )


def random_structured(rng: np.random.Generator, k: int, d: int, structure: str) -> Params:
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d))
    if structure == "diag":
        chol = np.eye(d) * rng.uniform(0.3, 3.0, size=(k, 1, d))
    elif structure == "spherical":
        chol = np.eye(d) * rng.uniform(0.3, 3.0, size=(k, 1, 1))
    else:
        one = np.tril(rng.normal(size=(d, d)), -1) + np.diag(rng.uniform(0.3, 3.0, size=d))
        chol = np.broadcast_to(one, (k, d, d)).copy()
    return Params(weights, means, chol)


def precision_parameters(chol: np.ndarray, structure: str) -> np.ndarray:
    """The free precision parameters of draws (..., K, D, D): tau (..., K, D) for 'diag',
    (..., K) for 'spherical', the lower triangle of T (..., D(D+1)/2) for 'tied'."""
    if structure == "diag":
        return np.diagonal(chol, axis1=-2, axis2=-1) ** 2
    if structure == "spherical":
        return chol[..., 0, 0] ** 2
    t = chol[..., 0, :, :] @ np.swapaxes(chol[..., 0, :, :], -1, -2)
    rows, cols = np.tril_indices(chol.shape[-1])
    return t[..., rows, cols]


def prior_precision_mean(priors: Priors, structure: str, power: int = 1) -> np.ndarray:
    """E of :func:`precision_parameters` (``power`` 1) or of their squares (2) under the
    prior: Gamma(a, b) has E tau^2 = a (a + 1) / b^2; Wishart(nu, S) has
    E T_ij^2 = nu^2 S_ij^2 + nu (S_ii S_jj + S_ij^2)."""
    k, d = priors.num_components, priors.num_features
    nu, s = priors.wishart_df, priors.wishart_scale
    if structure == "tied":
        rows, cols = np.tril_indices(d)
        if power == 1:
            return (nu * s)[rows, cols]
        diag = np.diag(s)
        return (nu**2 * s**2 + nu * (np.outer(diag, diag) + s**2))[rows, cols]
    shape, rate = gamma_prior(priors, structure)
    mean = shape / rate if power == 1 else shape * (shape + 1) / rate**2
    return np.tile(mean, (k, 1)) if structure == "diag" else np.full(k, mean[0])


def scipy_precision_log_prior(chol: np.ndarray, priors: Priors, structure: str) -> float:
    nu, s = priors.wishart_df, priors.wishart_scale
    d = chol.shape[-1]
    if structure == "tied":
        c = chol[0]
        jacobian = d * np.log(2.0) + np.sum(np.arange(d, 0, -1) * np.log(np.diag(c)))
        return stats.wishart.logpdf(c @ c.T, nu, s) + jacobian
    if structure == "diag":
        l = np.diagonal(chol, axis1=-2, axis2=-1)  # (K, D)
        # T_dd of T ~ Wishart(nu, S) is S_dd chi2(nu): Gamma(nu / 2, scale 2 S_dd).
        lp = stats.gamma.logpdf(l**2, nu / 2, scale=2 * np.diag(s))
    else:
        l = chol[:, 0, 0]
        lp = stats.gamma.logpdf(l**2, nu * d / 2, scale=2 * np.trace(s) / d**2)
    return float(np.sum(lp + np.log(2 * l)))  # tau = l^2: |dtau/dl| = 2 l


def scipy_log_prior(params: Params, priors: Priors, structure: str) -> float:
    weights, means, chol = (np.asarray(x) for x in params)
    total = stats.dirichlet.logpdf(weights, priors.concentration)
    total += np.sum(stats.norm.logpdf(means, priors.mean_loc, priors.mean_scale))
    return float(total + scipy_precision_log_prior(chol, priors, structure))


def scipy_log_likelihood(params: Params, y: np.ndarray) -> float:
    weights, means, chol = (np.asarray(x) for x in params)
    dens = sum(
        w * stats.multivariate_normal.pdf(y, m, np.linalg.inv(c @ c.T))
        for w, m, c in zip(weights, means, chol, strict=True)
    )
    return float(np.sum(np.log(dens)))


# ---------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("structure", STRUCTURES)
def test_log_prior_and_log_joint_match_scipy(structure):
    rng = np.random.default_rng(11)
    k, d, n = 3, 3, 7
    priors = random_priors(rng, k, d)
    y = rng.normal(size=(n, d)) * 1.5

    features = prepare_data(y, jnp.float64, "gemm", structure)
    full_features = prepare_data(y, jnp.float64, "gemm")
    assert features.phi.shape[1] == {"diag": 7, "spherical": 5, "tied": 4}[structure]

    @jit
    def evaluate(p, y, features, full_features):
        direct = log_joint(p, y, priors, "correct", structure)
        gemm = log_joint(p, features, priors, "correct", structure)
        gemm_full = log_joint(p, full_features, priors, "correct", structure)
        return log_prior(p, priors, "correct", structure), direct, gemm, gemm_full

    for _ in range(3):
        params = random_structured(rng, k, d, structure)
        lp, direct, gemm, gemm_full = (
            float(x) for x in evaluate(params, y, features, full_features)
        )
        expected_prior = scipy_log_prior(params, priors, structure)
        np.testing.assert_allclose(lp, expected_prior, rtol=1e-10)
        expected = expected_prior + scipy_log_likelihood(params, y)
        np.testing.assert_allclose(direct, expected, rtol=1e-10)
        np.testing.assert_allclose(gemm, expected, rtol=1e-9)
        np.testing.assert_allclose(gemm_full, expected, rtol=1e-9)


def test_one_dimension_one_component_every_structure_is_the_full_model():
    """D = 1, K = 1: Wishart(nu, s) is Gamma(nu / 2, rate 1 / (2 s)) and a tied precision is
    the one precision, so all four log densities agree."""
    priors = Priors(np.ones(1), np.zeros((1, 1)), 1.5, 3.5, np.array([[0.7]]))
    params = Params(jnp.ones(1), jnp.array([[0.3]]), jnp.array([[[1.7]]]))
    values = jit(lambda p: [log_prior(p, priors, "correct", s) for s in COVARIANCE_TYPES])(params)
    np.testing.assert_allclose(values, values[0], rtol=1e-12)


def test_tutorial_target_is_full_only():
    params = Params(
        *(jnp.asarray(a) for a in random_structured(np.random.default_rng(0), 2, 2, "diag"))
    )
    with pytest.raises(ValueError, match="tutorial"):
        log_prior(params, PRIORS, "tutorial", "diag")
    for structure in STRUCTURES:
        with pytest.raises(UserError) as error:
            RunConfig(
                n_components=3, priors="tutorial", target="tutorial", covariance_type=structure
            )
        assert error.value.option == "covariance_type"
    with pytest.raises(UserError) as error:
        RunConfig(covariance_type="banded")
    assert error.value.option == "covariance_type"


def test_settings_name_the_structure():
    """The structure is part of the programs' identity (docs/design.md 5, 11)."""
    settings = {
        s: RunConfig(covariance_type=s).sampler_settings(chain_method="sequential")
        for s in COVARIANCE_TYPES
    }
    assert len(set(settings.values())) == len(COVARIANCE_TYPES)
    assert all(v.covariance_type == s for s, v in settings.items())


# ---------------------------------------------------------------------------
# Unconstraining maps
# ---------------------------------------------------------------------------


def free_constrained(chol: jax.Array, structure: str) -> jax.Array:
    """The free precision parameters of (K, D, D) factors, flattened."""
    d = chol.shape[-1]
    if structure == "tied":
        rows, cols = np.tril_indices(d)
        return chol[0, rows, cols]
    if structure == "diag":
        return jnp.diagonal(chol, axis1=-2, axis2=-1).reshape(-1)
    return chol[:, 0, 0]


@pytest.mark.parametrize("structure", STRUCTURES)
def test_transform_round_trip_structure_and_log_jacobian(structure):
    rng = np.random.default_rng(5)
    k, d = 3, 3
    width = {"diag": (k, d), "spherical": (k, 1), "tied": (1, d * (d + 1) // 2)}[structure]
    u = UnconstrainedParams(
        jnp.asarray(rng.normal(size=k - 1)),
        jnp.asarray(rng.normal(size=(k, d))),
        jnp.asarray(rng.normal(size=width) * 1.5),
    )

    @jit
    def evaluate(u):
        params = to_constrained(u, d, structure)
        log_jac = unconstrained_log_det_jacobian(u, d, structure)

        def precision_map(raw):
            chol = to_constrained(u._replace(chol_precision=raw.reshape(width)), d, structure)
            return free_constrained(chol.chol_precision, structure)

        def weights_map(x):
            return to_constrained(u._replace(weights=x), d, structure).weights[: k - 1]

        jac = jax.jacfwd(precision_map)(u.chol_precision.reshape(-1))
        jac_w = jax.jacfwd(weights_map)(u.weights)
        numeric = jnp.linalg.slogdet(jac)[1] + jnp.linalg.slogdet(jac_w)[1]
        return params, to_unconstrained(params, structure), log_jac, numeric

    params, back, log_jac, numeric = evaluate(u)
    for a, b in zip(back, u, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(log_jac), float(numeric), rtol=1e-10)
    chol = np.asarray(params.chol_precision)
    assert chol.shape == (k, d, d)
    np.testing.assert_array_equal(np.triu(chol, 1), 0.0)
    assert np.all(np.diagonal(chol, axis1=-2, axis2=-1) > 0)
    if structure in ("diag", "spherical"):
        np.testing.assert_array_equal(np.tril(chol, -1), 0.0)
    if structure == "spherical":
        np.testing.assert_array_equal(chol, chol[:, :1, :1] * np.eye(d))
    if structure == "tied":
        np.testing.assert_array_equal(chol, np.broadcast_to(chol[0], chol.shape))


@pytest.mark.parametrize("structure", STRUCTURES)
def test_projection_of_starts(structure):
    rng = np.random.default_rng(2)
    k, d = 3, 3
    cov = np.stack([random_spd(rng, d) for _ in range(k)])
    chol = np.linalg.cholesky(np.linalg.inv(cov))
    weights = np.array([0.2, 0.3, 0.5])
    projected = project_chol_precision(chol, weights, structure)
    got = np.linalg.inv(projected @ np.swapaxes(projected, -1, -2))
    if structure == "diag":
        expected = np.stack([np.diag(np.diag(c)) for c in cov])
    elif structure == "spherical":
        expected = np.stack([np.trace(c) / d * np.eye(d) for c in cov])
    else:
        expected = np.broadcast_to(np.einsum("k,kde->de", weights, cov), cov.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    again = project_chol_precision(projected, weights, structure)
    np.testing.assert_allclose(again, projected, rtol=1e-10)


# ---------------------------------------------------------------------------
# Prior-only runs: HMC and Gibbs reproduce the prior's moments
# ---------------------------------------------------------------------------


def _starts(structure: str, num_chains: int, seed: int = 0) -> Params:
    rng = np.random.default_rng(seed)
    k, d = PRIORS.num_components, PRIORS.num_features
    starts = [random_structured(rng, k, d, structure) for _ in range(num_chains)]
    return Params(*(np.stack(a) for a in zip(*starts, strict=True)))


def _run(structure, sampler, data, num_warmup, num_draws, num_chains=4, seed=0, **options):
    settings = RunConfig(
        n_components=2,
        covariance_type=structure,
        sampler=sampler,
        num_warmup=num_warmup,
        num_draws=num_draws,
        **options,
    ).sampler_settings(chain_method="vectorized")
    run = sample_posterior(
        jax.random.key(seed), data, PRIORS, _starts(structure, num_chains, seed), settings
    )
    return run.draws


def _prior_z(draws, structure, z_scores):
    return {
        "weights": z_scores(draws["weights"], PRIORS.concentration / PRIORS.concentration.sum()),
        "means": z_scores(draws["means"], PRIORS.mean_loc),
        "precision": z_scores(
            precision_parameters(draws["chol_precision"], structure),
            prior_precision_mean(PRIORS, structure),
        ),
    }


# HMC for every structure; Gibbs (whose sweep the Geweke tests below check for every
# structure) once through the runner with N = 0, where every component is empty.
PRIOR_RUNS = [("diag", "hmc"), ("tied", "hmc"), ("spherical", "hmc"), ("spherical", "gibbs")]


@pytest.mark.slow
@pytest.mark.parametrize(("structure", "sampler"), PRIOR_RUNS)
def test_prior_only_run_reproduces_prior_moments(structure, sampler, z_scores):
    """With N = 0 the posterior is the prior. Up to 12 moments per run at |z| < 4.5."""
    draws = _run(structure, sampler, np.zeros((0, 2)), 500, 4000)
    assert_structured(draws["chol_precision"], structure)
    for name, z in _prior_z(draws, structure, z_scores).items():
        assert np.all(np.abs(z) < Z_LIMIT), f"{name}: z = {z}"


def assert_structured(chol: np.ndarray, structure: str) -> None:
    chol = np.asarray(chol)
    np.testing.assert_array_equal(np.triu(chol, 1), 0.0)
    if structure in ("diag", "spherical"):
        np.testing.assert_array_equal(np.tril(chol, -1), 0.0)
    if structure == "spherical":
        diagonal = np.diagonal(chol, axis1=-2, axis2=-1)
        np.testing.assert_array_equal(diagonal, np.broadcast_to(diagonal[..., :1], diagonal.shape))
    if structure == "tied":
        np.testing.assert_array_equal(chol, np.broadcast_to(chol[..., :1, :, :], chol.shape))


# ---------------------------------------------------------------------------
# Gibbs conditionals: Geweke's successive-conditional simulator
# ---------------------------------------------------------------------------

GEWEKE_N = 3
GEWEKE_CHAINS = 4
GEWEKE_STEPS = 8000


def _geweke_draws(structure: str, seed: int, num_steps: int) -> tuple[Params, np.ndarray]:
    rng = np.random.default_rng(seed)
    starts = [prior_draw(rng, PRIORS, structure) for _ in range(GEWEKE_CHAINS)]

    def sweep(key, params, data):
        return gibbs_sweep(key, params, data, PRIORS, structure)[0]

    return geweke_draws(sweep, starts, seed, num_steps, GEWEKE_N)


def _geweke_z(draws: Params, data_mean: np.ndarray, structure: str, z_scores):
    """Prior moments of the parameters (the marginal of the joint p(params, y)), the
    precisions' first and second, and E[mu_k y_bar'] = E[theta_k] s0^2 I +
    sum_j E[theta_j] m0_k m0_j' (the data's use)."""
    alpha = PRIORS.concentration
    mean_theta = alpha / alpha.sum()
    m0 = PRIORS.mean_loc
    precision = precision_parameters(draws.chol_precision, structure)
    mu_y = draws.means[..., :, :, None] * data_mean[..., None, None, :]
    expected_mu_y = expected_means_times_data(PRIORS)
    return {
        "weights": z_scores(draws.weights, mean_theta),
        "means": z_scores(draws.means, m0),
        "precision": z_scores(precision, prior_precision_mean(PRIORS, structure)),
        "precision squared": z_scores(precision**2, prior_precision_mean(PRIORS, structure, 2)),
        "means x data": z_scores(mu_y, expected_mu_y),
    }


@pytest.mark.slow
@pytest.mark.parametrize("structure", STRUCTURES)
def test_geweke_joint_distribution(structure, z_scores):
    """Up to 22 moments at |z| < 4.5: a false failure about once in 7000 runs."""
    draws, data_mean = _geweke_draws(structure, seed=3, num_steps=GEWEKE_STEPS)
    assert_structured(draws.chol_precision, structure)
    for name, z in _geweke_z(draws, data_mean, structure, z_scores).items():
        assert np.all(np.abs(z) < Z_LIMIT), f"{name}: z = {z}"


@pytest.mark.slow
def test_geweke_detects_a_broken_precision_conditional(z_scores, monkeypatch):
    """Negative control: a 'diag' conditional that forgets the prior's rate must fail."""
    correct = gibbs.gamma_prior

    def broken(priors, covariance_type):
        shape, rate = correct(priors, covariance_type)
        return shape, 0.5 * rate

    monkeypatch.setattr(gibbs, "gamma_prior", broken)
    draws, data_mean = _geweke_draws("diag", seed=4, num_steps=GEWEKE_STEPS // 4)
    z = _geweke_z(draws, data_mean, "diag", z_scores)
    assert np.max(np.abs(z["precision"])) > 2 * Z_LIMIT


# ---------------------------------------------------------------------------
# Posterior: HMC, NUTS and Gibbs agree; a fit recovers the structure
# ---------------------------------------------------------------------------


def _small_data() -> np.ndarray:
    """20 rows near each prior mean of TEST_PRIORS, so the labels stay put."""
    rng = np.random.default_rng(1)
    a = np.array([-1.5, 0.0]) + rng.normal(size=(20, 2)) * [0.4, 0.8]
    b = np.array([1.5, 0.5]) + rng.normal(size=(20, 2)) * [0.7, 0.3]
    return np.concatenate([a, b])


# NUTS against Gibbs for every structure, and HMC too for 'tied': HMC and NUTS share each
# structure's log density (which the prior-only runs above sample with HMC for every
# structure), and compiling, not sampling, is the cost of each run.
AGREEMENT = {"diag": ("nuts",), "spherical": ("nuts",), "tied": ("hmc", "nuts")}


@pytest.mark.slow
@pytest.mark.parametrize("structure", STRUCTURES)
def test_hmc_nuts_and_gibbs_agree(structure, two_run_z):
    """One pair of runs, up to 10 posterior means, at |z| < 4.5."""
    data = _small_data()
    samplers = (*AGREEMENT[structure], "gibbs")
    runs = {
        sampler: _run(structure, sampler, data, 500, 3000, seed=i)
        for i, sampler in enumerate(samplers)
    }

    def summaries(draws):
        return {
            "weights": draws["weights"],
            "means": draws["means"],
            "precision": precision_parameters(draws["chol_precision"], structure),
        }

    gibbs_run = summaries(runs["gibbs"])
    for sampler in AGREEMENT[structure]:
        assert_structured(runs[sampler]["chol_precision"], structure)
        for name, values in summaries(runs[sampler]).items():
            z = two_run_z(values, gibbs_run[name])
            assert np.all(np.abs(z) < Z_LIMIT), f"{sampler} vs gibbs, {name}: z = {z}"


@pytest.mark.slow
@pytest.mark.parametrize(("structure", "sampler"), [("diag", "hmc"), ("spherical", "gibbs")])
def test_fit_recovers_the_structure(structure, sampler):
    """A BayesianGMM fit on well separated clusters of the structure, in data units (with
    the default priors, so standardised), finds their means and variances."""
    rng = np.random.default_rng(0)
    # Clusters wide enough against the data's spread that the default prior (one unit of
    # variance per pseudo-observation in standardised units) moves no variance by over 15%.
    sds = {"diag": np.array([[1.0, 2.0], [2.5, 0.7]]), "spherical": np.array([[1.0], [2.5]])}
    sd = np.broadcast_to(sds[structure], (2, 2))
    centres = np.array([[0.0, 0.0], [8.0, -8.0]])
    n = 600
    labels = np.arange(n) % 2
    x = centres[labels] + sd[labels] * rng.normal(size=(n, 2))
    model = bgmm.BayesianGMM(
        2, covariance_type=structure, sampler=sampler, num_chains=2, num_warmup=300, num_draws=300
    ).fit(x)
    order = np.argsort(model.means_[:, 0])
    np.testing.assert_allclose(model.means_[order], centres, atol=0.6)
    cov = model.idata_.posterior["covariance"].mean(("chain", "draw")).values[order]
    np.testing.assert_allclose(np.diagonal(cov, axis1=-2, axis2=-1), sd**2, rtol=0.25)
    np.testing.assert_allclose(cov[:, 0, 1], 0.0, atol=1e-12)
    # scikit-learn's shapes: (K, D) diag, (K,) spherical.
    expected = np.diagonal(cov, axis1=-2, axis2=-1)
    if structure == "spherical":
        expected = expected.mean(axis=1)
    np.testing.assert_allclose(model.covariances_[order], expected, rtol=1e-12)
    draws = model.idata_.posterior["chol_precision"].values
    assert draws.shape == (2, 300, 2, 2, 2)
    assert_structured(draws, structure)
    assert model.result_.settings["covariance_type"] == structure


@pytest.mark.slow
def test_cli_fit_with_a_covariance_structure(tmp_path):
    """``bgmm fit --covariance diag`` end to end, as a subprocess."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal([0, 0], [1, 3], (60, 2)), rng.normal([8, 8], [2, 0.5], (60, 2))])
    np.savetxt(tmp_path / "d.csv", x, delimiter=",", header="a,b", comments="")
    # The subprocess runs the bgmm this process imported (a source tree on PYTHONPATH too).
    source = str(Path(bgmm.__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path}
    command = [sys.executable, "-m", "bgmm.cli", "fit", "d.csv", "-k", "2", "--covariance"]
    short = ["--chains", "2", "--warmup", "100", "--draws", "100", "--no-plots", "--json"]

    def bgmm_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args), cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
        )

    proc = bgmm_cli(*command, "diag", *short, "--out", "o")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["covariance_type"] == "diag"
    cov = np.asarray(record["covariance_mean"])
    np.testing.assert_array_equal(cov[:, 0, 1], 0.0)
    assert (tmp_path / "o" / "posterior.nc").exists()
    summary = bgmm_cli(sys.executable, "-m", "bgmm.cli", "summary", "o/posterior.nc")
    assert summary.returncode == 0, summary.stderr
    assert "covariance_type=diag" in summary.stdout
    refused = bgmm_cli(
        *command, "spherical", "--target", "tutorial", "--priors", "tutorial", "-k", "3"
    )
    assert refused.returncode == 2 and refused.stderr.startswith("error: --covariance"), (
        refused.stderr
    )
