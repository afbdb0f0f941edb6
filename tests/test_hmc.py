"""Our HMC trajectory (values only at the end point) against BlackJAX's velocity Verlet, and
the adapter through which bgmm reaches BlackJAX."""

import pathlib
import re

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from blackjax.mcmc import integrators, metrics

from bgmm.samplers import blackjax_adapter
from bgmm.samplers.hmc import Tuning, build_hmc_step, init_hmc, leapfrog_trajectory

# A correlated Gaussian on a pytree position (a vector and a matrix), like the mixture's.
_PRECISION = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])


def _logdensity(position):
    x = jnp.concatenate([position["a"], position["b"].ravel()])
    return -0.5 * x[:3] @ _PRECISION @ x[:3] - 0.25 * jnp.sum(x[3:] ** 4)


_START = {"a": jnp.array([0.3, -1.2]), "b": jnp.array([[0.5, 0.1], [-0.7, 1.1]])}
_INVERSE_MASS = jnp.array([1.0, 0.5, 2.0, 1.5, 0.8, 1.2])


@pytest.mark.parametrize("num_steps", [1, 2, 7])
def test_trajectory_equals_blackjax_velocity_verlet(num_steps):
    metric = metrics.default_metric(_INVERSE_MASS)
    momentum = metric.sample_momentum(jax.random.key(0), _START)
    value, grad = jax.value_and_grad(_logdensity)(_START)
    state = integrators.IntegratorState(_START, momentum, value, grad)
    expected = state
    one_step = integrators.velocity_verlet(_logdensity, metric.kinetic_energy)
    for _ in range(num_steps):
        expected = one_step(expected, 0.1)
    ours = jax.jit(lambda s, n: leapfrog_trajectory(_logdensity, metric.kinetic_energy, s, 0.1, n))(
        state, num_steps
    )
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", range(6))
def test_transition_equals_blackjax_hmc(seed):
    """Same key, same momentum and Metropolis draw: the same next state and info.

    At this step size seeds 0, 3 and 4 accept and 1, 2 and 5 reject.
    """
    tuning = Tuning(jnp.asarray(0.55), _INVERSE_MASS, jnp.int32(5))
    state = init_hmc(_START, _logdensity)
    key = jax.random.key(seed)
    ours, our_info = jax.jit(build_hmc_step(_logdensity))(key, state, tuning)
    theirs, their_info = jax.jit(
        lambda k, s: blackjax.hmc.build_kernel()(
            k, s, _logdensity, tuning.step_size, tuning.inverse_mass_matrix, 5
        )
    )(key, state)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert bool(our_info.is_accepted) == bool(their_info.is_accepted)
    np.testing.assert_allclose(our_info.acceptance_rate, their_info.acceptance_rate, rtol=1e-10)
    np.testing.assert_allclose(our_info.energy, their_info.energy, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# The BlackJAX adapter: an upgrade that moves or changes a name bgmm uses fails here.
# ---------------------------------------------------------------------------------------


def test_blackjax_internals_exist_with_the_fields_bgmm_uses():
    internals = blackjax_adapter.blackjax_internals()
    for name, fields in blackjax_adapter.BLACKJAX_FIELDS_READ.items():
        named_tuple = getattr(internals, name)
        assert set(fields) <= set(named_tuple._fields), (name, named_tuple._fields)
    # Built by keyword: every field without a default must be one the adapter gives.
    for name in ("HMCInfo", "IntegratorState"):
        named_tuple = getattr(internals, name)
        required = set(named_tuple._fields) - set(named_tuple._field_defaults)
        assert required <= set(blackjax_adapter.BLACKJAX_FIELDS_READ[name]), name
    for name, value in internals._asdict().items():
        assert callable(value), name


def test_blackjax_adapter_builds_blackjax_types():
    internals = blackjax_adapter.blackjax_internals()
    momentum = {"a": jnp.ones(2), "b": jnp.zeros((2, 2))}
    state = blackjax_adapter.integrator_state(
        position=_START, momentum=momentum, logdensity=jnp.zeros(()), logdensity_grad=_START
    )
    assert isinstance(state, internals.IntegratorState) and state.momentum is momentum
    info = blackjax_adapter.hmc_info(
        momentum=momentum,
        acceptance_rate=0.5,
        is_accepted=True,
        is_divergent=False,
        energy=1.0,
        proposal=state,
        num_integration_steps=3,
    )
    assert isinstance(info, internals.HMCInfo) and info.num_integration_steps == 3
    da_init, _, _ = blackjax_adapter.dual_averaging_adaptation(0.8)
    assert isinstance(da_init(jnp.asarray(0.1)), internals.DualAveragingAdaptationState)
    for dense, inverse_mass_matrix in ((False, jnp.ones(3)), (True, jnp.eye(3))):
        mm_init, _, _ = blackjax_adapter.mass_matrix_adaptation(dense)
        state = mm_init(3, inverse_mass_matrix)
        assert isinstance(state, internals.MassMatrixAdaptationState)
        assert state.inverse_mass_matrix.shape == inverse_mass_matrix.shape
    assert blackjax_adapter.window_schedule(100).shape == (100, 2)


def test_only_the_adapter_imports_blackjax():
    """The samplers reach BlackJAX through bgmm.samplers.blackjax_adapter alone."""
    samplers = pathlib.Path(blackjax_adapter.__file__).parent
    direct = re.compile(r"^\s*(import blackjax|from blackjax)|import_blackjax\(\)\.", re.M)
    offenders = [
        path.name
        for path in samplers.glob("*.py")
        if path.name != "blackjax_adapter.py" and direct.search(path.read_text())
    ]
    assert offenders == []


# The isotropic Gaussian of many dimensions: a trajectory from a typical point with a
# typical momentum is x0 cos t + p0 sin t, and the generalised U-turn criterion (the
# momenta's sum against the end momenta) first holds when sin t <= 0, at t = pi; the
# crossing moves by O(1 / sqrt(D)) around it.
_D_ISOTROPIC = 400


def _isotropic(position):
    return -0.5 * jnp.sum(position**2)


def test_uturn_time_of_an_isotropic_gaussian_is_pi():
    from bgmm.samplers.hmc import uturn_time

    tuning = Tuning(jnp.asarray(0.02), jnp.ones(_D_ISOTROPIC), jnp.int32(1))
    starts = jax.random.normal(jax.random.key(0), (20, _D_ISOTROPIC))

    def one(key, start):
        return uturn_time(key, init_hmc(start, _isotropic), _isotropic, tuning, 1024)

    times = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(1), 20), starts))
    # Not a z-test: a deterministic limit. Each time lies within a step or two and a few
    # 1 / sqrt(400) of pi (measured: 3.10 to 3.19); 0.2 is four times that spread.
    assert np.all(np.abs(times - np.pi) < 0.2), times
    # A probe that cannot turn within its limit stops there.
    capped = jax.jit(lambda k, s: uturn_time(k, init_hmc(s, _isotropic), _isotropic, tuning, 10))
    assert float(capped(jax.random.key(2), starts[0])) == pytest.approx(10 * 0.02)


def test_window_adaptation_fits_the_path_length_to_the_uturn_time():
    """HMC on the isotropic Gaussian with ``fit_path_length``: the kept draws' mean path is
    the last window's mean U-turn time (about pi) over the final step size; without it,
    the path stays the initial one."""
    from bgmm.samplers.adaptation import window_adaptation
    from bgmm.samplers.chain_programs import Kernel
    from bgmm.samplers.hmc import uturn_time
    from bgmm.samplers.runner import run_chains

    step = build_hmc_step(_isotropic, jitter_steps=True)

    def kernel(data) -> Kernel:
        del data
        return Kernel(
            init=lambda position: init_hmc(position, _isotropic),
            step=step,
            acceptance_rate=lambda info: info.acceptance_rate,
            position=lambda state: state.position,
            record=lambda state, info, tuning: {"n": info.num_integration_steps},
            probe=lambda key, state, tuning: uturn_time(key, state, _isotropic, tuning, 1024),
        )

    tunings = {}
    for fit in (True, False):
        run = run_chains(
            jax.random.key(3),
            kernel,
            window_adaptation(300, 0.65, fit_path_length=fit),
            np.zeros((2, _D_ISOTROPIC)),
            num_warmup=300,
            num_draws=50,
            initial_tuning=Tuning(np.asarray(0.1), np.ones(_D_ISOTROPIC), np.int32(16)),
            chain_method="vectorized",
        )
        tunings[fit] = run.tuning
    step_size = np.asarray(tunings[True].step_size)
    path_time = np.asarray(tunings[True].num_steps) * step_size
    # Not a z-test: the mean of 50 U-turn times, each within 0.2 of pi (above), after
    # the step that crosses it (up to one step late, at the window's step sizes), rounded
    # to a whole step of the final size (measured: 3.7 and 3.0 at steps of 0.42 and 0.43).
    assert np.all(path_time > np.pi - 0.2 - step_size), path_time
    assert np.all(path_time < np.pi + 0.2 + 2 * step_size), path_time
    np.testing.assert_array_equal(np.asarray(tunings[False].num_steps), [16, 16])


def test_a_fit_with_the_path_length_fitted(tmp_path):
    """``num_leapfrog_steps="auto"`` through the estimator: the kept draws' paths are the
    fitted length, jittered (1 to 2L - 1 steps, mean L); NUTS refuses it."""
    import bgmm
    from bgmm.config import RunConfig
    from bgmm.errors import UserError
    from bgmm.tutorial import tutorial_data

    model = bgmm.BayesianGMM(
        n_components=3, num_chains=1, num_warmup=150, num_draws=40, num_leapfrog_steps="auto"
    )
    result = model.fit(tutorial_data()[:300]).result_
    fitted = result.settings["path_length_steps"]
    steps = result.idata.sample_stats["n_steps"].values
    assert result.settings["num_leapfrog_steps"] == "auto"
    assert 1 <= steps.min() and steps.max() <= 2 * fitted - 1
    with pytest.raises(UserError, match="window adaptation"):
        RunConfig(sampler="nuts", num_leapfrog_steps="auto")
