"""Which component each observation belongs to: from Python (``FitResult.predict_proba``,
``predict``, ``memberships``) and from ``bgmm fit`` (``assignments.csv``)."""

import numpy as np
import pytest

import bgmm
import bgmm.cli
from bgmm.assignments import membership_probabilities
from bgmm.errors import UserError
from bgmm.relabel import classification_probabilities

CENTRES = np.array([[-6.0, 0.0], [6.0, 0.0]])


def _two_clusters(n: int = 80, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Clusters 12 sds apart: every row's component is certain, so its label is known."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    return CENTRES[labels] + rng.standard_normal((n, 2)), labels


@pytest.fixture(scope="module")
def fitted():
    data, labels = _two_clusters()
    model = bgmm.BayesianGMM(
        2, num_chains=2, num_warmup=150, num_draws=100, chain_method="sequential", seed=1
    )
    return model.fit(data), data, labels


def test_memberships_are_the_posterior_mean_of_the_classification_probabilities():
    """Batched and padded, they equal the direct mean and sd over all draws at once."""
    rng = np.random.default_rng(0)
    c, s, k, d = 2, 5, 3, 2
    weights = rng.dirichlet(np.ones(k), size=(c, s))
    means = rng.normal(size=(c, s, k, d))
    chol = np.broadcast_to(np.eye(d), (c, s, k, d, d)) * rng.uniform(0.5, 2, (c, s, k, 1, 1))
    data = rng.normal(size=(23, d))
    direct = classification_probabilities(data, weights, means, chol)
    for batch_rows in (1, 7, 23, 100):
        got = membership_probabilities(data, weights, means, chol, batch_rows=batch_rows)
        np.testing.assert_allclose(got.mean, direct.mean(axis=(0, 1)), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got.sd, direct.std(axis=(0, 1)), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(got.mean.sum(axis=1), 1.0)


def test_predict_recovers_separated_clusters_with_the_summarys_labels(fitted):
    result, data, labels = fitted
    proba = result.predict_proba(data)
    assert proba.shape == (len(data), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    predicted = result.predict(data)
    # Same partition as the truth (labels may be named the other way round) ...
    assert np.all(predicted == labels) or np.all(predicted == 1 - labels)
    # ... and named as the summary names the components: component j's mean is where
    # the rows predicted j lie.
    means = np.array(result.summary["means_mean"])
    for j in range(2):
        np.testing.assert_allclose(data[predicted == j].mean(axis=0), means[j], atol=0.5)
    assert np.all(result.memberships(data).sd < 1e-3)  # certain: little spread over draws
    new = CENTRES + 0.1
    assert list(result.predict(new)) == [int(np.argmin(np.abs(means[:, 0] - x))) for x in (-6, 6)]


def test_predict_refuses_data_of_another_width(fitted):
    result, _, _ = fitted
    with pytest.raises(UserError, match="expected 2 features, got 3") as caught:
        result.predict(np.zeros((4, 3)))
    assert caught.value.option == "X"


def test_fit_writes_assignments_in_input_order(tmp_path):
    data, labels = _two_clusters(60, seed=5)
    path = tmp_path / "data.csv"
    np.savetxt(path, data, delimiter=",", header="a,b", comments="")
    out = tmp_path / "out"
    run = ["-k", "2", "--chains", "2", "--warmup", "150", "--draws", "100"]
    code = bgmm.cli.main(["fit", str(path), *run, "--no-plots", "--quiet", "--out", str(out)])
    assert code == 0
    lines = (out / "assignments.csv").read_text().splitlines()
    assert lines[0] == "cluster,probability,p_0,p_1"
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert table.shape == (60, 4)
    cluster, probability, p = table[:, 0].astype(int), table[:, 1], table[:, 2:]
    assert np.all(cluster == labels) or np.all(cluster == 1 - labels)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(cluster, np.argmax(p, axis=1))
    np.testing.assert_allclose(probability, p.max(axis=1))
    assert "assignments.csv" in (out / ".bgmm-manifest.json").read_text()
