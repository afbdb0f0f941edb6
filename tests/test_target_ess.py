"""Runs to a target ESS (``target_ess``, ``--target-ess``; docs/design.md 19)."""

from __future__ import annotations

import itertools
import signal

import jax
import numpy as np
import pytest
from test_resume import RUN, assert_ok, assert_same_draws, draws_of, run_cli, stopped_run

from bgmm.config import RunConfig
from bgmm.errors import UserError
from bgmm.inference import sample_posterior
from bgmm.model import Params, tutorial_priors
from bgmm.stopping import CHECK_GROWTH, MIN_DRAWS, TargetEss
from bgmm.tutorial import tutorial_data, tutorial_start


def _run(num_draws=60, **options):
    """Two vectorized HMC chains on 200 tutorial rows (as tests/test_runner.py)."""
    initial = Params(*(np.repeat(a[None], 2, axis=0) for a in tutorial_start()))
    settings = RunConfig(
        num_warmup=60,
        num_draws=num_draws,
        num_leapfrog_steps=4,
        chain_method="vectorized",
        likelihood="direct",
    ).sampler_settings()
    return sample_posterior(
        jax.random.key(3), tutorial_data(200), tutorial_priors(), initial, settings, **options
    )


def _after(num_draws: int):
    """A ``stop_when`` that is satisfied once each chain has ``num_draws`` draws."""
    return lambda draws: draws["lp"].shape[1] >= num_draws


def test_a_stopped_run_keeps_the_first_draws_of_the_full_run():
    full = _run()
    stopped = _run(stop_when=_after(20))
    assert stopped.converged is True and full.converged is None
    kept = stopped.draws["lp"].shape[1]
    # Checked after every chunk of at most 10 steps: it stops at the first chunk past 20.
    assert 20 <= kept < 30
    for name, values in stopped.draws.items():
        np.testing.assert_array_equal(values, full.draws[name][:, :kept], err_msg=name)


def test_a_run_never_satisfied_keeps_every_draw():
    run = _run(stop_when=lambda draws: False)
    assert run.converged is False and run.draws["lp"].shape == (2, 60)


def test_resumed_runs_stop_where_the_run_never_stopped_does():
    reference = _run(stop_when=_after(20))
    states = []
    _run(stop_when=_after(20), on_chunk=lambda state: states.append(state) or False)
    assert states[-1].converged and states[-1].finished
    assert not any(state.converged for state in states[:-1])
    for state in (states[len(states) // 2], states[-1]):  # mid-run, and after the stop
        calls = []

        def never_again(draws, calls=calls):
            calls.append(draws["lp"].shape[1])
            return draws["lp"].shape[1] >= 20

        resumed = _run(stop_when=never_again, resume_from=state)
        for name, values in reference.draws.items():
            np.testing.assert_array_equal(resumed.draws[name], values, err_msg=name)
        if state.converged:
            assert calls == []  # nothing left to run or check


def test_chains_in_turns_are_refused():
    initial = Params(*(np.repeat(a[None], 2, axis=0) for a in tutorial_start()))
    config = RunConfig(num_warmup=20, num_draws=20, chain_method="sequential")
    with pytest.raises(ValueError, match="one group"):
        sample_posterior(
            jax.random.key(0),
            tutorial_data(50),
            tutorial_priors(),
            initial,
            config.sampler_settings(),
            stop_when=_after(5),
        )


def _draws(num_chains: int, num_draws: int, seed: int = 0, k: int = 2, d: int = 2) -> dict:
    """Independent normal draws: bulk ESS about C * S, R-hat about 1."""
    rng = np.random.default_rng(seed)
    return {
        "weights": rng.dirichlet(np.full(k, 50.0), (num_chains, num_draws)),
        "means": rng.normal(size=(num_chains, num_draws, k, d)),
        "chol_precision": np.tril(rng.normal(size=(num_chains, num_draws, k, d, d))),
        "lp": rng.normal(size=(num_chains, num_draws)),
    }


def test_the_checks_start_late_and_grow_geometrically():
    seen = []

    def relabelled(draws):
        seen.append(draws["lp"].shape[1])
        return draws

    stop = TargetEss(10**9, relabelled, "full")
    for num_draws in range(10, 400, 10):
        assert not stop(_draws(4, num_draws))
    assert seen[0] == MIN_DRAWS
    assert all(b >= a * CHECK_GROWTH for a, b in itertools.pairwise(seen))
    assert stop.last.num_draws == seen[-1] and not stop.last.enough


def test_the_check_asks_every_quantity_for_the_target():
    draws = _draws(4, 200)
    check = TargetEss(400, dict, "full").check(draws)
    assert check.enough and check.ess_bulk_min > 400 and check.rhat_max < 1.01
    # One quantity short of the target is enough to go on: here the log density, each
    # value repeated 4 times (bulk ESS about 200), with R-hat left out of the check.
    repeated = dict(draws, lp=np.repeat(draws["lp"][:, :50], 4, axis=1))
    check = TargetEss(400, dict, "full", rhat_limit=np.inf).check(repeated)
    assert not check.enough and check.ess_bulk_min < 300
    # A chain off by 5 sds: R-hat well above 1.01, whatever the target ESS.
    shifted = dict(draws, means=draws["means"] + 5.0 * (np.arange(4) == 0)[:, None, None, None])
    check = TargetEss(1, dict, "full").check(shifted)
    assert not check.enough and check.rhat_max > 1.1


def test_config_and_layout_errors():
    for bad in (0, -1, 2.5, "400", True):
        with pytest.raises(UserError, match="target_ess"):
            RunConfig(target_ess=bad)
    assert RunConfig(target_ess=400).target_ess == 400


@pytest.fixture(scope="module")
def clusters(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "clusters.npy"
    rng = np.random.default_rng(0)
    np.save(path, np.concatenate([rng.normal(m, 1.0, (150, 2)) for m in (-4.0, 0.0, 4.0)]))
    return path


def test_cli_stops_at_the_target_and_reports_it(tmp_path, clusters):
    import json

    proc = run_cli(
        tmp_path,
        "fit",
        clusters,
        "--target-ess",
        "300",
        "--draws",
        "2000",
        "--warmup",
        "300",
        "--json",
        "--quiet",
        "--no-plots",
        "--out",
        "run",
    )
    assert_ok(proc)
    record = json.loads(proc.stdout)
    assert record["target_ess"] == 300 and record["converged"] is True
    # What the check required holds for the draws written: the same quantities' ESS and
    # R-hat (the results' parameters and more), so neither can be short.
    assert record["ess_bulk_min"] >= 300 and record["rhat_max"] <= 1.01
    assert MIN_DRAWS <= record["num_draws"] < 2000
    assert not record["warnings"]


def test_cli_warns_when_the_target_is_not_reached(tmp_path, clusters):
    import json

    args = ["--target-ess", "100000", "--draws", "120", "--warmup", "100", "--json", "--quiet"]
    proc = run_cli(tmp_path, "fit", clusters, *args, "--no-plots", "--out", "run")
    assert_ok(proc)
    record = json.loads(proc.stdout)
    assert record["converged"] is False and record["num_draws"] == 120
    assert any("target ESS (100000) was not reached" in w for w in record["warnings"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target-ess", "0"], "--target-ess: expected an integer from 1"),
        (["--target-ess", "many"], "--target-ess"),
        (["--target-ess", "400", "--chain-method", "sequential"], "in 4 turns"),
    ],
)
def test_cli_refuses_bad_targets(tmp_path, clusters, args, message):
    proc = run_cli(tmp_path, "fit", clusters, *args, "--no-plots", "--quiet", "--out", "run")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["demo", "fit", "resume", "summary", "select", "predict"])
def test_every_command_prints_its_help(tmp_path, command):
    proc = run_cli(tmp_path, command, "--help")
    assert_ok(proc)
    assert proc.stdout.startswith("usage: bgmm")


def test_a_killed_run_to_a_target_resumes_bit_identically(tmp_path):
    target = ["--target-ess", "100"]
    assert_ok(run_cli(tmp_path, "demo", *target, *RUN, "--out", "ref"))
    killed = stopped_run(tmp_path, "run", signal.SIGKILL, "demo", *target)
    assert killed.returncode == -signal.SIGKILL
    assert_ok(run_cli(tmp_path, "resume", "run", "--quiet"))
    assert_same_draws(tmp_path / "run" / "posterior.nc", tmp_path / "ref" / "posterior.nc")
    assert draws_of(tmp_path / "ref" / "posterior.nc")["posterior/weights"].shape[1] < 600
