"""The chain runner: chunking and chain layout must not change the draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bgmm.inference import (
    DeferredData,
    SamplerSettings,
    prepare_sampler_data,
    sample_posterior,
)
from bgmm.model import Params, tutorial_priors
from bgmm.samplers.runner import run_chains
from bgmm.tutorial import tutorial_data, tutorial_start


def _run(chain_method="sequential", max_chunks=20, num_chains=2, adaptation="window"):
    y = tutorial_data(200)
    initial = Params(*(np.repeat(a[None], num_chains, axis=0) for a in tutorial_start()))
    settings = SamplerSettings(
        num_warmup=60,
        num_draws=40,
        num_leapfrog_steps=4,
        adaptation=adaptation,
        chain_method=chain_method,
        # Batched GEMMs may sum in another order than single ones, and HMC amplifies any
        # rounding difference; the direct form rounds alike either way, so draws match.
        likelihood="direct",
    )
    return sample_posterior(
        jax.random.key(3), y, tutorial_priors(), initial, settings, max_chunks=max_chunks
    )


def test_draw_shapes_and_stats():
    run = _run()
    d = run.draws
    assert d["weights"].shape == (2, 40, 3)
    assert d["means"].shape == (2, 40, 3, 2)
    assert d["chol_precision"].shape == (2, 40, 3, 2, 2)
    for name in ("lp", "lp_target", "acceptance_rate", "diverging", "energy", "n_steps"):
        assert d[name].shape == (2, 40), name
    # Jittered path length: uniform on 1 .. 2 * 4 - 1 leapfrog steps.
    assert d["n_steps"].min() >= 1 and d["n_steps"].max() <= 7
    assert len(np.unique(d["n_steps"])) > 1
    np.testing.assert_allclose(d["weights"].sum(-1), 1.0, rtol=1e-12)
    assert np.all(np.triu(d["chol_precision"], 1) == 0)
    assert run.tuning.inverse_mass_matrix.shape == (2, 2 + 6 + 9)
    assert run.compile_seconds > 0 and run.sampling_seconds > 0


def test_tutorial_rule_keeps_a_fixed_path_length():
    assert np.all(_run(adaptation="tutorial", num_chains=1).draws["n_steps"] == 4)


@pytest.mark.parametrize("adaptation", ["window", "tutorial"])
def test_vectorized_and_sequential_chains_give_the_same_draws(adaptation):
    a = _run("sequential", adaptation=adaptation)
    b = _run("vectorized", adaptation=adaptation)
    for name in ("weights", "means", "chol_precision", "step_size"):
        np.testing.assert_allclose(a.draws[name], b.draws[name], rtol=1e-8, atol=1e-10)


def test_chains_spread_over_devices_give_the_same_draws():
    """Three chains on two devices: two rounds, the second padded with a dropped copy."""
    if jax.local_device_count() < 2:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=2 (bgmm sets it)")
    a = _run("sequential", num_chains=3)
    b = _run("parallel", num_chains=3)
    # The sharded program may round one operation differently, and 100 HMC steps grow that
    # (measured: up to 3e-5); a wrong key or a misplaced chain would differ by O(0.1).
    for name in ("weights", "means", "chol_precision", "step_size"):
        np.testing.assert_allclose(a.draws[name], b.draws[name], rtol=1e-3, atol=1e-4)


def test_parallel_chains_with_forced_host_devices(tmp_path):
    """The documented set-up for several CPU devices, in a fresh process."""
    import os
    import subprocess
    import sys

    script = (
        "import jax, numpy as np, bgmm\n"
        "assert jax.local_device_count() == 2, jax.devices()\n"
        "r = bgmm.demo(num_chains=2, num_warmup=30, num_draws=20, chain_method='parallel')\n"
        "assert r.settings['chain_method'] == 'parallel'\n"
        "assert r.idata.posterior['weights'].shape == (2, 20, 3)\n"
        "assert np.isfinite(r.idata.posterior['means'].values).all()\n"
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_chunk_size_does_not_change_the_draws():
    a = _run(max_chunks=1)
    b = _run(max_chunks=7)  # 100 steps in chunks of 15: the last chunk is padded
    for name in ("weights", "means", "chol_precision", "step_size"):
        np.testing.assert_allclose(a.draws[name], b.draws[name], rtol=1e-8, atol=1e-10)


def test_unknown_chain_method_is_refused():
    with pytest.raises(ValueError, match="chain_method"):
        run_chains(
            jax.random.key(0),
            None,
            None,
            {"x": np.zeros((1, 1))},
            num_warmup=1,
            num_draws=1,
            initial_tuning=None,
            chain_method="parallel-universe",
        )


def test_data_given_built_or_deferred_give_the_same_draws():
    """The data as an array, as DeferredData (built after compiling) or already prepared."""
    y = tutorial_data(200)
    initial = Params(*(np.repeat(a[None], 2, axis=0) for a in tutorial_start()))
    settings = SamplerSettings(num_warmup=30, num_draws=20, num_leapfrog_steps=4)

    def draws(data):
        run = sample_posterior(jax.random.key(5), data, tutorial_priors(), initial, settings)
        return run.draws["means"]

    loads = []
    deferred = DeferredData(y.shape, lambda: loads.append(1) or y)
    a = draws(y)
    b = draws(deferred)
    c = draws(prepare_sampler_data(y, jnp.float64, settings))
    assert loads == [1]
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(a, c, rtol=1e-12)
