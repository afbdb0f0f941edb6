"""Wiring: the parts a run is assembled from must be used, not only exist.

Each test here was written against a mutant that passed the other tests (docs/mutation.md):
the window adaptation's mass matrix never estimated (or its step size never adapted), and
Stephens relabelling doing nothing.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import bgmm
from bgmm.model import Params
from bgmm.relabel import undo_permutations
from bgmm.samplers.adaptation import window_adaptation
from bgmm.samplers.hmc import Tuning, import_blackjax
from bgmm.samplers.runner import Kernel, run_chains

# ---------------------------------------------------------------------------
# Window adaptation against Stan's formula
# ---------------------------------------------------------------------------

# A Gaussian target whose scales differ by a factor 100: an identity mass matrix (the
# initial one) or 1e-3 (Stan's regulariser alone, what an empty Welford window gives) is
# off by two orders of magnitude in at least one coordinate.
VARIANCES = np.array([0.01, 1.0, 100.0])
NUM_WARMUP = 300
# Stan's schedule for 300 warm-up steps (75-step initial buffer, 50-step terminal buffer,
# slow windows of 25, 50 and the rest): the mass matrix is that of the last slow window.
LAST_SLOW_WINDOW = slice(150, 250)
INITIAL_STEP_SIZE = 0.1


def _gaussian_logdensity(x):
    return -0.5 * jnp.sum(x**2 / jnp.asarray(VARIANCES))


def _stan_inverse_mass_matrix(window: np.ndarray) -> np.ndarray:
    """(n / (n + 5)) var + 1e-3 * 5 / (n + 5), var the unbiased sample variance of the
    window's positions (Stan's regularised diagonal metric), in float64 with NumPy."""
    n = len(window)
    return n / (n + 5) * np.var(window, axis=0, ddof=1) + 1e-3 * 5 / (n + 5)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _adapted_warm_up(
    rng_key, target_acceptance_rate=0.8, dense=False, logdensity=_gaussian_logdensity
):
    """bgmm's window adaptation driving BlackJAX's NUTS, as the runner drives it (tuning
    from ``current`` for every warm-up step, ``update`` with the new position and the
    acceptance rate); returns the positions and acceptance rates of every step and the
    final tuning."""
    nuts = import_blackjax().nuts
    kernel = nuts.build_kernel()
    rule = window_adaptation(NUM_WARMUP, target_acceptance_rate, dense=dense)

    def body(carry, index):
        state, adapt = carry
        tuning = rule.current(adapt)
        state, info = kernel(
            jax.random.fold_in(rng_key, index),
            state,
            logdensity,
            tuning.step_size,
            tuning.inverse_mass_matrix,
        )
        adapt = rule.update(adapt, index, state.position, info.acceptance_rate, 0.0)
        return (state, adapt), (state.position, info.acceptance_rate)

    start = (
        nuts.init(jnp.ones(3), logdensity),
        rule.init(Tuning(jnp.asarray(INITIAL_STEP_SIZE), jnp.ones(3), jnp.int32(16))),
    )
    (_, adapt), (positions, acceptance) = jax.lax.scan(body, start, jnp.arange(NUM_WARMUP))
    return positions, acceptance, rule.final(adapt)


# The adapted diagonal estimates the true variances from the last slow window's 100 draws.
# Test: z = log(diagonal / E[diagonal]) / (MCSE / mean) of the window's squared deviations
# (ArviZ's MCSE; by the delta method the relative MCSE is the sd on the log scale, where a
# variance estimate is nearly normal and its sd does not scale with the estimate, unlike
# the MCSE of the estimate itself, which would shrink with a low one). |z| < 5: the
# MCSEs come from 20-60 effective draws of one chain, uncertain by 20-30 %, and the log of a
# chi-square has a longer left tail, so P(false failure) about 1e-5 per coordinate (6e-7
# for exact normal tails), 1e-4 over the 9 coordinates of the two tests that use it.
VARIANCE_Z_LIMIT = 5.0
WINDOW_LENGTH = LAST_SLOW_WINDOW.stop - LAST_SLOW_WINDOW.start


def _relative_mcse_of_variance(draws: np.ndarray, mcse) -> np.ndarray:
    """ArviZ's MCSE of the mean squared deviation of one chain's ``draws`` (draw, dim),
    relative to that mean: the sd of log(variance estimate)."""
    squares = (draws - draws.mean(axis=0)) ** 2
    return mcse(squares[None]) / squares.mean(axis=0)


def _assert_near_the_true_variances(inverse_mass_matrix: np.ndarray, relative_mcse) -> None:
    """The diagonal is Stan's regularised estimate of the true variances (z-test above), and
    more than an order of magnitude from the initial 1 and from the 1e-3 of an empty window
    in every coordinate whose true variance is 100 times from them. The second is no z-test
    but a check against those two mutants (a stuck diagonal is 0 orders from its value); it
    adds no false failures, as the z-test implies it whenever the relative MCSE is below
    0.45 (measured: 0.14-0.33)."""
    n = WINDOW_LENGTH
    expected = n / (n + 5) * VARIANCES + 1e-3 * 5 / (n + 5)
    z = np.log(inverse_mass_matrix / expected) / relative_mcse
    assert np.all(np.abs(z) < VARIANCE_Z_LIMIT), (
        f"z = {np.round(z, 2)}, inverse mass matrix / truth = {inverse_mass_matrix / VARIANCES}"
    )
    for stuck in (1.0, 1e-3):
        far = np.abs(np.log10(VARIANCES / stuck)) >= 2  # (0.01, 100) and (1, 100) resp.
        assert np.all(np.abs(np.log10(inverse_mass_matrix[far] / stuck)) > 1.0), stuck


def test_window_adaptation_mass_matrix_is_stans_estimate_of_the_last_window(mcse):
    positions, acceptance, tuning = _adapted_warm_up(jax.random.key(0))
    positions = np.asarray(positions)
    imm = np.asarray(tuning.inverse_mass_matrix)
    assert imm.shape == (3,) and imm.dtype == np.float64
    # Exact: Welford in the adaptation, two-pass NumPy here; they differ by rounding only.
    expected = _stan_inverse_mass_matrix(positions[LAST_SLOW_WINDOW])
    np.testing.assert_allclose(imm, expected, rtol=1e-9)
    # Not an estimate from another window (a schedule off by one window would match here
    # only by chance: the windows' variances differ by more than this tolerance).
    for other in (slice(75, 100), slice(100, 150), slice(149, 249), slice(151, 251)):
        assert not np.allclose(imm, _stan_inverse_mass_matrix(positions[other]), rtol=1e-6)
    _assert_near_the_true_variances(
        imm, _relative_mcse_of_variance(positions[LAST_SLOW_WINDOW], mcse)
    )
    step = float(tuning.step_size)
    assert np.isfinite(step) and step > 0
    # Not a z-test (a tuning output, no truth): the step size moved (measured: 8x).
    assert abs(np.log(step / INITIAL_STEP_SIZE)) > np.log(2.0), step
    # The dual averaging aims at 0.8 in the terminal fast window (a step size left at 0.1
    # on the whitened target accepts nearly everything). Not a z-test: the controller, not
    # Monte Carlo noise, sets this mean; see test_window_adaptation_step_size_follows_the_target.
    late = float(np.mean(np.asarray(acceptance)[250:]))
    assert 0.6 < late < 0.95, late


def test_window_adaptation_step_size_follows_the_target():
    """On the whitened target a step size near 1 happens to accept about 80%: a step size
    that never adapts can pass the test above. Other targets must move it, and the
    acceptance of the terminal fast window must follow."""
    results = {target: _adapted_warm_up(jax.random.key(0), target) for target in (0.6, 0.95)}
    # Not a z-test: the dual averaging restarted at step 250 makes the window's mean of
    # (target - acceptance) exactly (t + t0) / t * gamma / sqrt(t) * (mu - log step) with
    # t = 50, t0 = 10, gamma = 0.05, mu = log(10 x restart step): 0.0085 per nat that the
    # step lies below mu (measured: 0.02). The bound 0.1 fails only if the step collapses
    # by e^9 or the acceptances never reach the controller; Monte Carlo noise does not enter.
    for target, (_, acceptance, _) in results.items():
        late = float(np.mean(np.asarray(acceptance)[250:]))
        assert abs(late - target) < 0.1, (target, late)
    # Not a z-test (tuning outputs, no truth): the ordering of the adapted step sizes, by a
    # margin (measured: low / high = 3.4).
    low, high = (float(results[t][2].step_size) for t in (0.6, 0.95))
    assert low > 1.5 * high, (low, high)


def _gaussian_kernel(data) -> Kernel:
    nuts = import_blackjax().nuts
    kernel = nuts.build_kernel()

    def step(rng_key, state, tuning: Tuning):
        return kernel(
            rng_key, state, _gaussian_logdensity, tuning.step_size, tuning.inverse_mass_matrix
        )

    return Kernel(
        init=lambda position: nuts.init(position, _gaussian_logdensity),
        step=step,
        acceptance_rate=lambda info: info.acceptance_rate,
        position=lambda state: state.position,
        record=lambda state, info, tuning: {"x": state.position},
    )


# A correlated Gaussian (correlation 0.95 between the first two coordinates, scales 100
# apart): a diagonal metric cannot express it, a dense one must.
CORRELATED = np.array([[1.0, 0.95 * 10.0, 0.0], [0.95 * 10.0, 100.0, 0.0], [0.0, 0.0, 0.01]])


def _correlated_logdensity(x):
    return -0.5 * x @ jnp.asarray(np.linalg.inv(CORRELATED)) @ x


def test_dense_window_adaptation_is_stans_estimate_of_the_last_window():
    """metric 'dense': the whole inverse mass matrix is Stan's regularised covariance of the
    last slow window's positions, n / (n + 5) Cov + 1e-3 * 5 / (n + 5) I, computed here with
    NumPy (an identity, no sampling error); and it has found the correlation."""
    positions, _, tuning = _adapted_warm_up(jax.random.key(2), 0.8, True, _correlated_logdensity)
    window = np.asarray(positions)[LAST_SLOW_WINDOW]
    n = len(window)
    expected = n / (n + 5) * np.cov(window, rowvar=False) + 1e-3 * 5 / (n + 5) * np.eye(3)
    imm = np.asarray(tuning.inverse_mass_matrix)
    assert imm.shape == (3, 3)
    np.testing.assert_allclose(imm, expected, rtol=1e-10, atol=1e-12)
    correlation = imm[0, 1] / np.sqrt(imm[0, 0] * imm[1, 1])
    assert correlation > 0.8, correlation


def test_runner_feeds_the_window_adaptation(mcse):
    """Through :func:`run_chains`: the runner hands the adaptation the chain's positions and
    returns the adapted tuning, per chain. The runner keeps no warm-up draws, so the MCSE of
    each chain's window variance is estimated from its 100 kept draws: the same kernel on
    the same target, with the tuning of the window that followed."""
    run = run_chains(
        jax.random.key(1),
        _gaussian_kernel,
        window_adaptation(NUM_WARMUP, 0.8),
        np.ones((2, 3)),
        num_warmup=NUM_WARMUP,
        num_draws=WINDOW_LENGTH,
        initial_tuning=Tuning(np.asarray(INITIAL_STEP_SIZE), np.ones(3), np.int32(16)),
        chain_method="vectorized",
    )
    imm = np.asarray(run.tuning.inverse_mass_matrix)
    assert imm.shape == (2, 3)
    for chain, draws in zip(imm, np.asarray(run.draws["x"]), strict=True):
        _assert_near_the_true_variances(chain, _relative_mcse_of_variance(draws, mcse))
    assert not np.array_equal(imm[0], imm[1])  # each chain its own estimate
    steps = np.asarray(run.tuning.step_size)
    assert np.all(np.isfinite(steps)) and np.all(
        np.abs(np.log(steps / INITIAL_STEP_SIZE)) > np.log(2.0)
    )


# ---------------------------------------------------------------------------
# Stephens relabelling through the public API
# ---------------------------------------------------------------------------

# Two far-apart clusters of unequal size (80 and 40 points, sd 0.5, centres 8 apart): in
# a short run no chain switches labels by itself, so the starts decide each chain's labels.
_CENTRES = np.array([[-4.0, -4.0], [4.0, 4.0]])


def _two_clusters() -> np.ndarray:
    rng = np.random.default_rng(21)
    return np.concatenate(
        [rng.normal(_CENTRES[0], 0.5, size=(80, 2)), rng.normal(_CENTRES[1], 0.5, size=(40, 2))]
    )


def _swapped_starts() -> Params:
    """Chain 0 has component 0 on the first cluster, chain 1 on the second (data units)."""
    weights = np.array([[2 / 3, 1 / 3], [1 / 3, 2 / 3]])
    means = np.stack([_CENTRES, _CENTRES[::-1]])
    chol = np.broadcast_to(2.0 * np.eye(2), (2, 2, 2, 2)).copy()  # precision 4: sd 0.5
    return Params(weights, means, chol)


# The relabelled chains are two independent runs on one posterior: chain 0's and chain 1's
# means of every scalar agree, |m_0 - m_1| / sqrt(MCSE_0^2 + MCSE_1^2) < 5 (ArviZ's MCSE of
# each chain's 50 draws). Each chain sits in the labelling it started in: its raw means are
# the exact posterior means of the locations in that labelling (conftest.
# separated_cluster_posterior), |mean - truth| / MCSE < 5. 20 comparisons; the MCSEs come
# from 50 draws, so z is about a t with 50 degrees of freedom: P(|t| > 5) = 7e-6 each,
# P(false failure) < 2e-4.
RELABEL_Z_LIMIT = 5.0


def _chain_z(draws: np.ndarray, two_run_z) -> np.ndarray:
    """Chain 0 against chain 1 (two_run_z) for every scalar of (2, S, ...) draws."""
    return two_run_z(draws[:1], draws[1:])


def test_stephens_relabelling_through_the_api(z_scores, two_run_z, separated_cluster_posterior):
    model = bgmm.BayesianGMM(
        2,
        relabel="stephens",
        sampler="gibbs",
        num_chains=2,
        num_warmup=20,
        num_draws=50,
        random_state=3,
        chain_method="sequential",
    )
    result = model.fit(_two_clusters(), initial=_swapped_starts()).result_
    idata = result.idata
    assert result.settings["relabel"] == "stephens"
    assert idata.posterior.attrs["relabel"] == "stephens"

    perms = np.asarray(idata.sample_stats["label_permutation"].values)
    assert perms.shape == (2, 50, 2)
    assert np.issubdtype(perms.dtype, np.integer)
    np.testing.assert_array_equal(
        np.sort(perms, axis=-1), np.broadcast_to(np.arange(2), perms.shape)
    )

    means = np.asarray(idata.posterior["means"].values)  # (chain, draw, K, D), relabelled
    weights = np.asarray(idata.posterior["weights"].values)
    raw_means = undo_permutations(means, perms)
    raw_weights = undo_permutations(weights, perms)
    # The raw draws disagree: the chains started (and stayed) with swapped labels...
    truth, _ = separated_cluster_posterior(_two_clusters(), _CENTRES)
    for chain, labelled in ((0, truth), (1, truth[::-1])):
        z = z_scores(raw_means[chain : chain + 1], labelled)
        assert np.all(np.abs(z) < RELABEL_Z_LIMIT), f"chain {chain}: z = {np.round(z, 2)}"
    # (not a z-test: the swap must show, far beyond the limit; measured |z| 200-450, 41)
    assert np.max(np.abs(_chain_z(raw_means, two_run_z))) > 4 * RELABEL_Z_LIMIT
    assert np.max(np.abs(_chain_z(raw_weights, two_run_z))) > 4 * RELABEL_Z_LIMIT
    # ... so the permutations differ between the chains ...
    assert np.all(perms[0] != perms[1])
    # ... and the relabelled draws agree, component by component.
    chol = np.asarray(idata.posterior["chol_precision"].values)
    assert chol.shape == (2, 50, 2, 2, 2)
    for name, draws in (
        ("means", means),
        ("weights", weights),
        ("chol_precision", chol[..., [0, 1, 1], [0, 0, 1]]),
    ):
        z = _chain_z(draws, two_run_z)
        assert np.all(np.abs(z) < RELABEL_Z_LIMIT), f"{name}: z = {np.round(z, 2)}"
