"""The Python API: results layout, units, dtypes, options and argument checks."""

import numpy as np
import pytest

import bgmm
from bgmm.data import DataError
from bgmm.errors import UserError
from bgmm.results import load_inference_data
from bgmm.tutorial import tutorial_start


def _two_clusters(n=400, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, n)
    centres = np.array([[100.0, 0.0], [110.0, 5.0]])
    return centres[z] + rng.standard_normal((n, 2)) * np.array([1.0, 0.5])


@pytest.fixture(scope="module")
def small_fit():
    model = bgmm.BayesianGMM(
        2, num_chains=2, num_warmup=300, num_draws=300, random_state=1, store_log_likelihood=True
    )
    return model.fit(_two_clusters(), feature_names=["a", "b"]).result_


def test_inference_data_layout(small_fit):
    idata = small_fit.idata
    post = idata.posterior
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    for var in ("chol_precision", "precision", "covariance"):
        assert post[var].dims == ("chain", "draw", "component", "feature", "feature_")
    assert post["lp"].dims == ("chain", "draw")
    assert list(post["feature"].values) == ["a", "b"]
    for stat in ("acceptance_rate", "step_size", "n_steps", "diverging", "energy", "lp"):
        assert idata.sample_stats[stat].dims == ("chain", "draw"), stat
    assert idata.sample_stats["label_permutation"].dims == ("chain", "draw", "component")
    assert idata.observed_data["y"].shape == (400, 2)
    assert idata.log_likelihood["y"].shape == (2, 300, 400)
    for key in ("bgmm_version", "jax_version", "numpy_version", "device", "seed", "target"):
        assert key in post.attrs, key
    prec = post["precision"].values
    np.testing.assert_allclose(prec @ post["covariance"].values, np.eye(2) + 0 * prec, atol=1e-8)


# Statistical tests here state their error rate as |z| < Z_LIMIT with normal tails: 6.8e-6
# per comparison, times the comparisons of a test (Bonferroni).
Z_LIMIT = 4.5


def test_results_are_in_data_units(small_fit, z_scores, separated_cluster_posterior):
    post = small_fit.idata.posterior
    order = np.argsort(np.array(small_fit.summary["means_mean"])[:, 0])
    # The exact posterior means of the locations and weights of these well-separated
    # clusters (conftest.separated_cluster_posterior), in data units, against the run's:
    # |mean - truth| / MCSE < 4.5, P(false failure) < 5e-5 over the 6 numbers. A result
    # left in standardised units is off by |z| > 1000; swapped labels fail the R-hat below.
    means, weights = separated_cluster_posterior(_two_clusters(), [[100.0, 0.0], [110.0, 5.0]])
    for var, truth in (("means", means), ("weights", weights)):
        z = z_scores(post[var].values, truth[np.argsort(order)])
        assert np.all(np.abs(z) < Z_LIMIT), f"{var}: z = {np.round(z, 2)}"
    cov = np.array(small_fit.summary["covariance_mean"])[order]
    # Not a z-test: the prior adds one unit-variance pseudo-observation (README, "Priors"),
    # which biases the variances by more than their posterior sd; rtol 0.4 is a units check
    # (standardised units would be off by a factor 25 in feature a).
    np.testing.assert_allclose(np.diagonal(cov, axis1=1, axis2=2), [[1.0, 0.25]] * 2, rtol=0.4)
    # Not a z-test: R-hat has no MCSE; 1.05 is a diagnostic threshold, and label switching
    # between the chains would give > 1.1.
    assert small_fit.summary["rhat_max"] < 1.05
    assert small_fit.settings["relabel"] == "pivot" and small_fit.settings["standardized"]


def test_default_priors_make_results_equivariant_to_units():
    """Standardisation makes the default model blind to units: rescaled data, rescaled draws."""
    X = _two_clusters(100)
    scale, shift = np.array([10.0, 0.1]), np.array([5.0, -3.0])
    # A few steps only: HMC is chaotic, so rounding differences grow over long runs.
    kwargs = {"num_chains": 1, "num_warmup": 0, "num_draws": 3, "random_state": 4}
    a = bgmm.BayesianGMM(2, **kwargs).fit(X).idata_.posterior
    b = bgmm.BayesianGMM(2, **kwargs).fit(X * scale + shift).idata_.posterior
    np.testing.assert_allclose(b["means"].values, a["means"].values * scale + shift, rtol=1e-6)
    np.testing.assert_allclose(
        b["covariance"].values, a["covariance"].values * np.outer(scale, scale), rtol=1e-6
    )
    np.testing.assert_allclose(b["weights"].values, a["weights"].values, rtol=1e-6)


def test_pointwise_log_likelihood_matches_the_model(small_fit):
    from bgmm.model import Params, pointwise_log_likelihood

    post = small_fit.idata.posterior
    params = Params(*(post[v].values[1, 7] for v in ("weights", "means", "chol_precision")))
    y = small_fit.idata.observed_data["y"].values
    expected = np.asarray(pointwise_log_likelihood(params, y))
    np.testing.assert_allclose(small_fit.idata.log_likelihood["y"].values[1, 7], expected)


def test_netcdf_round_trip(small_fit, tmp_path):
    path = small_fit.save(tmp_path / "run" / "posterior.nc")
    loaded = load_inference_data(path)
    np.testing.assert_array_equal(
        loaded.posterior["means"].values, small_fit.idata.posterior["means"].values
    )
    assert loaded.posterior.attrs["target"] == "correct"
    assert not list(tmp_path.joinpath("run").glob(".*.tmp"))


def test_json_record_has_the_documented_keys(small_fit):
    record = small_fit.to_dict()
    for key in (
        "sampler", "target", "num_chains", "num_draws", "acceptance_rate", "weights_mean",
        "means_mean", "chol_precision_mean", "covariance_mean", "rhat_max", "ess_bulk_min",
        "divergences", "compile_seconds", "sampling_seconds", "total_seconds",
    ):  # fmt: skip
        assert key in record, key
    assert np.shape(record["chol_precision_mean"]) == (2, 2, 2)


def test_float32_runs_and_agrees_with_float64(two_run_z):
    kwargs = {"num_chains": 2, "num_warmup": 300, "num_draws": 300, "random_state": 3}
    r32 = bgmm.demo(dtype="float32", **kwargs)
    r64 = bgmm.demo(dtype="float64", **kwargs)
    assert r32.settings["dtype"] == "float32"
    assert r32.summary["divergences"] == 0  # an integrator failure, not an estimate
    # Same posterior: the two independent runs' means of the 3 weights and 6 locations agree,
    # |m32 - m64| / sqrt(MCSE32^2 + MCSE64^2) < 4.5: P(false failure) about 6e-5 over the 9
    # comparisons if the MCSEs were exact (ArviZ's, from 150 or more effective draws, are
    # uncertain by about 5 %, which could double it).
    for var in ("weights", "means"):
        a, b = r32.idata.posterior[var].values, r64.idata.posterior[var].values
        z = two_run_z(a, b)
        assert np.all(np.abs(z) < Z_LIMIT), f"{var}: z = {np.round(z, 2)}"


def test_initial_values_are_used_in_data_units():
    X = _two_clusters()
    initial = bgmm.Params(
        np.array([0.5, 0.5]),
        np.array([[100.0, 0.0], [110.0, 5.0]]),
        np.stack([np.diag([1.0, 2.0])] * 2),
    )
    result = (
        bgmm.BayesianGMM(2, num_chains=1, num_warmup=0, num_draws=2, relabel="none")
        .fit(X, initial=initial)
        .result_
    )
    first = result.idata.posterior["means"].values[0, 0]
    np.testing.assert_allclose(first, initial.means, atol=0.5)


@pytest.mark.parametrize(
    ("kwargs", "option", "match"),
    [
        ({"n_components": 0}, "n_components", "from 1"),
        ({"n_components": 2.5}, "n_components", "integer"),
        ({"priors": "flat"}, "priors", "'default', 'tutorial' or a bgmm.Priors"),
        # A plain tuple is not a Priors: refused, never silently the default priors.
        ({"priors": (np.ones(2), np.zeros((2, 1)), 1.0, 2.0, np.eye(1))}, "priors", "tuple"),
        ({"n_components": 4, "priors": "tutorial"}, "n_components", "tutorial priors"),
        ({"target": "wrong"}, "target", "correct, tutorial"),
        ({"sampler": "mh"}, "sampler", "hmc, nuts, gibbs"),
        ({"sampler": "gibbs", "target": "tutorial"}, "target", "Gibbs"),
        ({"sampler": "nuts", "adaptation": "tutorial"}, "adaptation", "for HMC"),
        ({"adaptation": "magic"}, "adaptation", "window, tutorial"),
        ({"dtype": "float16"}, "dtype", "float64, float32"),
        ({"num_chains": 0}, "num_chains", "from 1"),
        ({"num_draws": 1}, "num_draws", "from 2"),
        ({"max_tree_depth": 0}, "max_tree_depth", "from 1"),
        ({"random_state": -1}, "random_state", "from 0"),
        ({"random_state": 2**63}, "random_state", "from 0"),
        ({"step_size": -1.0}, "step_size", "positive"),
        ({"step_size": float("nan")}, "step_size", "positive"),
        ({"target_accept": 1.0}, "target_accept", r"\(0, 1\)"),
        ({"target_accept": 0.0}, "target_accept", r"\(0, 1\)"),
        ({"relabel": "sorted"}, "relabel", "auto, none, pivot, stephens"),
        ({"store_log_likelihood": "yes"}, "store_log_likelihood", "True, False or None"),
        ({"chain_method": "threads"}, "chain_method", "sequential"),
    ],
)
def test_bad_arguments_are_refused_naming_the_option(kwargs, option, match):
    """As in scikit-learn, options are kept as given and checked by fit."""
    model = bgmm.BayesianGMM(**kwargs)
    assert all(model.get_params()[name] is value for name, value in kwargs.items())
    with pytest.raises(UserError, match=match) as caught:
        model.fit(_two_clusters(20))
    assert caught.value.option == option
    assert str(caught.value).startswith(f"{option}: ")


def test_an_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="num_samples"):
        bgmm.BayesianGMM(2, num_samples=10)


def test_the_model_shows_the_options_of_the_run_configuration():
    """Signature, docstring and attributes come from RunConfig: one home of the defaults."""
    import inspect
    from dataclasses import fields

    from bgmm.config import RunConfig

    signature = inspect.signature(bgmm.BayesianGMM)
    model = bgmm.BayesianGMM(2, num_chains=3)
    for f in fields(RunConfig):
        assert signature.parameters[f.name].default == f.default
        assert f"    {f.name} : default {f.default!r}" in bgmm.BayesianGMM.__doc__
    assert (model.n_components, model.num_chains, model.num_draws) == (2, 3, 1000)
    assert model.config == RunConfig(n_components=2, num_chains=3)


def test_bad_data_is_refused():
    model = bgmm.BayesianGMM(3)
    with pytest.raises(UserError, match="nan at row 1, column 2: values must be finite") as caught:
        model.fit(np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]]))
    assert caught.value.option == "X"
    with pytest.raises(DataError, match="2 rows but 3 components"):
        model.fit(np.ones((2, 2)))
    with pytest.raises(UserError, match="1 names for 2 features") as caught:
        model.fit(np.random.default_rng(0).standard_normal((5, 2)), feature_names=["a"])
    assert caught.value.option == "feature_names"


def test_target_accept_sets_the_adapted_step_size():
    """A higher target acceptance adapts to a smaller step size, and the record says which."""

    def fit(target_accept):
        model = bgmm.BayesianGMM(
            3,
            priors="tutorial",
            num_chains=1,
            num_warmup=200,
            num_draws=20,
            target_accept=target_accept,
        )
        return model.fit(bgmm.tutorial_data(200), initial=bgmm.Params(*tutorial_start())).result_

    low, high, default = fit(0.5), fit(0.95), fit(None)
    # Not a z-test: an adapted step size estimates no known quantity (no truth, no MCSE).
    # Dual averaging moves it monotonically with the target; measured ratio low / high 6.6.
    assert high.settings["step_size"] < low.settings["step_size"]
    assert (low.settings["target_accept"], default.settings["target_accept"]) == (0.5, 0.65)
