"""Where the model meets the samplers: build the target, the kernel and run the chains.

jax and numpy only; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bgmm.model.density import Target, log_prior, make_logdensity
from bgmm.model.gemm_likelihood import Features, make_features, num_features_of
from bgmm.model.priors import Priors
from bgmm.model.transforms import (
    Params,
    to_constrained,
    to_unconstrained,
    unconstrained_log_det_jacobian,
)
from bgmm.samplers.adaptation import tutorial_step_size_rule, window_adaptation
from bgmm.samplers.gibbs import build_gibbs_kernel
from bgmm.samplers.hmc import Tuning, build_hmc_step, init_hmc
from bgmm.samplers.nuts import build_nuts_step
from bgmm.samplers.runner import (
    ChainMethod,
    Kernel,
    LazyData,
    RunnerState,
    RunOutput,
    run_chains,
)

__all__ = [
    "ADAPTATIONS",
    "DEFAULT_TARGET_ACCEPT",
    "LIKELIHOOD_FORMS",
    "SAMPLERS",
    "DeferredData",
    "SamplerSettings",
    "likelihood_data_bytes",
    "prepare_data",
    "prepare_sampler_data",
    "sample_posterior",
]

Adaptation = Literal["window", "tutorial"]
ADAPTATIONS: tuple[str, ...] = ("window", "tutorial")
LikelihoodForm = Literal["auto", "gemm", "direct"]
LIKELIHOOD_FORMS: tuple[str, ...] = ("auto", "gemm", "direct")
# Above this size the GEMM form's feature matrix is not worth its memory (see prepare_data).
FEATURE_MEMORY_BUDGET_BYTES = 2 * 1024**3
Sampler = Literal["hmc", "nuts", "gibbs"]
SAMPLERS: tuple[str, ...] = ("hmc", "nuts", "gibbs")
# HMC with a fixed path length mixes best per gradient near 0.65 (Beskos et al. 2013); on
# the tutorial's posterior 16 steps at 0.65 gave 1.5x the ESS per gradient of 32 steps at
# 0.8 (docs/benchmarks.md). NUTS keeps Stan's 0.8.
DEFAULT_TARGET_ACCEPT = {"hmc": 0.65, "nuts": 0.8}


class SamplerSettings(NamedTuple):
    """How to run the sampler.

    Attributes
    ----------
    sampler : "hmc", "nuts" or "gibbs"
    num_warmup, num_draws : int
    num_leapfrog_steps : int
        HMC: mean leapfrog steps per transition (exact with the tutorial's rule).
    max_tree_depth : int
        NUTS: at most 2**max_tree_depth leapfrog steps per transition.
    step_size : float
        Initial step size (the tutorial's rule keeps adapting it from here).
    adaptation : "window" (dual averaging + diagonal mass matrix) or "tutorial"
    num_adaptation_steps : int
        Steps the tutorial rule adapts for; ignored by "window" (which adapts all warm-up).
    target_accept : float or None
        Acceptance probability the adaptation aims at; None: DEFAULT_TARGET_ACCEPT of the
        sampler.
    chain_method : "sequential" or "vectorized"
    likelihood : "auto", "gemm" or "direct"
        How the log-likelihood is computed (:func:`prepare_data`).
    """

    sampler: Sampler = "hmc"
    num_warmup: int = 1000
    num_draws: int = 1000
    num_leapfrog_steps: int = 16
    max_tree_depth: int = 10
    step_size: float = 0.1
    adaptation: Adaptation = "window"
    num_adaptation_steps: int = 400
    target_accept: float | None = None
    chain_method: ChainMethod = "sequential"
    likelihood: LikelihoodForm = "auto"


def prepare_data(data: np.ndarray, dtype, likelihood: LikelihoodForm = "auto"):
    """The data in the form the likelihood reads, built once per run.

    "gemm": the features of :mod:`bgmm.model.gemm_likelihood` (N x F, F = 1 + D + D(D+1)/2);
    measured on a 2-core CPU at N = 10^5 it is 3x (D = 2, K = 3) to 14x (D = 8, K = 16)
    faster than "direct" for every D up to 32 (docs/benchmarks.md). "direct": the (N, D)
    array itself, batched products with each L_k; no feature matrix. "auto": "gemm" unless
    the feature matrix would exceed FEATURE_MEMORY_BUDGET_BYTES, then "direct".
    """
    if likelihood not in LIKELIHOOD_FORMS:
        raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOOD_FORMS}")
    data = np.asarray(data)
    likelihood = _resolve_likelihood(data.shape, dtype, likelihood)
    if likelihood == "gemm":
        return make_features(data, dtype)
    return jnp.asarray(data, dtype)


def _resolve_likelihood(shape: tuple[int, int], dtype, likelihood: LikelihoodForm) -> str:
    if likelihood != "auto":
        return likelihood
    n, d = shape
    size = n * num_features_of(d) * jnp.dtype(dtype).itemsize
    return "gemm" if size <= FEATURE_MEMORY_BUDGET_BYTES else "direct"


class DeferredData(NamedTuple):
    """(N, D) data made only when the sampler needs them.

    :func:`sample_posterior` calls ``load`` once its programs are compiled, builds what the
    sampler reads (the features) and drops the array: a standardised copy made this way is
    never in memory while the compiler or the sampler works.

    Attributes
    ----------
    shape : (N, D)
    load : () -> numpy array of that shape
    """

    shape: tuple[int, int]
    load: Callable[[], np.ndarray]


def prepare_sampler_data(data: np.ndarray, dtype, settings: SamplerSettings):
    """What the sampler reads of ``data`` (N, D): Gibbs the data on the device, HMC and NUTS
    the likelihood's form of them (:func:`prepare_data`)."""
    if settings.sampler == "gibbs":
        return jnp.asarray(data, dtype)
    return prepare_data(data, dtype, settings.likelihood)


def _sampler_data_shapes(shape: tuple[int, int], dtype, settings: SamplerSettings):
    """Shapes and dtypes of :func:`prepare_sampler_data`'s result, without building it."""
    n, d = shape
    if settings.sampler != "gibbs" and _resolve_likelihood(shape, dtype, settings.likelihood) == (
        "gemm"
    ):
        return Features(
            jax.ShapeDtypeStruct((n, num_features_of(d)), dtype), jax.ShapeDtypeStruct((d,), dtype)
        )
    return jax.ShapeDtypeStruct((n, d), dtype)


def _lazy_sampler_data(data: np.ndarray | DeferredData, dtype, settings) -> LazyData:
    if isinstance(data, DeferredData):
        shape, load = data.shape, data.load
    else:
        data = np.asarray(data)
        shape, load = data.shape, lambda: data
    return LazyData(
        _sampler_data_shapes(shape, dtype, settings),
        lambda: prepare_sampler_data(load(), dtype, settings),
    )


def likelihood_data_bytes(shape: tuple[int, int], dtype, settings: SamplerSettings) -> int:
    """Bytes of what the likelihood reads: the features, or the data themselves."""
    n, d = shape
    itemsize = jnp.dtype(dtype).itemsize
    if (
        settings.sampler != "gibbs"
        and _resolve_likelihood(shape, dtype, settings.likelihood) == "gemm"
    ):
        return n * num_features_of(d) * itemsize
    return n * d * itemsize


def sample_posterior(
    rng_key: jax.Array,
    data: np.ndarray,
    priors: Priors,
    initial_params: Params,
    settings: SamplerSettings,
    target: Target = "correct",
    dtype=jnp.float64,
    progress: bool = False,
    max_chunks: int = 20,
    resume_from: RunnerState | None = None,
    on_chunk: Callable[[RunnerState], bool] | None = None,
) -> RunOutput:
    """Run HMC, NUTS or Gibbs chains on the posterior of the mixture.

    Parameters
    ----------
    rng_key : PRNG key
    data : numpy array, shape (N, D), in the units the priors are written in, or
        DeferredData; either is turned into what the sampler reads (the features) only
        after the sampler's programs are compiled. What :func:`prepare_sampler_data` made
        of such data (a jax array or Features) is used as is.
    priors : Priors
    initial_params : Params with leading chain axis: (C, K), (C, K, D), (C, K, D, D)
    settings : SamplerSettings
    target : "correct" or "tutorial"
    dtype : jnp.float64 or jnp.float32
    progress : bool
    max_chunks : int
        Compiled calls per chain (more: a smoother progress bar, slightly more overhead).
    resume_from : RunnerState, optional
        Carry on from a state that ``on_chunk`` was given by a run with the same arguments
        (:func:`bgmm.samplers.runner.run_chains`); the draws are bit-identical.
    on_chunk : RunnerState -> bool, optional
        Called after every compiled call; True stops the run
        (:class:`bgmm.samplers.runner.StopRequested`).

    Returns
    -------
    RunOutput
        draws: ``weights`` (C, S, K), ``means`` (C, S, K, D), ``chol_precision``
        (C, S, K, D, D), ``lp`` (log joint), ``data_log_likelihood`` (its data term),
        ``lp_target`` (the sampler's unconstrained log density), ``acceptance_rate``,
        ``diverging``, ``energy``, ``n_steps``, ``step_size`` and for NUTS ``tree_depth``,
        all (C, S, ...).
    """
    if settings.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {settings.sampler!r}; expected one of {SAMPLERS}")
    if not isinstance(data, jax.Array | Features):
        data = _lazy_sampler_data(data, dtype, settings)
    if settings.sampler == "gibbs":
        return _sample_gibbs(
            rng_key,
            data,
            priors,
            initial_params,
            settings,
            target,
            dtype,
            progress,
            max_chunks,
            resume_from,
            on_chunk,
        )
    num_features = priors.num_features
    priors = priors.astype(dtype)

    def make_kernel(model_data) -> Kernel:
        logdensity = make_logdensity(model_data, priors, target)
        if settings.sampler == "nuts":
            step = build_nuts_step(logdensity, settings.max_tree_depth)
        else:
            # The tutorial's rule reproduces the tutorial: fixed path length. Else jitter it.
            step = build_hmc_step(
                logdensity,
                settings.num_leapfrog_steps,
                jitter_steps=settings.adaptation != "tutorial",
            )

        def record(state, info, tuning):
            params = to_constrained(state.position, num_features)
            log_joint = state.logdensity - unconstrained_log_det_jacobian(
                state.position, num_features
            )
            extra = {}
            if settings.sampler == "nuts":
                extra["tree_depth"] = info.num_trajectory_expansions
            return extra | {
                "weights": params.weights,
                "means": params.means,
                "chol_precision": params.chol_precision,
                "lp": log_joint,
                "data_log_likelihood": log_joint - log_prior(params, priors, target),
                "lp_target": state.logdensity,
                "acceptance_rate": info.acceptance_rate,
                "diverging": info.is_divergent,
                "energy": info.energy,
                "n_steps": info.num_integration_steps,
                "step_size": tuning.step_size,
            }

        return Kernel(
            init=lambda position: init_hmc(position, logdensity),
            step=step,
            acceptance_rate=lambda info: info.acceptance_rate,
            position=lambda state: state.position,
            record=record,
        )

    if settings.adaptation == "tutorial":
        adaptation = tutorial_step_size_rule(settings.num_adaptation_steps)
    elif settings.adaptation == "window":
        # Resolved into the settings, which name the programs for the store: a default
        # changed between runs must not find the program built with the old one.
        settings = settings._replace(
            target_accept=settings.target_accept or DEFAULT_TARGET_ACCEPT[settings.sampler]
        )
        adaptation = window_adaptation(settings.num_warmup, settings.target_accept)
    else:
        raise ValueError(
            f"unknown adaptation {settings.adaptation!r}; expected one of {ADAPTATIONS}"
        )

    # One compiled call, not one small program per operation (each costs a cache lookup).
    positions = jax.jit(to_unconstrained)(Params(*(jnp.asarray(p, dtype) for p in initial_params)))
    num_dimensions = sum(math.prod(a.shape[1:]) for a in jax.tree.leaves(positions))
    initial_tuning = Tuning(np.asarray(settings.step_size, dtype), np.ones(num_dimensions, dtype))
    return run_chains(
        rng_key,
        make_kernel,
        adaptation,
        positions,
        data=data,
        num_warmup=settings.num_warmup,
        num_draws=settings.num_draws,
        initial_tuning=initial_tuning,
        chain_method=settings.chain_method,
        progress=progress,
        max_chunks=max_chunks,
        resume_from=resume_from,
        on_chunk=on_chunk,
        # What make_kernel and the adaptation close over.
        program_identity=("hmc", settings, target, np.dtype(dtype).name, priors),
    )


def _sample_gibbs(
    rng_key,
    data,
    priors,
    initial_params,
    settings,
    target,
    dtype,
    progress,
    max_chunks,
    resume_from,
    on_chunk,
) -> RunOutput:
    """Gibbs chains: nothing to adapt; warm-up sweeps are plain burn-in."""
    if target != "correct":
        raise ValueError(
            "Gibbs samples the model as written; there is no Gibbs form for target='tutorial'"
        )

    def make_kernel(model_data) -> Kernel:
        init, step = build_gibbs_kernel(model_data, priors)

        def record(state, info, tuning):
            del tuning
            return {
                "weights": state.params.weights,
                "means": state.params.means,
                "chol_precision": state.params.chol_precision,
                "lp": state.log_joint,
                "data_log_likelihood": state.log_likelihood,
                "lp_target": state.log_joint,
                "acceptance_rate": jnp.ones((), dtype),
                "num_occupied": info.num_occupied,
            }

        return Kernel(
            init=init,
            step=lambda key, state, tuning: step(key, state),
            acceptance_rate=lambda info: jnp.ones((), dtype),
            position=lambda state: state.params,
            record=record,
        )

    positions = Params(*(jnp.asarray(p, dtype) for p in initial_params))
    unused_tuning = Tuning(np.zeros((), dtype), np.ones(1, dtype))
    return run_chains(
        rng_key,
        make_kernel,
        None,
        positions,
        data=data,
        num_warmup=settings.num_warmup,
        num_draws=settings.num_draws,
        initial_tuning=unused_tuning,
        chain_method=settings.chain_method,
        progress=progress,
        max_chunks=max_chunks,
        resume_from=resume_from,
        on_chunk=on_chunk,
        program_identity=("gibbs", settings, target, np.dtype(dtype).name, priors),
    )
