"""Tests for bgmm.model: the Cholesky-precision normal, the Wishart on L, priors, likelihood.

Every identity is checked against an independent computation (scipy, numpy, brute force, or
``jax.jacfwd``) on a few random parameter sets. The random sets come from fixed numpy seeds:
these are deterministic identities, not statistical tests, so a seed cannot make one pass.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import bgmm  # noqa: F401  (turns on float64)
from bgmm.checks import CHECK_CHOL_PRECISION, CHECK_LOC, chol_precision_normal_check
from bgmm.model import (
    Params,
    Priors,
    UnconstrainedParams,
    cholesky_jacobian_log_det,
    component_log_joint,
    default_priors,
    log_joint,
    log_likelihood,
    log_prior,
    make_logdensity,
    mvn_chol_precision_log_prob,
    mvn_chol_precision_sample,
    pointwise_log_likelihood,
    to_constrained,
    tutorial_priors,
    unconstrained_log_det_jacobian,
    validate_priors,
    wishart_log_prob_cholesky,
)

RTOL = 1e-10
SEEDS = (0, 1, 2)

# Jitted once here: a compiled program per input shape is much faster than eager dispatch
# (which compiles every primitive separately). These tiny programs are compiled without LLVM
# optimisation, which compiles them sooner and leaves the arithmetic unchanged (no fast-math
# either way); test_make_logdensity_grad_under_jit uses the default compiler.
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
mvn_log_prob = jit(mvn_chol_precision_log_prob)
wishart_log_prob = jit(wishart_log_prob_cholesky, static_argnames="include_jacobian")
chol_jac_log_det = jit(cholesky_jacobian_log_det)
loglik = jit(log_likelihood)
pointwise_loglik = jit(pointwise_log_likelihood)
component_joint = jit(component_log_joint)
mvn_sample = jit(mvn_chol_precision_sample, static_argnums=3)


# ---------------------------------------------------------------------------
# Random inputs (numpy, float64)
# ---------------------------------------------------------------------------


def random_chol(rng: np.random.Generator, d: int, batch: tuple[int, ...] = ()) -> np.ndarray:
    """Lower-triangular factors with positive diagonal, shape (*batch, d, d)."""
    chol = np.tril(rng.normal(size=(*batch, d, d)))
    idx = np.arange(d)
    chol[..., idx, idx] = rng.uniform(0.3, 2.0, size=(*batch, d))
    return chol


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    """A symmetric positive definite matrix that is not the identity."""
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.5 * np.eye(d)


def random_params(rng: np.random.Generator, k: int, d: int) -> Params:
    return Params(
        weights=rng.dirichlet(np.full(k, 2.0)),
        means=rng.normal(size=(k, d)),
        chol_precision=random_chol(rng, d, (k,)),
    )


def random_priors(rng: np.random.Generator, k: int, d: int) -> Priors:
    return Priors(
        concentration=rng.uniform(0.2, 3.0, size=k),
        mean_loc=rng.normal(size=(k, d)),
        mean_scale=float(rng.uniform(0.5, 2.0)),
        wishart_df=float(d + rng.uniform(0.5, 4.0)),
        wishart_scale=random_spd(rng, d),
    )


def as_jax(params: Params) -> Params:
    return Params(*(jnp.asarray(x) for x in params))


def tril_vector(matrix: jax.Array) -> jax.Array:
    rows, cols = np.tril_indices(matrix.shape[-1])
    return matrix[..., rows, cols]


def scipy_mvn_logpdf(y: np.ndarray, loc: np.ndarray, chol: np.ndarray) -> float:
    cov = np.linalg.inv(chol @ chol.T)
    return float(stats.multivariate_normal.logpdf(y, loc, cov))


# ---------------------------------------------------------------------------
# Normal with a Cholesky-precision parameter (docs/design.md section 1.1)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("d", [1, 2, 4])
def test_mvn_log_prob_matches_scipy(seed, d):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=d) * 2.0
    loc = rng.normal(size=d)
    chol = random_chol(rng, d)
    got = mvn_log_prob(jnp.asarray(y), jnp.asarray(loc), jnp.asarray(chol))
    assert got.shape == ()
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(float(got), scipy_mvn_logpdf(y, loc, chol), rtol=RTOL)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_mvn_log_prob_broadcasts(d):
    rng = np.random.default_rng(10 + d)
    # y: (5, 1, D) against loc (3, D) and L (3, D, D) -> (5, 3).
    y = rng.normal(size=(5, 1, d))
    loc = rng.normal(size=(3, d))
    chol = random_chol(rng, d, (3,))
    got = np.asarray(mvn_log_prob(jnp.asarray(y), jnp.asarray(loc), chol))
    assert got.shape == (5, 3)
    want = np.array(
        [[scipy_mvn_logpdf(y[i, 0], loc[k], chol[k]) for k in range(3)] for i in range(5)]
    )
    np.testing.assert_allclose(got, want, rtol=RTOL)

    # Many points against one component: y (7, D), loc (D,), L (D, D) -> (7,).
    y = rng.normal(size=(7, d))
    got = np.asarray(mvn_log_prob(jnp.asarray(y), loc[0], chol[0]))
    assert got.shape == (7,)
    want = np.array([scipy_mvn_logpdf(y[i], loc[0], chol[0]) for i in range(7)])
    np.testing.assert_allclose(got, want, rtol=RTOL)


def test_chol_precision_normal_check_moments():
    # The tutorial's check with 10^6 draws. Each entry is compared with its truth at z = 5
    # standard errors: the chance that a correct sampler fails one entry is about 6e-7
    # (two-sided normal tail at 5), so about 3e-6 for the 5 distinct entries together.
    # The covariance standard error uses the normal fourth moment:
    # var(x_i x_j) = cov_ii cov_jj + cov_ij^2.
    check = chol_precision_normal_check()
    n = check.num_samples
    assert n == 1_000_000
    true_cov = np.array([[1.0625, -0.03125], [-0.03125, 0.015625]])
    np.testing.assert_allclose(check.true_mean, [1.0, -1.0])
    np.testing.assert_allclose(check.true_cov, true_cov, rtol=1e-12)
    assert check.sample_mean.shape == (2,)
    assert check.sample_cov.shape == (2, 2)

    mean_se = np.sqrt(np.diag(true_cov) / n)
    assert np.all(np.abs(check.sample_mean - np.array([1.0, -1.0])) < 5 * mean_se), (
        check.sample_mean
    )
    var = np.diag(true_cov)
    cov_se = np.sqrt((np.outer(var, var) + true_cov**2) / n)
    assert np.all(np.abs(check.sample_cov - true_cov) < 5 * cov_se), check.sample_cov


def test_check_constants_match_design():
    np.testing.assert_array_equal(CHECK_LOC, [1.0, -1.0])
    np.testing.assert_array_equal(CHECK_CHOL_PRECISION, [[1.0, 0.0], [2.0, 8.0]])


@pytest.mark.parametrize(("dtype", "d"), [(jnp.float32, 2), (jnp.float64, 3)])
def test_mvn_sample_shape_and_dtype(dtype, d):
    rng = np.random.default_rng(d)
    loc = jnp.asarray(rng.normal(size=d), dtype)
    chol = jnp.asarray(random_chol(rng, d), dtype)
    x = mvn_sample(jax.random.key(0), loc, chol, 4)
    assert x.shape == (4, d)
    assert x.dtype == dtype
    assert np.all(np.isfinite(np.asarray(x)))


def test_mvn_sample_is_loc_plus_solve():
    # y = mu + L'^{-1} eps exactly, with eps the standard normal draws of the same key.
    rng = np.random.default_rng(5)
    loc = jnp.asarray(rng.normal(size=3))
    chol = random_chol(rng, 3)
    key = jax.random.key(7)
    x = np.asarray(mvn_sample(key, loc, jnp.asarray(chol), 4))
    eps = np.asarray(jax.random.normal(key, (4, 3), dtype=jnp.float64))
    want = np.asarray(loc) + np.linalg.solve(chol.T, eps.T).T
    np.testing.assert_allclose(x, want, rtol=RTOL, atol=1e-12)


# ---------------------------------------------------------------------------
# Wishart on the Cholesky factor (docs/design.md section 1.2)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_wishart_without_jacobian_matches_scipy(seed, d):
    rng = np.random.default_rng(100 + seed)
    chol = random_chol(rng, d)
    scale = random_spd(rng, d)
    df = float(d - 1 + rng.uniform(0.5, 5.0))
    scale_inv = jnp.asarray(np.linalg.inv(scale))
    scale_log_det = float(np.linalg.slogdet(scale)[1])
    want = float(stats.wishart.logpdf(chol @ chol.T, df, scale))

    got = wishart_log_prob(jnp.asarray(chol), df, scale_inv, scale_log_det, include_jacobian=False)
    assert got.shape == ()
    np.testing.assert_allclose(float(got), want, rtol=RTOL)

    got_j = wishart_log_prob(jnp.asarray(chol), df, scale_inv, scale_log_det, include_jacobian=True)
    jac = float(chol_jac_log_det(jnp.asarray(chol)))
    np.testing.assert_allclose(float(got_j), want + jac, rtol=RTOL)


def test_wishart_batched():
    rng = np.random.default_rng(7)
    d = 3
    chol = random_chol(rng, d, (2, 4))
    scale = random_spd(rng, d)
    scale_inv = jnp.asarray(np.linalg.inv(scale))
    scale_log_det = float(np.linalg.slogdet(scale)[1])
    got = np.asarray(
        wishart_log_prob(jnp.asarray(chol), 4.5, scale_inv, scale_log_det, include_jacobian=False)
    )
    assert got.shape == (2, 4)
    want = np.array([[stats.wishart.logpdf(c @ c.T, 4.5, scale) for c in row] for row in chol])
    np.testing.assert_allclose(got, want, rtol=RTOL)
    assert chol_jac_log_det(jnp.asarray(chol)).shape == (2, 4)


@jit
def outer_product_jacobian(chol: jax.Array) -> jax.Array:
    """d (lower triangle of L L') / d (lower triangle of L), by autodiff; shape (M, M)."""
    d = chol.shape[-1]
    rows, cols = np.tril_indices(d)

    def forward(vec):
        mat = jnp.zeros((d, d), vec.dtype).at[rows, cols].set(vec)
        return tril_vector(mat @ mat.T)

    return jax.jacfwd(forward)(chol[rows, cols])


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_cholesky_jacobian_matches_jacfwd(d):
    # log|J| of (lower triangle of L) -> (lower triangle of L L'), checked by autodiff
    # independently of the closed form D log 2 + sum_j (D - j + 1) log L_jj.
    rng = np.random.default_rng(200 + d)
    for _ in SEEDS:
        chol = random_chol(rng, d)
        sign, logdet = np.linalg.slogdet(np.asarray(outer_product_jacobian(jnp.asarray(chol))))
        assert sign != 0
        got = float(chol_jac_log_det(jnp.asarray(chol)))
        np.testing.assert_allclose(got, logdet, rtol=RTOL, atol=1e-12)


# ---------------------------------------------------------------------------
# Priors
# ---------------------------------------------------------------------------


def scipy_log_prior(params: Params, priors: Priors, include_jacobian: bool) -> float:
    weights, means, chol = (np.asarray(x) for x in params)
    total = stats.dirichlet.logpdf(weights, priors.concentration)
    total += np.sum(stats.norm.logpdf(means, priors.mean_loc, priors.mean_scale))
    for c in chol:
        total += stats.wishart.logpdf(c @ c.T, priors.wishart_df, priors.wishart_scale)
        if include_jacobian:
            d = c.shape[0]
            total += d * np.log(2.0) + np.sum(np.arange(d, 0, -1) * np.log(np.diag(c)))
    return float(total)


PRIOR_CASES = [
    ("tutorial", 3, 2),
    ("random", 2, 1),
    ("random", 3, 2),
    ("random", 4, 3),
    ("default", 5, 2),
]


@pytest.mark.parametrize(("kind", "k", "d"), PRIOR_CASES)
def test_log_prior_matches_scipy(kind, k, d):
    rng = np.random.default_rng(300 + 10 * k + d)
    if kind == "tutorial":
        priors = tutorial_priors(d)
    elif kind == "default":
        priors = default_priors(k, d)
    else:
        priors = random_priors(rng, k, d)
    both = jit(lambda p: (log_prior(p, priors, "correct"), log_prior(p, priors, "tutorial")))
    for _ in range(3):
        params = random_params(rng, k, d)
        got_correct, got_tutorial = (float(x) for x in both(params))
        np.testing.assert_allclose(got_correct, scipy_log_prior(params, priors, True), rtol=RTOL)
        np.testing.assert_allclose(got_tutorial, scipy_log_prior(params, priors, False), rtol=RTOL)


def test_log_prior_default_target_is_correct():
    params = random_params(np.random.default_rng(1), 3, 2)
    priors = tutorial_priors()
    default, correct, tutorial = jit(
        lambda p: (
            log_prior(p, priors),
            log_prior(p, priors, "correct"),
            log_prior(p, priors, "tutorial"),
        )
    )(params)
    np.testing.assert_allclose(float(default), float(correct), rtol=1e-14)
    assert abs(float(default) - float(tutorial)) > 1e-3


def test_log_prior_keeps_float32():
    params = Params(
        *(jnp.asarray(x, jnp.float32) for x in random_params(np.random.default_rng(3), 3, 2))
    )
    priors = tutorial_priors().astype(np.float32)
    assert jit(lambda p: log_prior(p, priors))(params).dtype == jnp.float32


def test_log_prior_rejects_unknown_target():
    params = as_jax(random_params(np.random.default_rng(0), 3, 2))
    with pytest.raises(ValueError, match="target"):
        log_prior(params, tutorial_priors(), "tfp")
    u = UnconstrainedParams(jnp.zeros(2), jnp.zeros((3, 2)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="target"):
        # Tracing is enough to reach the check; nothing is compiled.
        jax.eval_shape(make_logdensity(jnp.zeros((3, 2)), tutorial_priors(), "bogus"), u)


def test_tutorial_priors_values():
    priors = tutorial_priors()
    np.testing.assert_array_equal(priors.concentration, [0.1, 0.1, 0.1])
    np.testing.assert_array_equal(priors.mean_loc, [[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]])
    assert priors.mean_scale == 1.0
    assert priors.wishart_df == 5.0
    np.testing.assert_array_equal(priors.wishart_scale, np.eye(2))
    assert priors.num_components == 3
    assert priors.num_features == 2
    validate_priors(priors)

    p3 = tutorial_priors(3)
    np.testing.assert_array_equal(p3.mean_loc, [[-1.0] * 3, [0.0] * 3, [1.0] * 3])
    np.testing.assert_array_equal(p3.wishart_scale, np.eye(3))
    validate_priors(p3)


@pytest.mark.parametrize(("k", "d"), [(1, 1), (2, 3), (4, 2), (6, 5)])
def test_default_priors_exchangeable_and_valid(k, d):
    priors = default_priors(k, d)
    assert priors.num_components == k
    assert priors.num_features == d
    assert np.shape(priors.concentration) == (k,)
    assert np.shape(priors.mean_loc) == (k, d)
    assert np.shape(priors.wishart_scale) == (d, d)
    # Exchangeable: every component has the same prior.
    assert np.all(priors.concentration == priors.concentration[0])
    assert np.all(priors.mean_loc == priors.mean_loc[0])
    validate_priors(priors)
    # nu > D + 1 keeps the prior mean of each covariance, E[T^{-1}], finite.
    assert priors.wishart_df > d + 1


@pytest.mark.parametrize(("k", "d"), [(1, 1), (1, 3), (2, 3), (3, 4), (6, 5)])
def test_default_priors_values(k, d):
    """alpha0 = 1, m0 = 0, s0 = 2, nu = D + 2, S = K^(2/D) I (docs/priors.md): the prior
    mean covariance E[T^{-1}] = S^{-1} / (nu - D - 1) is I / K^(2/D), smaller than the
    data's (I) as soon as K > 1, never larger (S = I / K^(2/D) would be the slip)."""
    priors = default_priors(k, d)
    np.testing.assert_array_equal(priors.concentration, np.ones(k))
    np.testing.assert_array_equal(priors.mean_loc, np.zeros((k, d)))
    assert priors.mean_scale == 2.0
    assert priors.wishart_df == d + 2
    np.testing.assert_allclose(priors.wishart_scale, k ** (2 / d) * np.eye(d), rtol=1e-15)
    expected_cov = np.linalg.inv(priors.wishart_scale) / (priors.wishart_df - d - 1)
    np.testing.assert_allclose(expected_cov, np.eye(d) / k ** (2 / d), rtol=1e-14)


def test_priors_astype():
    p = tutorial_priors().astype(np.float32)
    assert p.concentration.dtype == np.float32
    assert p.mean_loc.dtype == np.float32
    assert p.wishart_scale.dtype == np.float32


def _bad_priors():
    good = tutorial_priors()  # K = 3, D = 2
    not_pd = np.array([[1.0, 2.0], [2.0, 1.0]])  # symmetric, eigenvalues 3 and -1
    return {
        "df equal to D - 1": good._replace(wishart_df=1.0),
        "df below D - 1": good._replace(wishart_df=0.5),
        "scale not positive definite": good._replace(wishart_scale=not_pd),
        "scale singular": good._replace(wishart_scale=np.zeros((2, 2))),
        "scale not symmetric": good._replace(wishart_scale=np.array([[1.0, 0.5], [0.0, 1.0]])),
        "scale wrong shape": good._replace(wishart_scale=np.eye(3)),
        "zero concentration": good._replace(concentration=np.array([0.1, 0.0, 0.1])),
        "negative concentration": good._replace(concentration=np.array([0.1, -1.0, 0.1])),
        "nan concentration": good._replace(concentration=np.array([0.1, np.nan, 0.1])),
        "concentration matrix": good._replace(concentration=np.ones((3, 1))),
        "empty concentration": good._replace(concentration=np.ones(0), mean_loc=np.ones((0, 2))),
        "mean_loc wrong K": good._replace(mean_loc=np.zeros((2, 2))),
        "mean_loc vector": good._replace(mean_loc=np.zeros(3)),
        "zero mean_scale": good._replace(mean_scale=0.0),
        "negative mean_scale": good._replace(mean_scale=-1.0),
    }


@pytest.mark.parametrize("name", list(_bad_priors()))
def test_validate_priors_rejects(name):
    with pytest.raises(ValueError):
        validate_priors(_bad_priors()[name])


@pytest.mark.parametrize(
    "replace",
    [
        {"mean_loc": np.full((3, 2), np.nan)},
        {"wishart_scale": np.array([[np.inf, 0.0], [0.0, 1.0]])},
        {"wishart_df": np.inf},
    ],
    ids=["nan mean_loc", "inf scale", "inf df"],
)
def test_validate_priors_rejects_nonfinite(replace):
    with pytest.raises(ValueError):
        validate_priors(tutorial_priors()._replace(**replace))


# ---------------------------------------------------------------------------
# Likelihood: brute force over all K^N assignments
# ---------------------------------------------------------------------------


def brute_force_log_likelihood(params: Params, y: np.ndarray) -> float:
    """log sum_z prod_i theta_{z_i} N(y_i | mu_{z_i}, T_{z_i}^{-1}), over all K^N z."""
    weights, means, chol = (np.asarray(x) for x in params)
    k = weights.shape[0]
    log_dens = np.array(
        [[scipy_mvn_logpdf(y_i, means[j], chol[j]) for j in range(k)] for y_i in y]
    )  # (N, K)
    terms = [
        sum(np.log(weights[z_i]) + log_dens[i, z_i] for i, z_i in enumerate(z))
        for z in itertools.product(range(k), repeat=y.shape[0])
    ]
    assert len(terms) == k ** y.shape[0]
    return float(special.logsumexp(terms))


@pytest.mark.parametrize(("n", "k", "d"), [(5, 3, 2), (4, 2, 3), (3, 1, 2), (4, 4, 1)])
@pytest.mark.parametrize("seed", SEEDS)
def test_log_likelihood_brute_force(n, k, d, seed):
    rng = np.random.default_rng(400 + seed)
    params = random_params(rng, k, d)
    y = rng.normal(size=(n, d)) * 1.5
    got = float(loglik(params, jnp.asarray(y)))
    np.testing.assert_allclose(got, brute_force_log_likelihood(params, y), rtol=RTOL)


def test_pointwise_and_component_shapes_and_values():
    rng = np.random.default_rng(11)
    n, k, d = 6, 3, 2
    params = random_params(rng, k, d)
    y = rng.normal(size=(n, d))
    jparams, jy = as_jax(params), jnp.asarray(y)

    comp = np.asarray(component_joint(jparams, jy))
    assert comp.shape == (k, n)  # component-major
    want = np.array(
        [
            [
                np.log(params.weights[j])
                + scipy_mvn_logpdf(y[i], params.means[j], params.chol_precision[j])
                for i in range(n)
            ]
            for j in range(k)
        ]
    )
    np.testing.assert_allclose(comp, want, rtol=RTOL)

    point = np.asarray(pointwise_loglik(jparams, jy))
    assert point.shape == (n,)
    np.testing.assert_allclose(point, special.logsumexp(want, axis=0), rtol=RTOL)
    np.testing.assert_allclose(float(loglik(jparams, jy)), point.sum(), rtol=RTOL)


@pytest.mark.parametrize(("k", "d"), [(3, 2), (1, 1), (2, 3)])
def test_log_likelihood_empty_data(k, d):
    params = as_jax(random_params(np.random.default_rng(k), k, d))
    empty = jnp.zeros((0, d))
    assert component_joint(params, empty).shape == (k, 0)
    assert pointwise_loglik(params, empty).shape == (0,)
    assert float(loglik(params, empty)) == 0.0


# ---------------------------------------------------------------------------
# The sampler's target in the unconstrained space
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "k", "d", "n"),
    [
        ("correct", 3, 2, 20),
        ("tutorial", 3, 2, 20),
        ("correct", 1, 2, 5),
        ("tutorial", 2, 3, 8),
        ("correct", 4, 1, 0),
    ],
)
def test_make_logdensity(target, k, d, n):
    rng = np.random.default_rng(500 + 10 * k + d)
    priors = random_priors(rng, k, d)
    y = jnp.asarray(rng.normal(size=(n, d)))
    logdensity = make_logdensity(y, priors, target)

    @jit
    def evaluate(u):
        params = to_constrained(u, d)
        composed = log_joint(params, y, priors, target) + unconstrained_log_det_jacobian(u, d)
        return logdensity(u), composed, params

    rows, cols = np.tril_indices(d)
    diag = rows == cols
    for _ in range(3):
        u = UnconstrainedParams(
            weights=jnp.asarray(rng.normal(size=k - 1)),
            means=jnp.asarray(rng.normal(size=(k, d))),
            chol_precision=jnp.asarray(rng.normal(size=(k, d * (d + 1) // 2))),
        )
        got, composed, params = evaluate(u)
        got = float(got)
        np.testing.assert_allclose(got, float(composed), rtol=RTOL)

        # Independently: scipy prior + scipy likelihood + the closed-form log|J| of
        # docs/design.md section 1.3, all in numpy.
        weights, means, chol = (np.asarray(x) for x in params)
        raw = np.asarray(u.chol_precision)
        log_jac = np.sum(np.log(weights)) - np.sum(np.logaddexp(0.0, -raw[:, diag]))
        y_np = np.asarray(y)
        comp = np.array(
            [
                [
                    np.log(weights[j]) + scipy_mvn_logpdf(y_np[i], means[j], chol[j])
                    for i in range(n)
                ]
                for j in range(k)
            ]
        ).reshape(k, n)
        lik = float(np.sum(special.logsumexp(comp, axis=0))) if n else 0.0
        indep = scipy_log_prior(Params(weights, means, chol), priors, target == "correct")
        np.testing.assert_allclose(got, indep + lik + log_jac, rtol=RTOL)


def test_make_logdensity_grad_under_jit():
    rng = np.random.default_rng(9)
    y = jnp.asarray(rng.normal(size=(30, 2)))
    logdensity = make_logdensity(y, tutorial_priors())
    u = UnconstrainedParams(
        jnp.asarray(rng.normal(size=2)),
        jnp.asarray(rng.normal(size=(3, 2))),
        jnp.asarray(rng.normal(size=(3, 3))),
    )
    value, grad = jax.jit(jax.value_and_grad(logdensity))(u)
    assert np.isfinite(float(value))
    for g, x in zip(grad, u, strict=True):
        assert g.shape == x.shape
        assert np.all(np.isfinite(np.asarray(g)))
