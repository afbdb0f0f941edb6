"""Choosing K (and the covariance structure) by PSIS-LOO: the rule, the Python function and
``bgmm select``."""

import json

import numpy as np
import pytest

import bgmm
import bgmm.cli
from bgmm.errors import UserError
from bgmm.selection import SE_RULE, _choose, num_parameters, parse_components

RUN = {"num_chains": 2, "num_warmup": 150, "num_draws": 150, "random_state": 2}
RUN_FLAGS = ["--chains", "2", "--warmup", "150", "--draws", "150", "--seed", "2"]


def _two_clusters() -> np.ndarray:
    rng = np.random.default_rng(4)
    return np.concatenate([rng.normal(-4, 1, (60, 2)), rng.normal(4, 1, (60, 2))])


def test_components_are_read_as_a_range_or_a_list():
    assert parse_components("1-4") == [1, 2, 3, 4]
    assert parse_components("5, 2,3") == [2, 3, 5]
    assert parse_components("2-3,3-4") == [2, 3, 4]
    for bad in ("0-2", "3-1", "a", "", "1-", "2.5"):
        with pytest.raises(UserError, match="like 1-8 or 2,3,5") as caught:
            parse_components(bad)
        assert caught.value.option == "n_components"


def test_parameters_are_counted_per_structure():
    assert num_parameters(3, 2, "full") == 2 + 6 + 9
    assert num_parameters(3, 2, "diag") == 2 + 6 + 6
    assert num_parameters(3, 2, "tied") == 2 + 6 + 3
    assert num_parameters(3, 2, "spherical") == 2 + 6 + 3


def _row(k, elpd_diff, se_diff):
    return {
        "k": k,
        "covariance": "full",
        "num_parameters": num_parameters(k, 2, "full"),
        "elpd_diff": elpd_diff,
        "se_diff": se_diff,
    }


def test_the_rule_takes_the_simplest_model_the_data_cannot_tell_from_the_best():
    # K = 3 is best; K = 2 is within SE_RULE standard errors; K = 1 is far below.
    table = [_row(3, 0.0, 0.0), _row(2, 0.9 * SE_RULE * 3.0, 3.0), _row(1, 80.0, 9.0)]
    assert _choose(table)["k"] == 2
    assert [row["chosen"] for row in table] == [False, True, False]
    # Just outside the band: the best stays.
    table = [_row(3, 0.0, 0.0), _row(2, 1.1 * SE_RULE * 3.0, 3.0)]
    assert _choose(table)["k"] == 3


@pytest.fixture(scope="module")
def selection():
    return bgmm.select(_two_clusters(), [1, 2, 3], **RUN)


def test_select_finds_the_two_clusters(selection):
    table = selection.table
    assert [row["elpd_loo"] for row in table] == sorted(
        (row["elpd_loo"] for row in table), reverse=True
    )
    by_k = {row["k"]: row for row in table}
    assert set(by_k) == {1, 2, 3}
    assert selection.best == {"k": 2, "covariance": "full"}
    assert selection.model is selection.models[2, "full"]
    assert selection.model.n_components == 2 and hasattr(selection.model, "result_")
    # One component cannot hold two separated clusters: far below, in its own se.
    assert by_k[1]["elpd_diff"] > 10 * by_k[1]["se_diff"]
    assert by_k[2]["elpd_diff"] <= SE_RULE * by_k[2]["se_diff"]
    for row in table:
        assert row["se"] > 0 and np.isfinite(row["p_loo"]) and row["pareto_k_bad"] >= 0
    assert sum(row["chosen"] for row in table) == 1
    text = selection.report()
    assert "<- chosen" in text and "rule:" in text
    json.dumps(selection.to_dict())  # JSON-able


def test_select_refuses_bad_grids():
    data = _two_clusters()
    with pytest.raises(UserError, match="full") as caught:
        bgmm.select(data, [2], ["triangular"])
    assert caught.value.option == "covariance_type"
    with pytest.raises(UserError, match="pointwise log-likelihood"):
        bgmm.select(data, [2], store_log_likelihood=False)
    with pytest.raises(TypeError, match="n_components"):
        bgmm.select(data, [2], n_components=3)


def test_the_select_command_writes_the_choice_and_the_chosen_model(tmp_path, capsys, selection):
    """Same data and options as the fixture: the programs compiled there are reused."""
    path = tmp_path / "data.csv"
    np.savetxt(path, _two_clusters(), delimiter=",", header="a,b", comments="")
    out = tmp_path / "out"
    argv = ["select", str(path), "-k", "1-3", "--sparse", *RUN_FLAGS, "--quiet", "--out", str(out)]
    assert bgmm.cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "<- chosen" in printed and "elpd_loo" in printed
    files = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert files == {
        "posterior.nc",
        "assignments.csv",
        "partition.csv",
        "selection.json",
        "locations.png",
        "trace.png",
        "assignments.png",
        "similarity.png",
        "selection.png",
    }
    record = json.loads((out / "selection.json").read_text())
    assert record["best"] == {"k": 2, "covariance": "full"}
    assert len(record["models"]) == 3
    sparse = record["sparse"]
    assert (sparse["k"], sparse["concentration"], sparse["most_probable"]) == (3, 0.01, 2)
    assert sum(sparse["occupied"].values()) == pytest.approx(1.0)
    assert "sparse overfitted mixture (K = 3" in printed
    assert [m["elpd_loo"] for m in record["models"]] == pytest.approx(
        [row["elpd_loo"] for row in selection.table], rel=1e-9
    )
    posterior = bgmm.FitResult.load(out / "posterior.nc").idata.posterior
    assert posterior.sizes["component"] == 2


def test_a_sparse_mixture_empties_the_components_the_data_do_not_need():
    """Gibbs, which samples the allocations: two separated clusters occupy two of five
    components in (nearly) every draw."""
    sparse = bgmm.sparse_mixture(_two_clusters(), 5, sampler="gibbs", **RUN)
    assert sparse.most_probable == 2
    assert sparse.occupied[2] > 0.9 and sum(sparse.occupied.values()) == pytest.approx(1.0)
    np.testing.assert_array_equal(sparse.model.result_.settings["priors"], "custom")
    with pytest.raises(TypeError, match="priors"):
        bgmm.sparse_mixture(_two_clusters(), 5, priors="default")
    with pytest.raises(UserError, match="positive number"):
        bgmm.sparse_mixture(_two_clusters(), 5, concentration=0.0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-k", "0-2"], "-k/--components: expected K >= 1"),
        (["--covariance", "full,round"], "--covariance: expected one of"),
        (["--no-log-likelihood"], "--log-likelihood"),
    ],
)
def test_the_select_command_refuses_bad_options_in_one_line(tmp_path, capsys, flags, message):
    path = tmp_path / "data.csv"
    np.savetxt(path, _two_clusters(), delimiter=",")
    out = tmp_path / "out"
    code = bgmm.cli.main(["select", str(path), *flags, "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert message in err, err
    assert not out.exists()
