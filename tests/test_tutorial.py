"""Reproduction of the TFP tutorial (docs/design.md section 1).

The tutorial printed the averages of ONE chain of 2000 strongly correlated draws, so its
numbers carry a large Monte Carlo error of their own. We run its exact configuration
(target, start, step-size rule, 500 burn-in, 2000 draws) as NUM_RUNS independent chains,
each one a replica of the tutorial's run, and ask whether the printout is a plausible
replica: z = (printed - mean of runs) / (sd of run means * sqrt(1 + 1/NUM_RUNS)) follows a
Student t with NUM_RUNS - 1 = 15 degrees of freedom. |z| < 6 over the 9 weights and
locations gives a false failure rate of about 2e-4 per run. (The printout sits up to ~4
run-sds from our runs; the design's TFP re-run of the same program, mix probs about
[0.27 0.58 0.15], sits within one.)
"""

import numpy as np
import pytest

import bgmm
from bgmm.api import demo_model
from bgmm.tutorial import TUTORIAL_PRINTOUT, TUTORIAL_SAMPLER, tutorial_data, tutorial_start

NUM_RUNS = 16
T_LIMIT = 6.0
# The design's re-run of the tutorial's TFP program on this machine, printed to 2 decimals.
TFP_RERUN_WEIGHTS = np.array([0.27, 0.58, 0.15])


@pytest.fixture(scope="module")
def tutorial_runs():
    t = TUTORIAL_SAMPLER
    model = bgmm.BayesianGMM(
        3,
        priors="tutorial",
        target="tutorial",
        num_chains=NUM_RUNS,
        num_warmup=t.num_burnin,
        num_draws=t.num_draws,
        num_leapfrog_steps=t.num_leapfrog_steps,
        step_size=t.step_size,
        adaptation="tutorial",
        chain_method="vectorized",
        random_state=1,
    )
    return model.fit(tutorial_data(), initial=bgmm.Params(*tutorial_start())).result_


def _replica_z(run_means: np.ndarray, reference: np.ndarray, reference_sd=0.0) -> np.ndarray:
    spread = run_means.std(axis=0, ddof=1) * np.sqrt(1.0 + 1.0 / len(run_means))
    return (reference - run_means.mean(axis=0)) / np.hypot(spread, reference_sd)


@pytest.mark.slow
@pytest.mark.parametrize("var", ["weights", "means"])
def test_tutorial_printout_is_a_plausible_run(tutorial_runs, var):
    run_means = tutorial_runs.idata.posterior[var].values.mean(axis=1)
    z = _replica_z(run_means, TUTORIAL_PRINTOUT[var])
    assert np.all(np.abs(z) < T_LIMIT), f"{var}: z = {np.round(z, 2)}"


@pytest.mark.slow
def test_tfp_rerun_is_a_plausible_run(tutorial_runs):
    run_means = tutorial_runs.idata.posterior["weights"].values.mean(axis=1)
    rounding_sd = 0.005 / np.sqrt(3.0)  # uniform rounding error of a 2-decimal printout
    z = _replica_z(run_means, TFP_RERUN_WEIGHTS, rounding_sd)
    assert np.all(np.abs(z) < T_LIMIT), f"z = {np.round(z, 2)}"


@pytest.mark.slow
def test_tutorial_runs_agree_with_a_well_mixed_run_of_the_same_target(tutorial_runs, mcse):
    """The tutorial's kernel and our default one sample the same posterior.

    Error rate: |z| < 4.5 on 3 weights, the sd of the difference from the spread of the
    tutorial runs (sd / sqrt(NUM_RUNS)) and ArviZ's MCSE of the adapted run.
    """
    reference = (
        bgmm.BayesianGMM(
            3, priors="tutorial", target="tutorial", num_warmup=500, num_draws=1000, random_state=2
        )
        .fit(tutorial_data(), initial=bgmm.Params(*tutorial_start()))
        .result_
    )
    adapted = reference.idata.posterior["weights"].values
    run_means = tutorial_runs.idata.posterior["weights"].values.mean(axis=1)
    sd = np.hypot(run_means.std(axis=0, ddof=1) / np.sqrt(NUM_RUNS), mcse(adapted))
    z = (adapted.mean(axis=(0, 1)) - run_means.mean(axis=0)) / sd
    assert np.all(np.abs(z) < 4.5), f"z = {np.round(z, 2)}"


def test_tutorial_data_is_the_tutorials():
    y = tutorial_data()
    assert y.shape == (1000, 2) and y.dtype == np.float64
    random = np.random.RandomState(seed=43)
    z = random.randint(0, 3, 1000)
    expected = np.array([[-2.0, -2], [0, 0], [2, 2]])[z] + random.randn(1000, 2)
    np.testing.assert_array_equal(y, expected)


def test_demo_tutorial_uses_the_tutorial_configuration():
    model = demo_model("tutorial")
    s = model.config.sampler_settings("sequential")
    assert (model.num_chains, s.num_warmup, s.num_draws) == (1, 500, 2000)
    assert (s.num_leapfrog_steps, s.step_size, s.num_adaptation_steps) == (5, 0.065, 400)
    assert (s.adaptation, model.target, model.priors) == ("tutorial", "tutorial", "tutorial")


def test_demo_tutorial_runs_from_the_tutorial_start():
    result = bgmm.demo("tutorial", num_warmup=0, num_draws=2)
    assert result.settings["num_chains"] == 1
    # With no burn-in the first draw is one HMC step away from the tutorial's start.
    first = result.idata.posterior["means"].values[0, 0]
    assert np.max(np.abs(first - tutorial_start()[1])) < 0.5
