"""The chain runner: chunking and chain layout must not change the draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bgmm.config import RunConfig
from bgmm.inference import prepare_sampler_data, sample_posterior
from bgmm.model import Params, tutorial_priors
from bgmm.plumbing.batches import padded_rows
from bgmm.samplers.chain_layout import ChainLayout
from bgmm.samplers.hmc import Tuning
from bgmm.samplers.runner import Kernel, LazyData, RunnerState, StopRequested, run_chains
from bgmm.tutorial import tutorial_data, tutorial_start


def _run(
    chain_method="sequential",
    max_chunks=20,
    num_chains=2,
    adaptation="window",
    sampler="hmc",
    **resume,
):
    y = tutorial_data(200)
    initial = Params(*(np.repeat(a[None], num_chains, axis=0) for a in tutorial_start()))
    settings = RunConfig(
        num_warmup=60,
        num_draws=40,
        num_leapfrog_steps=4,
        adaptation=adaptation,
        chain_method=chain_method,
        sampler=sampler,
        # Batched GEMMs may sum in another order than single ones, and HMC amplifies any
        # rounding difference; the direct form rounds alike either way, so draws match.
        likelihood="direct",
    ).sampler_settings()
    return sample_posterior(
        jax.random.key(3),
        y,
        tutorial_priors(),
        initial,
        settings,
        max_chunks=max_chunks,
        **resume,
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
    """The data as an array, as LazyData (built after compiling) or already prepared, padded."""
    y = tutorial_data(200)
    initial = Params(*(np.repeat(a[None], 2, axis=0) for a in tutorial_start()))
    settings = RunConfig(num_warmup=30, num_draws=20, num_leapfrog_steps=4).sampler_settings(
        "sequential"
    )

    def draws(data):
        run = sample_posterior(jax.random.key(5), data, tutorial_priors(), initial, settings)
        return run.draws["means"]

    loads = []
    deferred = LazyData(jax.ShapeDtypeStruct(y.shape, y.dtype), lambda: loads.append(1) or y)
    a = draws(y)
    b = draws(deferred)
    # As the runner prepares them: padded to the size its programs serve.
    c = draws(prepare_sampler_data(y, settings, padded_rows(len(y))))
    assert loads == [1]
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(a, c, rtol=1e-12)


def _assert_same_run(a, b):
    """Bit for bit: resuming calls the same programs on the same arrays."""
    assert a.draws.keys() == b.draws.keys()
    for name in a.draws:
        np.testing.assert_array_equal(a.draws[name], b.draws[name], err_msg=name)
    for x, y in zip(a.tuning, b.tuning, strict=True):
        np.testing.assert_array_equal(x, y)


def _toy_kernel(scale):
    """A random walk whose state holds a PRNG key of its own, to test keys in the carry."""

    def step(key, state, tuning):
        x, own_key = state
        own_key, sub = jax.random.split(own_key)
        noise = jax.random.normal(key, x.shape) + jax.random.normal(sub, x.shape)
        return (x + tuning.step_size * noise - scale * x, own_key), jnp.ones(())

    return Kernel(
        init=lambda x: (x, jax.random.key(7)),
        step=step,
        acceptance_rate=lambda info: info,
        position=lambda state: state[0],
        record=lambda state, info, tuning: {"x": state[0], "k": jax.random.key_data(state[1])},
    )


def _toy_run(chain_method, **resume):
    return run_chains(
        jax.random.key(11),
        _toy_kernel,
        None,
        np.arange(6.0).reshape(3, 2),  # 3 chains: two rounds on two devices, one padded
        data=jnp.asarray(0.1),
        num_warmup=7,
        num_draws=8,
        initial_tuning=Tuning(np.asarray(0.5), np.ones(2), np.int32(4)),
        chain_method=chain_method,
        max_chunks=3,  # 15 steps in chunks of 5
        **resume,
    )


@pytest.mark.parametrize("chain_method", ["sequential", "vectorized", "parallel"])
def test_resuming_from_any_chunk_gives_the_same_draws(chain_method):
    if chain_method == "parallel" and jax.local_device_count() < 2:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=2 (bgmm sets it)")
    states = []
    full = _toy_run(chain_method, on_chunk=lambda state: states.append(state) or False)
    groups = {"sequential": 3, "vectorized": 1, "parallel": 2}[chain_method]
    assert len(states) == 3 * groups
    assert states[-1].finished and not any(s.finished for s in states[:-1])
    assert states[-1].steps_done == 3 * 15
    assert states[0].carry_key_impls == ("", "threefry2x32", "", "", "")  # x, key, tuning
    assert all(isinstance(a, np.ndarray) for s in states for a in s.carry)
    # The end of the first group (its final tuning still to read) and mid-way through the
    # last group; each resume compiles its programs again, so not every state.
    for state in (states[2], states[-2]):
        _assert_same_run(full, _toy_run(chain_method, resume_from=state))


def test_on_chunk_stops_the_run_and_its_state_resumes_it():
    seen = []
    with pytest.raises(StopRequested) as stopped:
        _toy_run("sequential", on_chunk=lambda state: seen.append(state) or len(seen) == 4)
    state = stopped.value.state
    assert isinstance(state, RunnerState) and state is seen[-1]
    assert (state.group, state.next_step) == (1, 5)  # the second chain's first chunk
    assert state.draws["x"].shape == (1, 8, 2) and state.group_draws["x"].shape == (1, 0, 2)
    _assert_same_run(_toy_run("sequential"), _toy_run("sequential", resume_from=state))


def test_a_state_of_another_run_is_refused():
    states = []
    _toy_run("sequential", on_chunk=lambda state: states.append(state) or False)
    with pytest.raises(ValueError, match="another run"):
        _toy_run("vectorized", resume_from=states[0])
    with pytest.raises(ValueError, match="another max_chunks"):
        _toy_run("sequential", resume_from=states[0]._replace(chunk_size=4))
    with pytest.raises(ValueError, match="group_draws have shapes"):
        _toy_run("sequential", resume_from=states[2]._replace(next_step=10))


def test_hmc_resumes_mid_warm_up_bit_for_bit():
    """The window adaptation's state travels in the carry (the samplers in a real run and
    across processes: tests/test_checkpoint.py)."""
    states = []
    full = _run(on_chunk=lambda state: states.append(state) or False)
    # The second chain (group 1), 40 of 60 warm-up steps done, in chunks of 5.
    (state,) = [s for s in states if (s.group, s.next_step) == (1, 40)]
    _assert_same_run(full, _run(resume_from=state))


def test_layouts_group_the_chains_and_pad_the_last_round():
    assert [list(g) for g in ChainLayout("sequential", 3).groups] == [[0], [1], [2]]
    assert [list(g) for g in ChainLayout("vectorized", 3).groups] == [[0, 1, 2]]
    if jax.local_device_count() == 2:
        groups = ChainLayout("parallel", 3).groups
        assert [list(g) for g in groups] == [[0, 1], [2, 2]]  # a copy of chain 2 pads
    groups = ChainLayout("parallel", 3).groups  # any device count: equal rounds, all chains
    assert sum(len(g) for g in groups) >= 3 and len({len(g) for g in groups}) == 1
