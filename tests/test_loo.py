"""``bgmm fit --log-likelihood`` stores what ArviZ's LOO needs, from the command line."""

import arviz as az
import numpy as np

import bgmm.cli
from bgmm.results import load_inference_data


def test_fit_with_log_likelihood_gives_a_posterior_that_loo_reads(tmp_path):
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.normal(-4, 1, (40, 2)), rng.normal(4, 1, (40, 2))])
    path = tmp_path / "data.csv"
    np.savetxt(path, data, delimiter=",", header="a,b", comments="")
    out = tmp_path / "out"
    argv = ["fit", str(path), "-k", "2", "--chains", "2", "--warmup", "150", "--draws", "100"]
    code = bgmm.cli.main([*argv, "--log-likelihood", "--no-plots", "--quiet", "--out", str(out)])
    assert code == 0
    idata = load_inference_data(out / "posterior.nc")
    assert idata.log_likelihood["y"].shape == (2, 100, 80)
    loo = az.loo(idata)
    # elpd is the sum of N pointwise terms, each a log density of one observation.
    assert np.isfinite(loo.elpd_loo) and loo.elpd_loo < 0
    assert loo.pareto_k.shape == (80,)
