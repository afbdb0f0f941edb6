"""Tests for the exact Gibbs sampler (bgmm.samplers.gibbs, docs/design.md 1.5).

Statistical tests compare a Monte Carlo estimate with its exact value through
|estimate - truth| / MCSE < Z_LIMIT = 4.5: for a normal estimate a false failure has
probability 6.8e-6 per moment, so about 1e-4 per test over its 5-20 moments. Independent
draws (one conditional vmapped over many keys) use MCSE = sd / sqrt(n); Markov chains use
ArviZ's MCSE (conftest ``z_scores``). Seeds are fixed for reproducibility, not hunted.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from geweke import expected_means_times_data, geweke_draws, prior_draw
from priors_for_tests import TEST_PRIORS

import bgmm  # noqa: F401  (turns on float64)
from bgmm.model import Params, Priors, component_log_joint, log_joint, tutorial_priors
from bgmm.samplers import gibbs, gibbs_precisions
from bgmm.samplers.gibbs import (
    GibbsInfo,
    GibbsState,
    build_gibbs_kernel,
    cholesky_of_inverse,
    conjugate_gamma_shapes,
    dirichlet_concentration,
    gibbs_sweep,
    precision_cholesky_from_parts,
    sample_assignments,
    sample_means,
    sample_precision_cholesky,
    sample_weights,
    scatter_about_means,
    sufficient_statistics,
    wishart_cholesky_sample,
)
from bgmm.tutorial import tutorial_data, tutorial_start

Z_LIMIT = 4.5
NUM_IID = 20000

# Compiled without LLVM optimisation: half the compile time, which dominates these short runs,
# and the same arithmetic (no fast-math either way).
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

# Non-exchangeable priors (as tests/test_prior_only.py): a swapped label or a dropped prior
# term changes the moments.
PRIORS = TEST_PRIORS


def _iid_z(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(mean - truth) / (sd / sqrt(n)) for independent draws along axis 0."""
    draws = np.asarray(draws)
    return (draws.mean(axis=0) - truth) / (draws.std(axis=0, ddof=1) / np.sqrt(len(draws)))


def _keys(seed: int, num: int = NUM_IID) -> jax.Array:
    return jax.random.split(jax.random.key(seed), num)


def _precision(chol: np.ndarray) -> np.ndarray:
    return chol @ np.swapaxes(chol, -1, -2)


# ---------------------------------------------------------------------------
# Each conditional against its closed form (independent draws)
# ---------------------------------------------------------------------------


def test_cholesky_of_inverse():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 3, 3))
    matrix = a @ np.swapaxes(a, -1, -2) + np.eye(3)
    chol = np.asarray(jit(cholesky_of_inverse)(jnp.asarray(matrix)))
    np.testing.assert_allclose(chol, np.linalg.cholesky(np.linalg.inv(matrix)), rtol=1e-10)


def test_weights_draw_is_dirichlet():
    # 3 components, 6 moments (mean and variance of each weight); 0.1 + 0 exercises the
    # log-space Gamma draw of a small concentration.
    concentration = jnp.array([0.1, 2.0, 3.0])
    counts = jnp.array([0.0, 5.0, 1.0])
    draws = np.asarray(jit(jax.vmap(lambda k: sample_weights(k, concentration, counts)))(_keys(1)))
    assert np.all(draws > 0)
    np.testing.assert_allclose(draws.sum(axis=1), 1.0, rtol=1e-12)
    alpha = np.asarray(concentration + counts)
    total = alpha.sum()
    mean = alpha / total
    variance = mean * (1 - mean) / (total + 1)
    assert np.all(np.abs(_iid_z(draws, mean)) < Z_LIMIT)
    assert np.all(np.abs(_iid_z((draws - mean) ** 2, variance)) < Z_LIMIT)


def test_means_draw_matches_conjugate_normal():
    # K = 2 (one empty component: its draw is the prior), D = 2; 2 x (2 means + 3 covariances)
    # = 10 moments.
    chol = np.array([[[1.5, 0.0], [0.4, 0.8]], [[0.7, 0.0], [-0.3, 1.2]]])
    counts = np.array([0.0, 7.0])
    sums = np.array([[0.0, 0.0], [3.5, -2.1]])
    mean_loc = np.array([[-1.0, 0.0], [1.0, 0.5]])
    mean_scale = 1.3
    draws = np.asarray(
        jit(
            jax.vmap(
                lambda k: sample_means(
                    k, jnp.asarray(chol), jnp.asarray(counts), jnp.asarray(sums), mean_loc, 1.3
                )
            )
        )(_keys(2))
    )
    precision = _precision(chol)
    for k in range(2):
        post_precision = np.eye(2) / mean_scale**2 + counts[k] * precision[k]
        cov = np.linalg.inv(post_precision)
        mean = cov @ (mean_loc[k] / mean_scale**2 + precision[k] @ sums[k])
        assert np.all(np.abs(_iid_z(draws[:, k], mean)) < Z_LIMIT)
        centred = draws[:, k] - mean
        products = np.stack([centred[:, i] * centred[:, j] for i, j in ((0, 0), (1, 0), (1, 1))])
        truth = np.array([cov[0, 0], cov[1, 0], cov[1, 1]])
        assert np.all(np.abs(_iid_z(products.T, truth)) < Z_LIMIT)


@pytest.mark.parametrize("df", [4.5, 30.0])
def test_bartlett_draw_has_wishart_moments(df):
    # D = 3 with a non-integer df checks the df - j of every diagonal chi-square; 6 means
    # and 6 variances of the entries of T.
    a = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]])
    scale = a @ a.T
    scale_chol = np.linalg.cholesky(scale)
    chol = np.asarray(
        jit(jax.vmap(lambda k: wishart_cholesky_sample(k, df, jnp.asarray(scale_chol))))(_keys(3))
    )
    np.testing.assert_array_equal(np.triu(chol, k=1), 0.0)
    assert np.all(np.diagonal(chol, axis1=-2, axis2=-1) > 0)
    t = _precision(chol)
    rows, cols = np.tril_indices(3)
    mean = df * scale
    variance = df * (scale**2 + np.outer(np.diag(scale), np.diag(scale)))
    entries = t[:, rows, cols]
    assert np.all(np.abs(_iid_z(entries, mean[rows, cols])) < Z_LIMIT)
    squares = (entries - mean[rows, cols]) ** 2
    assert np.all(np.abs(_iid_z(squares, variance[rows, cols])) < Z_LIMIT)


def test_precision_draw_matches_conjugate_wishart():
    # K = 2 (one empty: the prior Wishart(nu, S)), D = 2: 6 means of T.
    counts = jnp.array([0.0, 4.0])
    scatter = jnp.array([[[0.0, 0.0], [0.0, 0.0]], [[3.0, -0.5], [-0.5, 1.2]]])
    scale_inv = np.linalg.inv(PRIORS.wishart_scale)
    draws = jit(
        jax.vmap(
            lambda k: sample_precision_cholesky(
                k, counts, scatter, PRIORS.wishart_df, jnp.asarray(scale_inv)
            )
        )
    )(_keys(4))
    t = _precision(np.asarray(draws))
    rows, cols = np.tril_indices(2)
    for k in range(2):
        expected = (PRIORS.wishart_df + counts[k]) * np.linalg.inv(scale_inv + scatter[k])
        assert np.all(np.abs(_iid_z(t[:, k, rows, cols], expected[rows, cols])) < Z_LIMIT)


def test_assignment_draw_frequencies_match_softmax():
    # K = 3, N = 4: 12 frequencies (the zero-probability ones are checked exactly).
    logits = jnp.array(
        [
            [0.0, 3.0, -2.0, -1000.0],
            [1.0, 3.0, -2.5, 0.0],
            [-jnp.inf, -1.0, -2.0, 5.0],
        ]
    )
    draws = np.asarray(jit(jax.vmap(lambda k: sample_assignments(k, logits)))(_keys(5)))
    assert draws.dtype == np.int32
    probs = np.asarray(jax.nn.softmax(logits, axis=0))
    one_hot = draws[..., None] == np.arange(3)  # (draws, N, K)
    freq = one_hot.mean(axis=0).T
    assert not one_hot[:, 0, 2].any() and not one_hot[:, 3, 0].any()
    positive = probs > 0
    se = np.sqrt(probs * (1 - probs) / NUM_IID)
    z = (freq - probs)[positive] / se[positive]
    assert np.all(np.abs(z[se[positive] > 0]) < Z_LIMIT)


def test_sufficient_statistics_and_scatter():
    rng = np.random.default_rng(6)
    data = rng.normal(size=(9, 2)) + 100.0  # far from the origin: nothing may cancel
    assignments = np.array([0, 2, 2, 0, 2, 0, 0, 2, 2])
    means = rng.normal(size=(3, 2)) + 100.0
    one_hot, counts, sums = sufficient_statistics(jnp.asarray(assignments), jnp.asarray(data), 3)
    scatter = scatter_about_means(jnp.asarray(assignments), one_hot, jnp.asarray(data), means)
    for k in range(3):
        rows = data[assignments == k]
        assert counts[k] == len(rows)
        np.testing.assert_allclose(sums[k], rows.sum(axis=0), rtol=1e-12)
        centred = rows - means[k]
        np.testing.assert_allclose(scatter[k], centred.T @ centred, rtol=1e-10, atol=1e-12)


def test_gamma_shapes_of_weights_and_bartlett_diagonals():
    counts = jnp.array([0.0, 4.0, 9.0])
    alpha = np.array([0.1, 2.0, 3.0])
    np.testing.assert_array_equal(dirichlet_concentration(alpha, counts), [0.1, 6.0, 12.0])
    shapes = np.asarray(conjugate_gamma_shapes(alpha, 5.0, counts, 2))
    assert shapes.shape == (3, 3)
    np.testing.assert_array_equal(shapes[:, 0], alpha + np.asarray(counts))
    nu_n = 5.0 + np.asarray(counts)
    np.testing.assert_array_equal(shapes[:, 1:], np.stack([nu_n / 2, (nu_n - 1) / 2], axis=1))


def test_precision_cholesky_from_parts_is_scale_factor_times_bartlett():
    rng = np.random.default_rng(11)
    a = rng.normal(size=(2, 2, 2))
    scatter = a @ np.swapaxes(a, -1, -2)
    scale_inv = np.linalg.inv(PRIORS.wishart_scale)
    log_gamma = rng.normal(size=(2, 2))
    normal = rng.normal(size=(2, 2, 2))
    chol = np.asarray(
        precision_cholesky_from_parts(
            *(jnp.asarray(x) for x in (scatter, scale_inv, log_gamma)), jnp.asarray(normal)
        )
    )
    for k in range(2):
        bartlett = np.tril(normal[k], -1) + np.diag(np.sqrt(2 * np.exp(log_gamma[k])))
        expected = np.linalg.cholesky(np.linalg.inv(scale_inv + scatter[k])) @ bartlett
        np.testing.assert_allclose(chol[k], expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# Wiring: the sweep draws through the very helpers the tests above check
# ---------------------------------------------------------------------------

SWEEP_HELPERS = (
    "sample_assignments",
    "sufficient_statistics",
    "conjugate_gamma_shapes",
    "dirichlet_concentration",
    "bartlett_shapes",
    "weights_from_log_gamma",
    "sample_means",
    "scatter_about_means",
    "precision_cholesky_from_parts",
    "cholesky_of_inverse",
    "bartlett_factor",
)


class _Called(Exception):
    pass


def _refuse_everywhere(monkeypatch, name):
    """``name`` refused wherever the sweep's modules look it up (gibbs imports the
    precisions' helpers from gibbs_precisions)."""
    for module in (gibbs, gibbs_precisions):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, _refuse(name))


def _refuse(name):
    def refuse(*args, **kwargs):
        raise _Called(name)

    return refuse


def _trace_sweep():
    """Trace (not run) one sweep on tutorial-sized K = 2, D = 2 inputs."""
    rng = np.random.default_rng(12)
    data = jnp.asarray(rng.normal(size=(6, 2)))
    start = Params(
        jnp.array([0.4, 0.6]), jnp.asarray(rng.normal(size=(2, 2))), jnp.stack([jnp.eye(2)] * 2)
    )
    jax.eval_shape(lambda k: gibbs_sweep(k, start, data, PRIORS), jax.random.key(0))


@pytest.mark.parametrize("name", SWEEP_HELPERS)
def test_sweep_calls_the_tested_helper(name, monkeypatch):
    _trace_sweep()  # the unpatched sweep traces
    _refuse_everywhere(monkeypatch, name)
    with pytest.raises(_Called, match=name):
        _trace_sweep()


@pytest.mark.parametrize(
    ("sampler", "helper"),
    [
        ("sample_weights", "dirichlet_concentration"),
        ("sample_weights", "weights_from_log_gamma"),
        ("sample_precision_cholesky", "precision_cholesky_from_parts"),
    ],
)
def test_unit_tested_samplers_share_the_sweeps_helpers(sampler, helper, monkeypatch):
    """The closed-form tests of sample_weights and sample_precision_cholesky cover the
    helpers the sweep calls with its shared Gamma draw."""
    counts = jnp.array([0.0, 4.0])
    args = {
        "sample_weights": (jnp.array([2.0, 3.0]), counts),
        "sample_precision_cholesky": (counts, jnp.zeros((2, 2, 2)), 5.0, jnp.eye(2)),
    }[sampler]
    _refuse_everywhere(monkeypatch, helper)
    with pytest.raises(_Called, match=helper):
        jax.eval_shape(lambda k: getattr(gibbs, sampler)(k, *args), jax.random.key(0))


def test_sweep_weights_follow_the_counts():
    """One sweep from the truth on two far-apart clusters of 30 and 10 points: the
    assignments are certain (wrong-component probability below e^-400), so theta | z is
    Dirichlet(alpha0 + [30, 10]) exactly. Mean and variance of theta_0 over independent
    sweeps; a Dirichlet that ignored the counts (Beta(2, 3), mean 0.4) is |z| > 100 away."""
    rng = np.random.default_rng(13)
    data = jnp.asarray(
        np.concatenate([rng.normal(-10, 0.3, size=(30, 2)), rng.normal(10, 0.3, size=(10, 2))])
    )
    start = Params(
        jnp.array([0.75, 0.25]),
        jnp.array([[-10.0, -10.0], [10.0, 10.0]]),
        jnp.stack([3.0 * jnp.eye(2)] * 2),
    )
    sweep = jit(jax.vmap(lambda k: gibbs_sweep(k, start, data, PRIORS)))
    params, occupied = sweep(_keys(14, 4000))
    np.testing.assert_array_equal(occupied, 2)
    theta = np.asarray(params.weights[:, 0])
    alpha = np.asarray(PRIORS.concentration) + np.array([30.0, 10.0])
    mean = alpha[0] / alpha.sum()
    variance = mean * (1 - mean) / (alpha.sum() + 1)
    assert abs(_iid_z(theta, mean)) < Z_LIMIT
    assert abs(_iid_z((theta - mean) ** 2, variance)) < Z_LIMIT


# ---------------------------------------------------------------------------
# Geweke (2004) joint-distribution test: alternate a sweep given y with y ~ p(y | params);
# the chain's stationary law is the joint p(params, y), so its params marginal is the prior.
# ---------------------------------------------------------------------------

GEWEKE_N = 3
GEWEKE_CHAINS = 4
GEWEKE_STEPS = 25000


def _geweke_draws(priors: Priors, seed: int, num_steps: int) -> tuple[Params, np.ndarray]:
    rng = np.random.default_rng(seed)
    starts = [prior_draw(rng, priors) for _ in range(GEWEKE_CHAINS)]

    def sweep(key, params, data):
        return gibbs_sweep(key, params, data, priors)[0]

    return geweke_draws(sweep, starts, seed, num_steps, GEWEKE_N)


def _geweke_z(draws: Params, data_mean: np.ndarray, priors: Priors, z_scores):
    """z of 28 moments of the joint p(params, y), keyed by name.

    Prior moments of the params: E theta (2), E mu (4), E (mu - m0)^2 (4), E T = nu S (6).
    Cross moments with the mean y_bar of the data the sweep was given, which under the joint
    has E[y_bar | params] = sum_j theta_j mu_j:
    E[theta_k y_bar] = sum_j E[theta_k theta_j] m0_j (4) and
    E[mu_k y_bar'] = E[theta_k] s0^2 I + E[sum_j theta_j m0_k m0_j'] (8).
    """
    alpha = priors.concentration
    total = alpha.sum()
    mean_theta = alpha / total
    second_theta = (np.outer(alpha, alpha) + np.diag(alpha)) / (total * (total + 1))
    m0, s0 = priors.mean_loc, priors.mean_scale
    rows, cols = np.tril_indices(2)
    t = _precision(draws.chol_precision)[..., rows, cols]
    expected_t = np.tile((priors.wishart_df * priors.wishart_scale)[rows, cols], (2, 1))
    theta_y = draws.weights[..., :, None] * data_mean[..., None, :]
    mu_y = draws.means[..., :, :, None] * data_mean[..., None, None, :]
    expected_mu_y = expected_means_times_data(priors)
    return {
        "weights": z_scores(draws.weights, mean_theta),
        "means": z_scores(draws.means, m0),
        "mean variance": z_scores((draws.means - m0) ** 2, np.full((2, 2), s0**2)),
        "precision": z_scores(t, expected_t),
        "weights x data": z_scores(theta_y, second_theta @ m0),
        "means x data": z_scores(mu_y, expected_mu_y),
    }


def test_geweke_joint_distribution(z_scores):
    # 28 moments at |z| < 4.5: a false failure about once in 5000 runs.
    draws, data_mean = _geweke_draws(PRIORS, seed=7, num_steps=GEWEKE_STEPS)
    z = _geweke_z(draws, data_mean, PRIORS, z_scores)
    for name, values in z.items():
        assert np.all(np.abs(values) < Z_LIMIT), f"{name}: z = {values}"


def test_geweke_detects_a_broken_kernel(z_scores, monkeypatch):
    """Negative control: a mean draw that forgets the prior mean m0 must fail.

    With 25000 sweeps this bug gives |z| ~ 150; with a fifth of them still about 65.
    """
    correct = gibbs.sample_means

    def broken(rng_key, chol_precision, counts, sums, mean_loc, mean_scale):
        return correct(rng_key, chol_precision, counts, sums, 0.0 * mean_loc, mean_scale)

    monkeypatch.setattr(gibbs, "sample_means", broken)
    draws, data_mean = _geweke_draws(PRIORS, seed=8, num_steps=GEWEKE_STEPS // 5)
    z = _geweke_z(draws, data_mean, PRIORS, z_scores)
    assert np.max(np.abs(z["means"])) > 4 * Z_LIMIT


# ---------------------------------------------------------------------------
# Kernel interface: state, dtypes, vmap, empty components
# ---------------------------------------------------------------------------


def _tight_cluster(dtype) -> tuple[jax.Array, Priors, Params]:
    rng = np.random.default_rng(9)
    data = jnp.asarray(0.5 + 0.01 * rng.normal(size=(5, 2)), dtype)
    priors = Priors(np.full(4, 0.1), np.zeros((4, 2)), 2.0, 4.0, np.eye(2))
    start = Params(np.full(4, 0.25), rng.normal(size=(4, 2)), np.stack([np.eye(2)] * 4))
    return data, priors, start


def _run(init, step, start: Params, num_steps: int, seed: int = 0):
    def body(state, key):
        state, info = step(key, state)
        return state, (state, info)

    @jit
    def run(start, key):
        return jax.lax.scan(body, init(start), jax.random.split(key, num_steps))

    return run(start, jax.random.key(seed))


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_state_dtypes_log_joint_and_empty_components(dtype):
    data, priors, start = _tight_cluster(dtype)
    init, step = build_gibbs_kernel(data, priors)
    final, (states, info) = _run(init, step, start, 200)
    assert isinstance(final, GibbsState) and isinstance(info, GibbsInfo)
    for leaf in jax.tree.leaves(states):
        assert leaf.dtype == dtype
        assert np.all(np.isfinite(np.asarray(leaf)))
    assert info.num_occupied.dtype == jnp.int32
    assert info.num_occupied.shape == (200,)
    assert np.all(np.asarray(info.num_occupied) >= 1)
    # K = 4 on 5 points: some empty. Not a z-test but an existence check: with alpha 0.1 the
    # chain keeps nearly all points in one component (observed: 197 of 200 sweeps occupy 1).
    assert np.any(np.asarray(info.num_occupied) < 4)
    chol = np.asarray(states.params.chol_precision)
    np.testing.assert_array_equal(np.triu(chol, k=1), 0.0)
    assert np.all(np.diagonal(chol, axis1=-2, axis2=-1) > 0)
    rtol = 1e-12 if dtype == jnp.float64 else 1e-5
    np.testing.assert_allclose(np.asarray(states.params.weights).sum(-1), 1.0, rtol=rtol)

    # The state's log densities are those of the model as written, at the state's params.
    def densities(params):
        lp = log_joint(params, data, priors.astype(dtype), "correct")
        ll = jax.scipy.special.logsumexp(component_log_joint(params, data), axis=0).sum()
        return lp, ll

    last = jax.tree.map(lambda a: a[-5:], states)
    lp, ll = jit(jax.vmap(densities))(last.params)
    np.testing.assert_allclose(last.log_joint, lp, rtol=rtol)
    np.testing.assert_allclose(last.log_likelihood, ll, rtol=rtol)


def test_vmap_over_chains_without_data():
    """Three chains in one vmapped step; N = 0 (a prior-only run): every component empty."""
    _, priors, start = _tight_cluster(jnp.float64)
    chains = Params(*(np.repeat(np.asarray(a)[None], 3, axis=0) for a in start))
    init, step = build_gibbs_kernel(jnp.zeros((0, 2)), priors)
    states = jit(jax.vmap(init))(chains)
    keys = jax.random.split(jax.random.key(2), 3)
    new, info = jit(jax.vmap(step))(keys, states)
    assert new.params.weights.shape == (3, 4)
    assert new.params.means.shape == (3, 4, 2)
    assert new.params.chol_precision.shape == (3, 4, 2, 2)
    assert new.log_joint.shape == (3,) and new.log_likelihood.shape == (3,)
    np.testing.assert_array_equal(new.log_likelihood, 0.0)
    assert np.all(np.isfinite(np.asarray(new.log_joint)))
    np.testing.assert_array_equal(info.num_occupied, 0)
    assert not np.allclose(new.params.means[0], new.params.means[1])  # keys differ


# ---------------------------------------------------------------------------
# Tutorial data: a sanity check against a known posterior
# ---------------------------------------------------------------------------


# Posterior means of the weights on the tutorial's data and priors (target "correct") and
# their ArviZ MCSEs, from a long HMC run (bulk ESS about 1e4, R-hat 1.001, no divergences):
# bgmm.BayesianGMM(3, priors="tutorial", num_chains=4, num_warmup=1000, num_draws=10_000,
# seed=20).fit(tutorial_data(), initial=Params(*tutorial_start())).
TUTORIAL_WEIGHTS = np.array([0.26955, 0.57871, 0.15173])
TUTORIAL_WEIGHTS_MCSE = np.array([0.00048, 0.00095, 0.00053])
TUTORIAL_Z_LIMIT = 5.0


def test_tutorial_posterior_weights(mcse):
    """4 chains x 1500 sweeps after 300 burn-in, started at the tutorial start, against the
    reference above: z = (mean - reference) / sqrt(MCSE^2 + MCSE_ref^2), |z| < 5 on the 3
    weights. Gibbs mixes slowly here (bulk ESS of the weights about 55-90), and ArviZ's MCSE
    from so few effective draws is itself uncertain by 10-20 %: z is then closer to a t with
    ~50 degrees of freedom than to a normal, so 5 and not 4.5, for P(false failure) < 1e-4
    over the 3 weights (2e-6 with exact MCSEs). tests/test_samplers_agree.py compares Gibbs
    with HMC and NUTS on this posterior at length.
    """
    num_chains, num_burn, num_keep = 4, 300, 1500
    init, step = build_gibbs_kernel(jnp.asarray(tutorial_data()), tutorial_priors())
    start = Params(*(np.repeat(a[None], num_chains, axis=0) for a in tutorial_start()))

    def chain(start, key):
        def body(state, key):
            state, _ = step(key, state)
            return state, state.params.weights

        return jax.lax.scan(body, init(start), jax.random.split(key, num_burn + num_keep))[1]

    keys = jax.random.split(jax.random.key(10), num_chains)
    weights = np.asarray(jit(jax.vmap(chain))(start, keys))[:, num_burn:]
    z = (weights.mean(axis=(0, 1)) - TUTORIAL_WEIGHTS) / np.hypot(
        mcse(weights), TUTORIAL_WEIGHTS_MCSE
    )
    assert np.all(np.abs(z) < TUTORIAL_Z_LIMIT), f"z = {np.round(z, 2)}"
