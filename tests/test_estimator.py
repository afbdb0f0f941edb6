"""BayesianGMM as a scikit-learn estimator: fit returns it, fitted attributes, prediction,
the posterior predictive density and draws, parameters, clone and Pipeline."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import bgmm
from bgmm.errors import NotFittedError, UserError

# Each z-test below fails falsely with probability about 6e-5 (|z| > 4 two-sided).
Z_LIMIT = 4.0
OPTIONS = {"num_chains": 2, "num_warmup": 150, "num_draws": 100, "random_state": 1}


def _two_clusters(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # Correlated features: a sampler that confused L with L' would get the spread wrong.
    correlated = rng.multivariate_normal([3, 3], [[1.0, 0.8], [0.8, 1.0]], n // 2)
    values = np.concatenate([rng.normal(-3, 0.5, (n // 2, 2)), correlated])
    return pd.DataFrame(values, columns=["height", "mass"])


@pytest.fixture(scope="module")
def fitted():
    data = _two_clusters()
    model = bgmm.BayesianGMM(2, **OPTIONS)
    assert model.fit(data) is model
    return model, data


def test_fitted_attributes_are_posterior_means(fitted):
    model, _ = fitted
    posterior = model.idata_.posterior
    assert model.idata_ is model.result_.idata
    np.testing.assert_allclose(model.weights_, posterior["weights"].mean(("chain", "draw")))
    np.testing.assert_allclose(model.means_, posterior["means"].mean(("chain", "draw")))
    np.testing.assert_allclose(
        model.covariances_, posterior["covariance"].mean(("chain", "draw")), rtol=1e-12
    )
    chol = posterior["chol_precision"].values
    precision = np.einsum("csknd,cskmd->cskmn", chol, chol)
    np.testing.assert_allclose(model.precisions_, precision.mean(axis=(0, 1)))
    assert model.weights_.shape == (2,) and model.means_.shape == (2, 2)
    assert model.covariances_.shape == model.precisions_.shape == (2, 2, 2)
    assert model.n_features_in_ == 2
    assert list(model.feature_names_in_) == ["height", "mass"]
    assert list(posterior["feature"].values) == ["height", "mass"]
    assert isinstance(model.converged_, bool)
    summary = model.result_.summary
    assert model.converged_ == (
        summary["rhat_max"] <= 1.01 and min(summary["ess_bulk_min"], summary["ess_tail_min"]) >= 400
    )


def test_a_plain_array_gives_no_feature_names():
    model = bgmm.BayesianGMM(2, **OPTIONS).fit(_two_clusters().to_numpy())
    assert not hasattr(model, "feature_names_in_")
    assert list(model.idata_.posterior["feature"].values) == ["x0", "x1"]


def test_predictions_follow_the_memberships(fitted):
    model, data = fitted
    proba = model.predict_proba(data)
    memberships = model.memberships(data)
    np.testing.assert_array_equal(proba, memberships.mean)
    assert memberships.sd.shape == proba.shape == (len(data), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    labels = model.predict(data)
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    # The two well separated halves are two clusters.
    half = len(data) // 2
    assert len(set(labels[:half])) == len(set(labels[half:])) == 1
    assert labels[0] != labels[-1]


def test_similarity_and_point_partition(fitted):
    """The two separated halves: similarity near 1 within, near 0 across; the partition
    (VI and Binder) is the halves, on every row or on a subsample of them."""
    model, data = fitted
    half = len(data) // 2
    similarity = model.similarity(data)
    np.testing.assert_array_equal(similarity.rows, np.arange(len(data)))
    assert similarity.matrix.shape == (len(data), len(data))
    assert similarity.matrix[:half, :half].min() > 0.99
    assert similarity.matrix[:half, half:].max() < 0.01
    for loss in ("vi", "binder"):
        partition = model.point_partition(data, loss=loss)
        assert partition.loss == loss
        assert sorted(np.bincount(partition.labels)) == [half, half]
        assert len(set(partition.labels[:half])) == 1
    subsample = model.point_partition(data, max_rows=50)
    assert len(subsample.rows) == 50 and np.all(np.diff(subsample.rows) > 0)
    with pytest.raises(UserError, match="binder, vi") as caught:
        model.point_partition(data, loss="rand")
    assert caught.value.option == "loss"


def test_fit_predict_is_fit_then_predict():
    data = _two_clusters(60, seed=3)
    model = bgmm.BayesianGMM(2, **OPTIONS)
    labels = model.fit_predict(data)
    np.testing.assert_array_equal(labels, model.predict(data))


def test_score_samples_is_the_log_posterior_predictive_density(fitted):
    """Against scipy's normal densities, draw by draw (an identity, not a statistical test)."""
    model, data = fitted
    points = data.to_numpy()[::17]
    posterior = model.idata_.posterior
    weights = posterior["weights"].values.reshape(-1, 2)
    means = posterior["means"].values.reshape(-1, 2, 2)
    covariances = posterior["covariance"].values.reshape(-1, 2, 2, 2)
    per_draw = np.stack(
        [
            logsumexp(
                [np.log(w[k]) + multivariate_normal(m[k], c[k]).logpdf(points) for k in range(2)],
                axis=0,
            )
            for w, m, c in zip(weights, means, covariances, strict=True)
        ]
    )
    expected = logsumexp(per_draw, axis=0) - np.log(len(weights))
    np.testing.assert_allclose(model.score_samples(points), expected, rtol=1e-10)
    assert model.score(points) == pytest.approx(expected.mean(), rel=1e-10)


def test_sample_draws_from_the_posterior_predictive(fitted):
    """The mean, variances and covariance of the draws and the share of each component,
    each a z-test
    against the posterior predictive's exact moments (the draws are independent)."""
    model, _ = fitted
    n = 20_000
    X, labels = model.sample(n)
    assert X.shape == (n, 2) and labels.shape == (n,)
    posterior = model.idata_.posterior
    w = posterior["weights"].values.reshape(-1, 2)
    mu = posterior["means"].values.reshape(-1, 2, 2)
    cov = posterior["covariance"].values.reshape(-1, 2, 2, 2)
    mean = np.einsum("sk,skd->d", w, mu) / len(w)
    second = np.einsum("sk,skd->d", w, mu**2 + np.diagonal(cov, axis1=2, axis2=3)) / len(w)
    variance = second - mean**2
    z_mean = (X.mean(axis=0) - mean) / np.sqrt(variance / n)
    centred = (X - mean) ** 2
    z_variance = (centred.mean(axis=0) - variance) / (centred.std(axis=0) / np.sqrt(n))
    cross_moment = np.einsum("sk,sk->", w, mu[..., 0] * mu[..., 1] + cov[..., 0, 1]) / len(w)
    cross = (X[:, 0] - mean[0]) * (X[:, 1] - mean[1])
    expected_cross = cross_moment - mean[0] * mean[1]
    z_cross = (cross.mean() - expected_cross) / (cross.std() / np.sqrt(n))
    share = w.mean(axis=0)
    z_share = (np.bincount(labels, minlength=2) / n - share) / np.sqrt(share * (1 - share) / n)
    for z in (z_mean, z_variance, z_cross, z_share):
        assert np.all(np.abs(z) < Z_LIMIT), z
    # random_state fixes the draws, as in scikit-learn.
    np.testing.assert_array_equal(model.sample(5)[0], model.sample(5)[0])


def test_a_refit_forgets_the_previous_fit():
    model = bgmm.BayesianGMM(2, **OPTIONS).fit(_two_clusters(60))
    model.fit(_two_clusters(60).to_numpy())
    assert not hasattr(model, "feature_names_in_")


def test_new_data_must_match_the_fit(fitted):
    model, data = fitted
    with pytest.raises(UserError, match="X has 1 features, but BayesianGMM is expecting 2"):
        model.predict(data.to_numpy()[:, :1])
    with pytest.raises(UserError, match="feature names differ"):
        model.predict(data[["mass", "height"]])
    with pytest.raises(UserError, match="inf at row 1, column 2: values must be finite"):
        model.score_samples(np.array([[0.0, np.inf]]))
    with pytest.raises(UserError, match="positive integer") as caught:
        model.sample(0)
    assert caught.value.option == "n_samples"


def test_an_unfitted_model_says_so():
    model = bgmm.BayesianGMM(2)
    for method in (model.predict, model.predict_proba, model.score_samples, model.score):
        with pytest.raises(NotFittedError, match="not fitted"):
            method(np.zeros((3, 2)))
    with pytest.raises(NotFittedError):
        model.sample(3)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_parameters_get_set_and_clone():
    from sklearn.base import clone

    model = bgmm.BayesianGMM(4, sampler="nuts", random_state=7)
    params = model.get_params()
    assert params["n_components"] == 4 and params["random_state"] == 7
    assert params["covariance_type"] == "full" and params["n_init"] == 10
    assert model.set_params(num_chains=2, n_init=3) is model
    assert (model.num_chains, model.n_init, model.config.n_init) == (2, 3, 3)
    with pytest.raises(UserError, match="not an option") as caught:
        model.set_params(tol=1e-3)
    assert caught.value.option == "tol"
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert (
        repr(copy) == "BayesianGMM(n_components=4, sampler='nuts', num_chains=2, "
        "random_state=7, n_init=3)"
    )


def test_a_pipeline_scales_then_clusters(fitted):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, data = fitted
    pipeline = make_pipeline(StandardScaler(), bgmm.BayesianGMM(2, **OPTIONS)).fit(data)
    labels = pipeline.predict(data)
    half = len(data) // 2
    assert labels[0] != labels[-1] and len(set(labels[:half])) == 1
    assert pipeline.score(data) == pytest.approx(
        pipeline[-1].score(StandardScaler().fit_transform(data))
    )


def test_covariances_take_scikit_learns_shape_for_each_structure():
    from bgmm.api import _sklearn_shape

    matrices = np.stack([np.diag([1.0, 2.0]), np.diag([3.0, 5.0]), np.diag([1.0, 2.0])])
    assert _sklearn_shape(matrices, "full") is matrices
    np.testing.assert_array_equal(_sklearn_shape(matrices, "diag"), [[1, 2], [3, 5], [1, 2]])
    np.testing.assert_array_equal(_sklearn_shape(matrices, "spherical"), [1.5, 4.0, 1.5])
    tied = np.stack([np.diag([1.0, 2.0])] * 3)
    np.testing.assert_array_equal(_sklearn_shape(tied, "tied"), np.diag([1.0, 2.0]))
