"""The two-GEMM likelihood (docs/design.md 1.4) equals the direct form, value and gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bgmm.inference import prepare_data
from bgmm.model import Params, log_likelihood, to_constrained, to_unconstrained
from bgmm.model.covariance import project_chol_precision
from bgmm.model.gemm_likelihood import (
    SMALL_LOGITS,
    Features,
    _sum_of_logs,
    gemm_log_likelihood,
    make_features,
)
from bgmm.plumbing.batches import PADDED_ROWS_MAX, padded_rows


def _random_problem(rng, n, k, d, offset=0.0):
    data = rng.standard_normal((n, d)) + offset
    params = Params(
        jnp.asarray(rng.dirichlet(np.ones(k))),
        jnp.asarray(rng.standard_normal((k, d)) + offset),
        jnp.asarray(
            np.tril(rng.standard_normal((k, d, d)), -1) * 0.3 + np.diag(rng.uniform(0.5, 2, d))
        ),
    )
    return data, params


def _value_and_grad(form, params, data, dtype):
    d = data.shape[1]
    position = to_unconstrained(Params(*(jnp.asarray(p, dtype) for p in params)))
    if form == "gemm":
        features = make_features(data, dtype)

        def f(u, phi, center):
            return gemm_log_likelihood(to_constrained(u, d), Features(phi, center))

        return jax.jit(jax.value_and_grad(f))(position, features.phi, features.center)
    y = jnp.asarray(data, dtype)
    return jax.jit(jax.value_and_grad(lambda u, y: log_likelihood(to_constrained(u, d), y)))(
        position, y
    )


def _relative_error(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        / max(float(np.max(np.abs(np.asarray(y, np.float64)))), 1e-300)
        for x, y in zip(leaves_a, leaves_b, strict=True)
        if np.size(y)  # K = 1 has no weight coordinates
    )


# Small problems lay the logits out K x N, large ones N x K (gemm_likelihood.SMALL_LOGITS).
@pytest.mark.parametrize(
    ("n", "k", "d"), [(50, 1, 1), (200, 3, 2), (300, 5, 4), (100, 2, 7), (6000, 3, 2)]
)
def test_gemm_form_equals_direct_form_in_float64(n, k, d):
    assert (n * k > SMALL_LOGITS) == (n == 6000)
    data, params = _random_problem(np.random.default_rng(n + k + d), n, k, d)
    (v1, g1), (v2, g2) = (_value_and_grad(f, params, data, jnp.float64) for f in ("gemm", "direct"))
    assert abs(float(v1) - float(v2)) <= 1e-10 * abs(float(v2))
    assert _relative_error(g1, g2) <= 1e-10


def test_features_are_centred_so_far_away_data_keep_their_precision():
    """Data 10^4 from the origin: without centring y y' would cancel catastrophically."""
    data, params = _random_problem(np.random.default_rng(5), 400, 3, 3, offset=1e4)
    (v1, g1), (v2, g2) = (_value_and_grad(f, params, data, jnp.float64) for f in ("gemm", "direct"))
    assert abs(float(v1) - float(v2)) <= 1e-10 * abs(float(v2))
    assert _relative_error(g1, g2) <= 1e-8


@pytest.mark.parametrize("n", [2000, 20000])
def test_float32_on_standardised_data_within_documented_tolerance(n):
    """float32: value and gradient within 1e-4 relative of float64 on standardised data."""
    data, params = _random_problem(np.random.default_rng(6), n, 4, 3)
    data = (data - data.mean(0)) / data.std(0)
    v32, g32 = _value_and_grad("gemm", params, data, jnp.float32)
    v64, g64 = _value_and_grad("direct", params, data, jnp.float64)
    assert v32.dtype == jnp.float32
    assert abs(float(v32) - float(v64)) <= 1e-4 * abs(float(v64))
    assert _relative_error(g32, g64) <= 1e-4


def test_prepare_data_chooses_by_memory():
    data = np.zeros((10, 2))
    assert isinstance(prepare_data(data, jnp.float64, "auto"), Features)
    assert isinstance(prepare_data(data, jnp.float64, "gemm"), Features)
    direct = prepare_data(data, jnp.float64, "direct")
    assert direct.shape == (10, 2)
    with pytest.raises(ValueError, match="likelihood"):
        prepare_data(data, jnp.float64, "quantum")


def test_auto_falls_back_to_direct_above_the_feature_budget(monkeypatch):
    import bgmm.inference as inference

    monkeypatch.setattr(inference, "FEATURE_MEMORY_BUDGET_BYTES", 100)
    assert not isinstance(prepare_data(np.zeros((10, 2)), jnp.float64, "auto"), Features)


@pytest.mark.parametrize(
    ("n", "k", "dtype", "rtol"),
    [
        (1000, 3, jnp.float64, 1e-13),
        (1001, 40, jnp.float64, 1e-13),
        (999, 3, jnp.float32, 1e-5),
        (12345, 200, jnp.float32, 1e-5),
        (7, 1, jnp.float64, 1e-13),
    ],
)
def test_sum_of_logs_by_blocks(n, k, dtype, rtol):
    """Totals in [1, K] (a softmax denominator): blocked products neither overflow nor drift."""
    totals = np.random.default_rng(n).uniform(1.0, k, size=(n, 1))
    totals[: n // 10] = k  # the largest products a block can have
    got = float(_sum_of_logs(jnp.asarray(totals, dtype), k))
    assert np.isfinite(got)
    np.testing.assert_allclose(got, np.sum(np.log(totals)), rtol=rtol)


@pytest.mark.parametrize("structure", ["full", "diag", "tied", "spherical"])
def test_padding_rows_add_exactly_nothing(structure):
    """Features padded with zero rows (to the runner's size, and far beyond) give the
    log-likelihood and its gradient of the data alone, to rounding."""
    rng = np.random.default_rng(4)
    data = rng.normal(size=(1000, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0.0]
    k = 4
    chol = np.tril(rng.normal(size=(k, 3, 3)) * 0.3) + 1.5 * np.eye(3)
    params = project_chol_precision(chol, np.full(k, 0.25), structure)
    params = Params(
        jnp.asarray(rng.dirichlet(np.ones(k))),
        jnp.asarray(rng.normal(size=(k, 3))),
        jnp.asarray(params),
    )
    value_and_grad = jax.jit(jax.value_and_grad(lambda p, f: gemm_log_likelihood(p, f, structure)))
    exact = value_and_grad(params, make_features(data, covariance_type=structure))
    for rows in (padded_rows(len(data)), 4096):
        features = make_features(data, covariance_type=structure, num_rows=rows)
        padded = value_and_grad(params, features)
        np.testing.assert_allclose(padded[0], exact[0], rtol=1e-14)
        for a, b in zip(jax.tree.leaves(padded[1]), jax.tree.leaves(exact[1]), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="fewer than"):
        make_features(data, num_rows=999)


def test_padded_sizes_leave_room_and_waste_little():
    """Every size from 10 to PADDED_ROWS_MAX pads strictly above itself by at most a quarter, and
    the sizes never decrease; zero rows, few rows and many rows are never padded."""
    sizes = np.array([padded_rows(n) for n in range(10, PADDED_ROWS_MAX + 1)])
    rows = np.arange(10, PADDED_ROWS_MAX + 1)
    assert np.all(sizes > rows) and np.all(sizes <= 1.25 * rows)
    assert np.all(np.diff(sizes) >= 0)
    assert len(np.unique(sizes)) < 60  # a handful of programs for four decades of sizes
    assert padded_rows(1000) == padded_rows(1100) == 1200
    for n in (0, 1, 9, PADDED_ROWS_MAX + 1, 10**6):
        assert padded_rows(n) == n
