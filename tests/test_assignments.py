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
        2, num_chains=2, num_warmup=150, num_draws=100, chain_method="sequential", random_state=1
    )
    return model.fit(data).result_, data, labels


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


@pytest.fixture(scope="module")
def cli_fit(tmp_path_factory):
    """``bgmm fit`` of a CSV with a header: (its --out, the data, the true labels)."""
    tmp_path = tmp_path_factory.mktemp("cli-fit")
    data, labels = _two_clusters(60, seed=5)
    path = tmp_path / "data.csv"
    np.savetxt(path, data, delimiter=",", header="a,b", comments="")
    out = tmp_path / "out"
    run = ["-k", "2", "--chains", "2", "--warmup", "150", "--draws", "100"]
    code = bgmm.cli.main(["fit", str(path), *run, "--no-plots", "--quiet", "--out", str(out)])
    assert code == 0
    return out, data, labels


def _read_assignments(path) -> np.ndarray:
    lines = path.read_text().splitlines()
    assert lines[0] == "cluster,probability,p_0,p_1"
    return np.array([[float(v) for v in line.split(",")] for line in lines[1:]])


def test_fit_writes_assignments_in_input_order(cli_fit):
    out, _, labels = cli_fit
    table = _read_assignments(out / "assignments.csv")
    assert table.shape == (60, 4)
    cluster, probability, p = table[:, 0].astype(int), table[:, 1], table[:, 2:]
    assert np.all(cluster == labels) or np.all(cluster == 1 - labels)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(cluster, np.argmax(p, axis=1))
    np.testing.assert_allclose(probability, p.max(axis=1))
    assert "assignments.csv" in (out / ".bgmm-manifest.json").read_text()


def test_fit_writes_the_point_partition(cli_fit):
    out, _, labels = cli_fit
    lines = (out / "partition.csv").read_text().splitlines()
    assert lines[0] == "row,cluster"
    table = np.array([[int(v) for v in line.split(",")] for line in lines[1:]])
    np.testing.assert_array_equal(table[:, 0], np.arange(60))  # every row, in input order
    assert np.all(table[:, 1] == labels) or np.all(table[:, 1] == 1 - labels)


def test_predict_gives_new_rows_the_fits_assignments(cli_fit, tmp_path, capsys):
    """New rows with the columns in another order, by name, give the fit's own table; a
    headerless file is read by position; without --out the table goes to stdout."""
    out, data, _ = cli_fit
    swapped = tmp_path / "new.csv"
    np.savetxt(swapped, data[:, ::-1], delimiter=",", header="b,a", comments="")
    predictions = tmp_path / "predictions.csv"
    assert bgmm.cli.main(["predict", str(out), str(swapped), "--out", str(predictions)]) == 0
    expected = _read_assignments(out / "assignments.csv")
    np.testing.assert_allclose(_read_assignments(predictions), expected, rtol=1e-5)
    headerless = tmp_path / "new.npy"
    np.save(headerless, data[:5])
    capsys.readouterr()
    assert bgmm.cli.main(["predict", str(out / "posterior.nc"), str(headerless)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "cluster,probability,p_0,p_1" and len(lines) == 6
    np.testing.assert_allclose(
        [[float(v) for v in line.split(",")] for line in lines[1:]], expected[:5], rtol=1e-5
    )


@pytest.mark.parametrize(
    ("columns", "out_name", "message"),
    [
        ("a,c", "p.csv", "new.csv: no column named 'b'; the fit used the columns a, b"),
        ("a,b", "out/p.csv", "is in the fit's directory"),
        ("a,b", "new.csv", "is the new data file"),
        ("a,b", "missing/p.csv", "does not exist"),
    ],
)
def test_predict_refuses_bad_input_in_one_line(
    cli_fit, tmp_path, capsys, columns, out_name, message
):
    out, data, _ = cli_fit
    (tmp_path / "out").symlink_to(out)
    new = tmp_path / "new.csv"
    np.savetxt(new, data, delimiter=",", header=columns, comments="")
    before = new.read_bytes()
    code = bgmm.cli.main(["predict", str(out), str(new), "--out", str(tmp_path / out_name)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
    assert message in err, err
    assert new.read_bytes() == before and not (tmp_path / "p.csv").exists()


def test_predict_needs_a_saved_fit(tmp_path, capsys):
    new = tmp_path / "new.csv"
    np.savetxt(new, np.zeros((3, 2)), delimiter=",")
    assert bgmm.cli.main(["predict", str(tmp_path), str(new)]) == 2
    assert f"{tmp_path / 'posterior.nc'}: no such file" in capsys.readouterr().err
