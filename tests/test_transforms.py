"""Tests for bgmm.model.transforms: round trips, log|J| against slogdet(jacfwd), jit and vmap."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bgmm  # noqa: F401  (turns on float64)
from bgmm.model.transforms import (
    Params,
    UnconstrainedParams,
    fill_lower_triangular,
    lower_triangular_to_vector,
    to_constrained,
    to_unconstrained,
    unconstrained_log_det_jacobian,
)

RTOL = 1e-10
SHAPES = [(k, d) for k in (1, 2, 3, 5) for d in (1, 2, 3)]

# Jitted fill/vector maps, and below one jitted program per (K, D) that evaluates everything
# the tests compare: compiling a few programs is much faster than eager dispatch (which
# compiles every primitive separately). These tiny programs are compiled without LLVM
# optimisation, which halves compile time and leaves the arithmetic unchanged (no fast-math
# either way). Eager use, and the default compiler, are checked against these below.
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
fill = jit(fill_lower_triangular, static_argnums=1)
to_vector = jit(lower_triangular_to_vector)


def num_tril(d: int) -> int:
    return d * (d + 1) // 2


def diag_positions(d: int) -> np.ndarray:
    rows, cols = np.tril_indices(d)
    return np.flatnonzero(rows == cols)


def random_position(
    rng: np.random.Generator, k: int, d: int, batch: tuple[int, ...] = ()
) -> UnconstrainedParams:
    return UnconstrainedParams(
        weights=jnp.asarray(rng.normal(size=(*batch, k - 1)) * 2.0),
        means=jnp.asarray(rng.normal(size=(*batch, k, d)) * 3.0),
        chol_precision=jnp.asarray(rng.normal(size=(*batch, k, num_tril(d))) * 2.0),
    )


def assert_tree_close(a, b, rtol=RTOL, atol=1e-12):
    for x, y in zip(a, b, strict=True):
        assert np.shape(x) == np.shape(y)
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# fill_lower_triangular / lower_triangular_to_vector
# ---------------------------------------------------------------------------


def test_fill_lower_triangular_row_by_row():
    vec = jnp.arange(1.0, 7.0)
    mat = np.asarray(fill(vec, 3))
    np.testing.assert_array_equal(mat, [[1.0, 0.0, 0.0], [2.0, 3.0, 0.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(np.asarray(to_vector(jnp.asarray(mat))), vec)
    np.testing.assert_array_equal(np.asarray(fill(jnp.array([4.0]), 1)), [[4.0]])


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_fill_and_vector_are_inverse(d):
    rng = np.random.default_rng(d)
    vec = jnp.asarray(rng.normal(size=(2, 3, num_tril(d))))
    mat = fill(vec, d)
    assert mat.shape == (2, 3, d, d)
    assert mat.dtype == vec.dtype
    np.testing.assert_array_equal(np.triu(np.asarray(mat), 1), 0.0)
    np.testing.assert_array_equal(np.asarray(to_vector(mat)), np.asarray(vec))

    lower = np.tril(rng.normal(size=(4, d, d)))
    back = fill(to_vector(jnp.asarray(lower)), d)
    np.testing.assert_array_equal(np.asarray(back), lower)


# ---------------------------------------------------------------------------
# Everything about one (K, D), in one compiled program
# ---------------------------------------------------------------------------


def forward(u: UnconstrainedParams, num_features: int):
    """(to_constrained(u), log|J|(u), to_unconstrained(to_constrained(u)))."""
    params = to_constrained(u, num_features)
    return params, unconstrained_log_det_jacobian(u, num_features), to_unconstrained(params)


@functools.partial(jit, static_argnums=2)
def evaluate(u: UnconstrainedParams, params: Params, d: int) -> dict:
    """Round trips from ``u`` and from ``params``, log|J| and the Jacobians by autodiff.

    jac_weights: d theta[:K-1] / d x, (K-1, K-1); jac_chol: d (lower triangles of all L_k) /
    d (their D(D+1)/2 vectors), flattened over k; jac_means: d means / d means, flattened.
    """
    k_minus_1 = u.weights.shape[-1]
    rows, cols = np.tril_indices(d)
    chol_shape, means_shape = u.chol_precision.shape, u.means.shape

    def weights_map(x):
        return to_constrained(u._replace(weights=x), d).weights[:k_minus_1]

    def chol_map(flat):
        chol = to_constrained(u._replace(chol_precision=flat.reshape(chol_shape)), d)
        return chol.chol_precision[..., rows, cols].reshape(-1)

    def means_map(flat):
        return to_constrained(u._replace(means=flat.reshape(means_shape)), d).means.reshape(-1)

    constrained, log_jac, u_back = forward(u, d)
    params_u = to_unconstrained(params)
    # K = 1: no weights coordinates; the empty Jacobian has log|det| = 0 (theta = [1]).
    jac_weights = jax.jacfwd(weights_map)(u.weights) if k_minus_1 else jnp.zeros((0, 0))
    return {
        "params": constrained,
        "log_jac": log_jac,
        "u_back": u_back,
        "params_u": params_u,
        "params_back": to_constrained(params_u, d),
        "jac_weights": jac_weights,
        "jac_chol": jax.jacfwd(chol_map)(u.chol_precision.reshape(-1)),
        "jac_means": jax.jacfwd(means_map)(u.means.reshape(-1)),
    }


def random_params(rng: np.random.Generator, k: int, d: int) -> Params:
    chol = np.tril(rng.normal(size=(k, d, d)))
    idx = np.arange(d)
    chol[:, idx, idx] = rng.uniform(0.05, 5.0, size=(k, d))
    return Params(
        weights=jnp.asarray(rng.dirichlet(np.ones(k))),
        means=jnp.asarray(rng.normal(size=(k, d))),
        chol_precision=jnp.asarray(chol),
    )


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "d"), SHAPES)
def test_round_trips(k, d):
    rng = np.random.default_rng(10 * k + d)
    for _ in range(3):
        u = random_position(rng, k, d)
        p = random_params(rng, k, d)
        out = evaluate(u, p, d)

        params = out["params"]
        assert params.weights.shape == (k,)
        assert params.means.shape == (k, d)
        assert params.chol_precision.shape == (k, d, d)
        np.testing.assert_allclose(float(jnp.sum(params.weights)), 1.0, rtol=1e-14)
        assert np.all(np.asarray(params.weights) > 0)
        chol = np.asarray(params.chol_precision)
        np.testing.assert_array_equal(np.triu(chol, 1), 0.0)
        assert np.all(np.diagonal(chol, axis1=-2, axis2=-1) > 0)

        # to_unconstrained(to_constrained(u)) == u
        assert_tree_close(out["u_back"], u)
        # to_constrained(to_unconstrained(p)) == p
        params_u = out["params_u"]
        assert params_u.weights.shape == (k - 1,)
        assert params_u.chol_precision.shape == (k, num_tril(d))
        assert_tree_close(out["params_back"], p)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_round_trip_extreme_softplus_diagonal(d):
    k = 2
    rng = np.random.default_rng(d)
    u = random_position(rng, k, d)
    raw = np.asarray(u.chol_precision).copy()
    diag = diag_positions(d)
    raw[0, diag] = -30.0
    raw[1, diag] = 30.0
    u = u._replace(chol_precision=jnp.asarray(raw))
    out = evaluate(u, random_params(rng, k, d), d)
    chol = np.asarray(out["params"].chol_precision)
    assert np.all(np.isfinite(chol))
    assert np.all(np.diagonal(chol, axis1=-2, axis2=-1) > 0)
    for x in out["u_back"]:
        assert np.all(np.isfinite(np.asarray(x)))
    assert_tree_close(out["u_back"], u, rtol=1e-9)
    log_jac = float(out["log_jac"])
    assert np.isfinite(log_jac)
    # log sigmoid(-30) = -30 - log1p(e^-30), log sigmoid(30) = -log1p(e^-30).
    expected_chol_part = d * (-30.0 - 2 * np.log1p(np.exp(-30.0)))
    log_theta = np.log(np.asarray(out["params"].weights))
    np.testing.assert_allclose(log_jac, log_theta.sum() + expected_chol_part, rtol=RTOL)


def test_k1_weights():
    d = 2
    rng = np.random.default_rng(0)
    u = random_position(rng, 1, d)
    assert u.weights.shape == (0,)
    u = u._replace(chol_precision=jnp.full((1, 3), 50.0))
    out = evaluate(u, random_params(rng, 1, d), d)
    np.testing.assert_array_equal(np.asarray(out["params"].weights), [1.0])
    assert out["params_u"].weights.shape == (0,)
    np.testing.assert_array_equal(np.asarray(out["params_back"].weights), [1.0])
    # Only the chol piece remains: 2 log sigmoid(50) = -2 log1p(e^-50).
    np.testing.assert_allclose(float(out["log_jac"]), -2 * np.log1p(np.exp(-50.0)), rtol=1e-12)


# ---------------------------------------------------------------------------
# log|J| against slogdet(jacfwd), piece by piece
# ---------------------------------------------------------------------------


def slogdet(jac: jax.Array) -> float:
    sign, logdet = np.linalg.slogdet(np.asarray(jac))
    assert sign != 0
    return float(logdet)


@pytest.mark.parametrize(("k", "d"), SHAPES)
def test_log_det_jacobian_matches_jacfwd(k, d):
    rng = np.random.default_rng(200 + 10 * k + d)
    for _ in range(3):
        u = random_position(rng, k, d)
        out = evaluate(u, random_params(rng, k, d), d)
        jac_w, jac_c = out["jac_weights"], out["jac_chol"]
        assert jac_w.shape == (k - 1, k - 1)
        assert jac_c.shape == (k * num_tril(d), k * num_tril(d))
        np.testing.assert_array_equal(np.asarray(out["jac_means"]), np.eye(k * d))  # identity
        w, c = slogdet(jac_w), slogdet(jac_c)
        np.testing.assert_allclose(float(out["log_jac"]), w + c, rtol=RTOL, atol=1e-12)

        # Each piece alone, so a wrong weights term cannot hide behind a wrong chol term:
        # the weights piece is sum_k log theta_k (0 for K = 1), the chol piece is
        # sum log sigmoid of the raw diagonal (docs/design.md 1.3).
        theta = np.asarray(out["params"].weights)
        np.testing.assert_allclose(np.sum(np.log(theta)), w, rtol=RTOL, atol=1e-12)
        raw = np.asarray(u.chol_precision)[:, diag_positions(d)]
        np.testing.assert_allclose(-np.logaddexp(0.0, -raw).sum(), c, rtol=RTOL, atol=1e-12)
        if k == 1:
            assert w == 0.0


# ---------------------------------------------------------------------------
# Eager, jit and vmap over a batch of positions
# ---------------------------------------------------------------------------


def test_eager_matches_jit():
    k, d = 3, 2
    rng = np.random.default_rng(5)
    u = random_position(rng, k, d)
    p = random_params(rng, k, d)
    out = evaluate(u, p, d)
    params = to_constrained(u, d)
    assert_tree_close(params, out["params"], rtol=1e-13)
    assert_tree_close(to_unconstrained(params), out["u_back"], rtol=1e-13)
    assert_tree_close(to_unconstrained(p), out["params_u"], rtol=1e-13)
    np.testing.assert_allclose(
        float(unconstrained_log_det_jacobian(u, d)), float(out["log_jac"]), rtol=1e-13
    )


@pytest.mark.parametrize(("k", "d"), [(1, 2), (2, 3)])
def test_vmap_and_batched_inputs_match_loop(k, d):
    batch = 5
    rng = np.random.default_rng(30 + k + d)
    u = random_position(rng, k, d, (batch,))
    params, log_jac, back = jit(jax.vmap(functools.partial(forward, num_features=d)))(u)
    assert params.weights.shape == (batch, k)
    assert params.means.shape == (batch, k, d)
    assert params.chol_precision.shape == (batch, k, d, d)
    assert log_jac.shape == (batch,)
    assert_tree_close(back, u)

    # The functions also accept a leading batch axis directly (shapes "(...)" in docstrings).
    # Default compiler options here.
    params_b, log_jac_b, back_b = jax.jit(forward, static_argnums=1)(u, d)
    assert_tree_close(params_b, params, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(log_jac_b), np.asarray(log_jac), rtol=1e-13)
    assert_tree_close(back_b, back, rtol=1e-13)

    for b in range(batch):
        ub = UnconstrainedParams(*(x[b] for x in u))
        out = evaluate(ub, random_params(rng, k, d), d)
        assert_tree_close(Params(*(x[b] for x in params)), out["params"], rtol=1e-13)
        np.testing.assert_allclose(float(log_jac[b]), float(out["log_jac"]), rtol=1e-13)
