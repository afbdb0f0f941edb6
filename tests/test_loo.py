"""The pointwise log-likelihood ArviZ's LOO reads: stored by default from the command line,
thinned or left out (with a warning) when it would be too large, or as asked."""

import arviz as az
import numpy as np
import pytest

import bgmm
import bgmm.cli
import bgmm.fitting
from bgmm.fitting import LOG_LIKELIHOOD_BYTES, MIN_LOO_DRAWS, log_likelihood_thinning
from bgmm.results import load_inference_data

RUN = ["-k", "2", "--chains", "2", "--warmup", "150", "--draws", "100"]


def _data(tmp_path):
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.normal(-4, 1, (40, 2)), rng.normal(4, 1, (40, 2))])
    path = tmp_path / "data.csv"
    np.savetxt(path, data, delimiter=",", header="a,b", comments="")
    return data, path


def test_fit_stores_what_loo_reads_by_default(tmp_path):
    _, path = _data(tmp_path)
    out = tmp_path / "out"
    code = bgmm.cli.main(["fit", str(path), *RUN, "--no-plots", "--quiet", "--out", str(out)])
    assert code == 0
    idata = load_inference_data(out / "posterior.nc")
    assert idata.log_likelihood["y"].shape == (2, 100, 80)
    assert idata.posterior.attrs["log_likelihood_thinning"] == 1
    loo = az.loo(idata)
    # elpd is the sum of N pointwise terms, each a log density of one observation.
    assert np.isfinite(loo.elpd_loo) and loo.elpd_loo < 0
    assert loo.pareto_k.shape == (80,)


def test_no_log_likelihood_stores_none(tmp_path):
    _, path = _data(tmp_path)
    out = tmp_path / "out"
    argv = ["fit", str(path), *RUN, "--no-log-likelihood", "--no-plots", "--quiet"]
    assert bgmm.cli.main([*argv, "--out", str(out)]) == 0
    idata = load_inference_data(out / "posterior.nc")
    assert "log_likelihood" not in idata.groups()
    assert idata.posterior.attrs["log_likelihood_thinning"] == 0


def test_the_default_keeps_all_draws_then_thins_then_keeps_none():
    fits = LOG_LIKELIHOOD_BYTES // 8  # values that fit
    assert log_likelihood_thinning(4, 1000, fits // 4000, None) == 1
    assert log_likelihood_thinning(4, 1000, 2 * fits // 4000, None) == 2
    # Thinned below MIN_LOO_DRAWS: none, unless asked for.
    too_many_rows = fits // (MIN_LOO_DRAWS - 4) + 1
    assert log_likelihood_thinning(4, 1000, too_many_rows, None) == 0
    assert log_likelihood_thinning(4, 1000, too_many_rows, True) == 1
    assert log_likelihood_thinning(4, 1000, 10, False) == 0
    # A short run keeps all its draws, however few.
    assert log_likelihood_thinning(1, 10, 10, None) == 1


@pytest.fixture(scope="module")
def tight_budget_fits():
    """Fits of 80 rows under budgets that make the default thin (t = 4) and then leave the
    log-likelihood out (2 x 100 draws; MIN_LOO_DRAWS lowered to 40: 50 draws kept, then
    t = 10 would keep 20)."""
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.normal(-4, 1, (40, 2)), rng.normal(4, 1, (40, 2))])
    model = bgmm.BayesianGMM(2, num_chains=2, num_warmup=150, num_draws=100, random_state=1)
    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(bgmm.fitting, "MIN_LOO_DRAWS", 40)
        patch.setattr(bgmm.fitting, "LOG_LIKELIHOOD_BYTES", 8 * 80 * 50)
        thinned = model.fit(data).idata_
        patch.setattr(bgmm.fitting, "LOG_LIKELIHOOD_BYTES", 8 * 80 * 20)
        left_out = model.fit(data).result_
    finally:
        patch.undo()
    return thinned, left_out


def test_a_thinned_log_likelihood_keeps_every_t_th_draw(tight_budget_fits):
    thinned, _ = tight_budget_fits
    assert thinned.posterior.attrs["log_likelihood_thinning"] == 4
    log_likelihood = thinned.log_likelihood["y"]
    assert log_likelihood.shape == (2, 25, 80)
    np.testing.assert_array_equal(log_likelihood["draw"].values, np.arange(0, 100, 4))
    # The kept draws' values are those of the posterior draws they are labelled with.
    from bgmm.model import Params, pointwise_log_likelihood

    draw = thinned.posterior.sel(chain=1, draw=48)
    params = Params(*(draw[v].values for v in ("weights", "means", "chol_precision")))
    expected = pointwise_log_likelihood(params, thinned.observed_data["y"].values)
    np.testing.assert_allclose(log_likelihood.sel(chain=1, draw=48), expected, rtol=1e-10)
    assert np.isfinite(az.loo(thinned).elpd_loo)


def test_a_log_likelihood_left_out_is_said(tight_budget_fits):
    _, left_out = tight_budget_fits
    assert "log_likelihood" not in left_out.idata.groups()
    notes = [w for w in left_out.summary["warnings"] if "log-likelihood not stored" in w]
    assert len(notes) == 1 and "--log-likelihood" in notes[0]
