"""The warm-up on a subsample (docs/design.md 18): when it is used, what it hands on, and
that the kept draws are of the whole data's posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bgmm
from bgmm.cli import main
from bgmm.config import RunConfig
from bgmm.errors import UserError
from bgmm.inference import resolve_path_length
from bgmm.samplers.adaptation import step_size_adaptation
from bgmm.samplers.hmc import Tuning
from bgmm.samplers.runner import Kernel, StopRequested, run_chains
from bgmm.warmup_rows import (
    MIN_SUBSAMPLED_WARMUP,
    WARMUP_SUBSAMPLE_FROM_ROWS,
    WARMUP_SUBSAMPLE_ROWS,
    warmup_subsample_rows,
)

# |z| < Z_LIMIT with normal tails: 6.8e-6 per comparison, times the comparisons of a test.
Z_LIMIT = 4.5
CENTRES = np.array([[0.0, 0.0], [8.0, 4.0]])


def _settings(**options):
    return RunConfig(**options).sampler_settings("sequential")


@pytest.mark.parametrize(
    "options, num_rows, expected",
    [
        ({}, WARMUP_SUBSAMPLE_FROM_ROWS, WARMUP_SUBSAMPLE_ROWS),
        ({}, WARMUP_SUBSAMPLE_FROM_ROWS - 1, None),
        ({"warmup_rows": "all"}, 10**6, None),
        ({"warmup_rows": 500}, 4000, 500),
        ({"warmup_rows": 500}, 500, None),  # nothing left out: all rows
        ({"num_warmup": MIN_SUBSAMPLED_WARMUP - 1}, 10**6, None),
        ({"sampler": "nuts"}, 10**6, WARMUP_SUBSAMPLE_ROWS),
        ({"sampler": "gibbs"}, 10**6, None),
        ({"adaptation": "tutorial"}, 10**6, None),
        ({"split_rows": True}, 10**6, None),
    ],
)
def test_when_the_warmup_runs_on_a_subsample(options, num_rows, expected):
    assert warmup_subsample_rows(_settings(**options), num_rows) == expected


@pytest.mark.parametrize(
    "options, num_rows, expected",
    [
        ({}, WARMUP_SUBSAMPLE_FROM_ROWS, "auto"),  # the warm-up on a subsample: fitted
        ({}, WARMUP_SUBSAMPLE_FROM_ROWS - 1, 16),
        ({"warmup_rows": "all"}, 10**6, 16),
        ({"num_leapfrog_steps": 8}, 10**6, 8),
        ({"num_leapfrog_steps": "auto"}, 1000, "auto"),
        ({"adaptation": "tutorial"}, 10**6, 16),
        ({"sampler": "nuts"}, 10**6, None),
    ],
)
def test_hmcs_default_path_length_follows_the_datas_size(options, num_rows, expected):
    assert _settings(**options).num_leapfrog_steps == options.get("num_leapfrog_steps")
    resolved = resolve_path_length(_settings(**options), num_rows)
    assert resolved.num_leapfrog_steps == expected


@pytest.mark.parametrize(
    "options, message",
    [
        ({"warmup_rows": 99}, "from 100"),
        ({"warmup_rows": "half"}, "from 100"),
        ({"warmup_rows": 1000, "sampler": "gibbs"}, "window adaptation"),
        ({"warmup_rows": 1000, "adaptation": "tutorial"}, "window adaptation"),
        ({"warmup_rows": 1000, "split_rows": True}, "not split"),
        ({"warmup_rows": 1000, "num_warmup": 150}, "num_warmup >= 200"),
    ],
)
def test_bad_warmup_rows_are_refused(options, message):
    with pytest.raises(UserError, match=message) as error:
        RunConfig(**options)
    assert error.value.option == "warmup_rows"


def test_the_cli_refuses_a_bad_warmup_rows_in_one_line(tmp_path, capsys):
    data = tmp_path / "data.csv"
    np.savetxt(data, np.random.default_rng(0).normal(size=(50, 2)), delimiter=",")
    out = tmp_path / "out"
    assert main(["fit", str(data), "--out", str(out), "--warmup-rows", "some"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--warmup-rows" in lines[0]
    assert not out.exists()


def test_step_size_adaptation_keeps_the_metric_and_path_length():
    adaptation = step_size_adaptation(0.8)
    initial = Tuning(jnp.asarray(0.3), jnp.asarray([1.0, 4.0, 9.0]), jnp.asarray(7, jnp.int32))
    state = adaptation.init(initial)
    for step in range(30):  # every step accepted: the step size must grow
        state = adaptation.update(state, step, None, jnp.asarray(1.0), jnp.asarray(0.0))
    for tuning in (adaptation.current(state), adaptation.final(state)):
        np.testing.assert_array_equal(tuning.inverse_mass_matrix, initial.inverse_mass_matrix)
        assert int(tuning.num_steps) == 7
        assert float(tuning.step_size) > 0.3


def test_each_chain_can_start_from_its_own_tuning():
    def step(key, state, tuning):
        return state, jnp.ones(())

    kernel = Kernel(
        init=lambda x: x,
        step=step,
        acceptance_rate=lambda info: info,
        position=lambda state: state,
        record=lambda state, info, tuning: {"step_size": tuning.step_size},
    )
    tunings = Tuning(np.asarray([0.1, 0.2, 0.3]), np.ones((3, 2)), np.full(3, 4, np.int32))
    run = run_chains(
        jax.random.key(0),
        lambda data: kernel,
        None,
        np.zeros((3, 2)),
        num_warmup=0,
        num_draws=2,
        initial_tuning=tunings,
        chain_tuning=True,
    )
    np.testing.assert_allclose(run.draws["step_size"], [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]])


def _clusters(num_rows, seed=0):
    rng = np.random.default_rng(seed)
    hidden = rng.integers(0, 2, num_rows)
    return CENTRES[hidden] + rng.standard_normal((num_rows, 2)) * np.array([1.0, 0.5])


def test_the_draws_are_of_the_whole_datas_posterior(z_scores, separated_cluster_posterior):
    """A warm-up on 400 of 4,000 rows, then the draws: against the exact posterior means of
    these well-separated clusters (conftest.separated_cluster_posterior), |mean - truth| /
    MCSE < 4.5, P(false failure) < 5e-5 over the 6 numbers. Draws of the subsample's
    posterior (likelihood scaled by 10) would sit about sqrt(10) posterior sds away, |z| in
    the tens at this ESS."""
    data = _clusters(4000)
    model = bgmm.BayesianGMM(
        2,
        num_chains=2,
        num_warmup=300,
        num_draws=400,
        num_leapfrog_steps=4,
        warmup_rows=400,
        random_state=3,
    ).fit(data)
    result = model.result_
    assert result.settings["warmup_rows"] == 400 and result.to_dict()["warmup_rows"] == 400
    post = result.idata.posterior
    order = np.argsort(np.array(result.summary["means_mean"])[:, 0])
    means, weights = separated_cluster_posterior(data, CENTRES)
    for var, truth in (("means", means), ("weights", weights)):
        z = z_scores(post[var].values, truth[np.argsort(order)])
        assert np.all(np.abs(z) < Z_LIMIT), f"{var}: z = {np.round(z, 2)}"
    assert result.summary["rhat_max"] < 1.05


def test_a_run_stopped_after_the_subsample_resumes_bit_for_bit():
    """The warm-up on the subsample is run again on resume: it must end where it ended."""
    from bgmm.inference import sample_posterior
    from bgmm.model import Params, default_priors

    data = _clusters(600)
    settings = RunConfig(
        n_components=2,
        num_warmup=200,
        num_draws=20,
        num_leapfrog_steps=4,
        warmup_rows=100,
        chain_method="sequential",
        likelihood="direct",  # rounds alike in every layout (tests/test_runner.py)
    ).sampler_settings()
    priors = default_priors(2, 2)
    starts = Params(
        np.full((2, 2), 0.5), np.repeat(CENTRES[None], 2, axis=0), np.tile(np.eye(2), (2, 2, 1, 1))
    )

    def run(**options):
        return sample_posterior(jax.random.key(5), data, priors, starts, settings, **options)

    seen = []
    with pytest.raises(StopRequested) as stopped:
        run(on_chunk=lambda state: seen.append(state) or len(seen) == 3)
    full, resumed = run(), run(resume_from=stopped.value.state)
    assert full.warmup_rows == 100
    for name in full.draws:
        np.testing.assert_array_equal(full.draws[name], resumed.draws[name], err_msg=name)
