"""Where the model meets the samplers: build the target, the kernel and run the chains.

jax and numpy only; no I/O.
"""

from __future__ import annotations

import math
import time
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
from bgmm.plumbing.batches import padded_rows
from bgmm.samplers.adaptation import (
    MAX_FITTED_STEPS,
    step_size_adaptation,
    tutorial_step_size_rule,
    window_adaptation,
)
from bgmm.samplers.gibbs import build_gibbs_kernel
from bgmm.samplers.hmc import Tuning, build_hmc_step, init_hmc, uturn_time
from bgmm.samplers.nuts import build_nuts_step
from bgmm.samplers.runner import (
    ChainMethod,
    Kernel,
    LazyData,
    RunnerState,
    RunOutput,
    run_chains,
)
from bgmm.tutorial import TUTORIAL_SAMPLER
from bgmm.warmup_rows import (
    SUBSAMPLE_KEY,
    Subsample,
    full_warmup_steps,
    num_rows_of,
    warmup_subsample_rows,
)

__all__ = [
    "ADAPTATIONS",
    "AUTO_PATH_LENGTH",
    "LIKELIHOOD_FORMS",
    "METRICS",
    "SAMPLERS",
    "SamplerSettings",
    "likelihood_data_bytes",
    "prepare_data",
    "prepare_sampler_data",
    "resolve_path_length",
    "sample_posterior",
]

Adaptation = Literal["window", "tutorial"]
ADAPTATIONS: tuple[str, ...] = ("window", "tutorial")
Metric = Literal["diag", "dense"]
METRICS: tuple[str, ...] = ("diag", "dense")
LikelihoodForm = Literal["auto", "gemm", "direct"]
LIKELIHOOD_FORMS: tuple[str, ...] = ("auto", "gemm", "direct")
# Above this size the GEMM form's feature matrix is not worth its memory (see prepare_data).
FEATURE_MEMORY_BUDGET_BYTES = 2 * 1024**3
# num_leapfrog_steps that asks for the path length fitted in warm-up (docs/design.md 17),
# and the mean path length of the warm-up until then, also HMC's default where the
# warm-up runs on all rows (resolve_path_length).
AUTO_PATH_LENGTH = "auto"
WARMUP_LEAPFROG_STEPS = 16
Sampler = Literal["hmc", "nuts", "gibbs"]
SAMPLERS: tuple[str, ...] = ("hmc", "nuts", "gibbs")


class SamplerSettings(NamedTuple):
    """Everything the compiled programs of a run depend on, resolved.

    Made by :meth:`bgmm.config.RunConfig.sampler_settings`, the one home of the defaults;
    it has none of its own. It is the whole configuration that :func:`sample_posterior`
    reads, and so, with the priors, the key of the run's programs in the store: no setting
    can change a program without changing its key. Fields a sampler does not read are None.

    Attributes
    ----------
    sampler : "hmc", "nuts" or "gibbs"
    target : "correct" or "tutorial"
    covariance_type : "full", "diag", "tied" or "spherical"
        The structure of the precisions (docs/design.md 1.6): the position, prior and
        Gibbs conditionals differ, so no two structures share a program.
    dtype : "float64" or "float32"
    num_warmup, num_draws : int
    num_leapfrog_steps : int, "auto" or None
        HMC: mean leapfrog steps per transition (exact with the tutorial's rule); "auto":
        fitted to the posterior in warm-up (WARMUP_LEAPFROG_STEPS until then); None: by
        the data's size (:func:`resolve_path_length`). None for NUTS and Gibbs.
    max_tree_depth : int or None
        NUTS: at most 2**max_tree_depth leapfrog steps per transition.
    step_size : float or None
        Initial step size (the tutorial's rule keeps adapting it from here).
    adaptation : "window" (dual averaging + mass matrix), "tutorial" or None
    metric : "diag", "dense" or None
        The window adaptation's mass matrix: its diagonal or all of it.
    num_adaptation_steps : int or None
        Steps the tutorial rule adapts for.
    target_accept : float or None
        Acceptance probability the window adaptation aims at.
    chain_method : "sequential", "vectorized" or "parallel"
    likelihood : "auto", "gemm", "direct" or None
        How the log-likelihood is computed (:func:`prepare_data`).
    warmup_rows : int, "auto", "all" or None
        HMC and NUTS with the window adaptation: the rows of the random subsample that most
        of the warm-up runs on (:func:`bgmm.warmup_rows.warmup_subsample_rows`); "all" or
        None: every row.
    """

    sampler: Sampler
    target: Target
    covariance_type: str
    dtype: str
    num_warmup: int
    num_draws: int
    num_leapfrog_steps: int | str | None
    max_tree_depth: int | None
    step_size: float | None
    adaptation: Adaptation | None
    metric: Metric | None
    num_adaptation_steps: int | None
    target_accept: float | None
    chain_method: ChainMethod
    likelihood: LikelihoodForm | None
    warmup_rows: int | str | None = None


def resolve_path_length(settings: SamplerSettings, num_rows: int) -> SamplerSettings:
    """``settings`` with HMC's default path length made concrete for data of ``num_rows``.

    Where the warm-up runs on a subsample (:func:`warmup_subsample_rows`, 40,000 rows or
    more by default) the posterior is nearly Gaussian and the path fitted to its U-turns
    gives 2.6 times the ESS per gradient of 16 steps; on the tutorial's 1,000 rows it gives
    0.57 times (docs/benchmarks.md parts 8 and 10). So the default is "auto" there, else
    WARMUP_LEAPFROG_STEPS.
    """
    if settings.sampler != "hmc" or settings.num_leapfrog_steps is not None:
        return settings
    subsampled = warmup_subsample_rows(settings, num_rows) is not None
    steps = AUTO_PATH_LENGTH if subsampled else WARMUP_LEAPFROG_STEPS
    return settings._replace(num_leapfrog_steps=steps)


def prepare_data(
    data: np.ndarray,
    dtype,
    likelihood: LikelihoodForm = "auto",
    covariance_type: str = "full",
    num_rows: int | None = None,
):
    """The data in the form the likelihood reads, built once per run.

    "gemm": the features of :mod:`bgmm.model.gemm_likelihood` (N x F, F = 1 + D + D(D+1)/2
    for 'full', fewer for the other covariance structures: docs/design.md 1.6), faster than
    "direct" from N = 10^5 on (docs/design.md section 12), padded with zero rows to
    ``num_rows`` when given. "direct": the (N, D) array itself, batched products with each
    L_k; no feature matrix, no padding. "auto": "gemm" unless the feature matrix would
    exceed FEATURE_MEMORY_BUDGET_BYTES, then "direct".
    """
    if likelihood not in LIKELIHOOD_FORMS:
        raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOOD_FORMS}")
    data = np.asarray(data)
    likelihood = _resolve_likelihood(data.shape, dtype, likelihood, covariance_type)
    if likelihood == "gemm":
        return make_features(data, dtype, covariance_type, num_rows)
    return jnp.asarray(data, dtype)


def _resolve_likelihood(
    shape: tuple[int, int], dtype, likelihood: LikelihoodForm, covariance_type: str = "full"
) -> str:
    if likelihood != "auto":
        return likelihood
    n, d = shape
    size = n * num_features_of(d, covariance_type) * jnp.dtype(dtype).itemsize
    return "gemm" if size <= FEATURE_MEMORY_BUDGET_BYTES else "direct"


def prepare_sampler_data(data: np.ndarray, settings: SamplerSettings, num_rows: int | None = None):
    """What the sampler reads of ``data`` (N, D): Gibbs the data on the device, HMC and NUTS
    the likelihood's form of them (:func:`prepare_data`; the features padded to
    ``num_rows``)."""
    if settings.sampler == "gibbs":
        return jnp.asarray(data, settings.dtype)
    return prepare_data(
        data, settings.dtype, settings.likelihood, settings.covariance_type, num_rows
    )


def _uses_features(shape: tuple[int, int], settings: SamplerSettings) -> bool:
    return (
        settings.sampler != "gibbs"
        and _resolve_likelihood(
            shape, settings.dtype, settings.likelihood, settings.covariance_type
        )
        == "gemm"
    )


def _sampler_data_shapes(shape: tuple[int, int], settings: SamplerSettings, num_rows: int):
    """Shapes and dtypes of :func:`prepare_sampler_data`'s result, without building it."""
    n, d = shape
    dtype = settings.dtype
    if _uses_features(shape, settings):
        structure = settings.covariance_type
        scatter = jax.ShapeDtypeStruct((d, d), dtype) if structure == "tied" else None
        return Features(
            jax.ShapeDtypeStruct((num_rows, num_features_of(d, structure)), dtype),
            jax.ShapeDtypeStruct((d,), dtype),
            scatter,
        )
    return jax.ShapeDtypeStruct((n, d), dtype)


def _lazy_sampler_data(data: np.ndarray | LazyData, settings: SamplerSettings) -> LazyData:
    """What the sampler reads of ``data`` (N, D), made when the runner asks for it.

    The features of HMC and NUTS come padded with zero rows to :func:`padded_rows`, so that
    one compiled program serves data of nearby sizes (docs/design.md 5.1).
    """
    if isinstance(data, LazyData):
        shape, load = data.shapes.shape, data.load
    else:
        data = np.asarray(data)
        shape, load = data.shape, lambda: data
    num_rows = padded_rows(shape[0]) if _uses_features(shape, settings) else shape[0]
    return LazyData(
        _sampler_data_shapes(shape, settings, num_rows),
        lambda: prepare_sampler_data(load(), settings, num_rows),
    )


def likelihood_data_bytes(shape: tuple[int, int], settings: SamplerSettings) -> int:
    """Bytes of what the likelihood reads of data of ``shape`` (N, D): the features, or the
    data themselves."""
    n, d = shape
    width = num_features_of(d, settings.covariance_type) if _uses_features(shape, settings) else d
    return n * width * jnp.dtype(settings.dtype).itemsize


def sample_posterior(
    rng_key: jax.Array,
    data: np.ndarray | LazyData | jax.Array | Features,
    priors: Priors,
    initial_params: Params,
    settings: SamplerSettings,
    *,
    progress: bool = False,
    max_chunks: int = 20,
    resume_from: RunnerState | None = None,
    on_chunk: Callable[[RunnerState], bool] | None = None,
    stop_when: Callable[[dict[str, np.ndarray]], bool] | None = None,
    mesh: jax.sharding.Mesh | None = None,
) -> RunOutput:
    """Run HMC, NUTS or Gibbs chains on the posterior of the mixture.

    Parameters
    ----------
    rng_key : PRNG key
    data : numpy array, shape (N, D), in the units the priors are written in, or LazyData
        of such an array; either is turned into what the sampler reads (the features) only
        after the sampler's programs are compiled. What :func:`prepare_sampler_data` made
        of such data (a jax array or Features) is used as is.
    priors : Priors
    initial_params : Params with leading chain axis: (C, K), (C, K, D), (C, K, D, D)
    settings : SamplerSettings
        The whole configuration (:meth:`bgmm.config.RunConfig.sampler_settings`); with the
        priors, it names the run's programs in the store.
    progress : bool
    max_chunks : int
        Compiled calls per chain (more: a smoother progress bar, slightly more overhead).
    resume_from : RunnerState, optional
        Carry on from a state that ``on_chunk`` was given by a run with the same arguments
        (:func:`bgmm.samplers.runner.run_chains`); the draws are bit-identical.
    on_chunk : RunnerState -> bool, optional
        Called after every compiled call; True stops the run
        (:class:`bgmm.samplers.runner.StopRequested`).
    stop_when : dict of arrays -> bool, optional
        Ends the run once the draws kept so far are enough (a target ESS,
        :class:`bgmm.stopping.TargetEss`); see :func:`bgmm.samplers.runner.run_chains`.
    mesh : jax.sharding.Mesh, optional
        ``data`` are Features whose rows are split over this mesh's ``data`` axis
        (:func:`bgmm.model.sharded.sharded_features`), on one process's devices or on those
        of several processes (docs/design.md 16). HMC and NUTS only; the chains run
        vectorized, whatever ``settings.chain_method``.

    Returns
    -------
    RunOutput
        draws: ``weights`` (C, S, K), ``means`` (C, S, K, D), ``chol_precision``
        (C, S, K, D, D), ``lp`` (log joint), ``data_log_likelihood`` (its data term),
        ``lp_target`` (the sampler's unconstrained log density), ``acceptance_rate``, and
        for HMC and NUTS ``diverging``, ``energy``, ``n_steps``, ``step_size`` (NUTS also
        ``tree_depth``), for Gibbs ``num_occupied``; all (C, S, ...).
    """
    if settings.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {settings.sampler!r}; expected one of {SAMPLERS}")
    if mesh is not None and (settings.sampler == "gibbs" or not isinstance(data, Features)):
        raise ValueError("split data are the features of HMC or NUTS (sharded_features)")
    settings = resolve_path_length(settings, num_rows_of(data))
    subsample = None
    if not isinstance(data, jax.Array | Features):
        subsample = Subsample.of(data, settings)
        data = _lazy_sampler_data(data, settings)
    if settings.sampler == "gibbs":
        make_kernel, adaptation = _gibbs_kernel_factory(priors, settings), None
        positions = _positions(initial_params, settings)
        # Nothing to tune.
        dtype = jnp.dtype(settings.dtype)
        initial_tuning = Tuning(np.zeros((), dtype), np.ones(1, dtype), np.zeros((), np.int32))
    else:
        make_kernel = _hmc_kernel_factory(priors, settings, mesh)
        adaptation = _adaptation(settings)
        positions = _positions(initial_params, settings)
        initial_tuning = _initial_tuning(positions, settings)
    run_options = dict(
        chain_method=settings.chain_method if mesh is None else "vectorized",
        progress=progress,
        max_chunks=max_chunks,
    )
    if subsample is not None:
        return _run_after_subsample_warmup(
            rng_key,
            data,
            subsample,
            priors,
            positions,
            settings,
            run_options,
            resume_from=resume_from,
            on_chunk=on_chunk,
            stop_when=stop_when,
        )
    return run_chains(
        rng_key,
        make_kernel,
        adaptation,
        positions,
        data=data,
        num_warmup=settings.num_warmup,
        num_draws=settings.num_draws,
        initial_tuning=initial_tuning,
        resume_from=resume_from,
        on_chunk=on_chunk,
        stop_when=stop_when,
        # Everything make_kernel and the adaptation close over.
        program_identity=(settings, priors),
        data_mesh=mesh,
        **run_options,
    )


def _positions(initial_params: Params, settings: SamplerSettings):
    """The chains' starts as the sampler's positions: Params for Gibbs, else unconstrained."""
    dtype = jnp.dtype(settings.dtype)
    params = Params(*(jnp.asarray(p, dtype) for p in initial_params))
    if settings.sampler == "gibbs":
        return params
    # One compiled call, not one small program per operation (each a cache lookup).
    return jax.jit(lambda p: to_unconstrained(p, settings.covariance_type))(params)


def _initial_tuning(positions, settings: SamplerSettings) -> Tuning:
    """HMC's and NUTS's tuning before warm-up: the settings' step size, a unit metric."""
    dtype = jnp.dtype(settings.dtype)
    num_dimensions = sum(math.prod(a.shape[1:]) for a in jax.tree.leaves(positions))
    dense = settings.metric == "dense"
    return Tuning(
        np.asarray(settings.step_size, dtype),
        np.eye(num_dimensions, dtype=dtype) if dense else np.ones(num_dimensions, dtype),
        np.asarray(_warmup_path_length(settings), np.int32),
    )


def _run_after_subsample_warmup(
    rng_key: jax.Array,
    data: LazyData,
    subsample: Subsample,
    priors: Priors,
    positions,
    settings: SamplerSettings,
    run_options: dict,
    **main_run_options,
) -> RunOutput:
    """Warm up on a subsample, then a short step-size warm-up and the draws on all rows.

    The subsample's likelihood is scaled by N / n, so that its posterior is as
    concentrated as the whole data's and the mass matrix and path length it tunes serve
    the whole data's (docs/design.md 18). Each chain then starts from its own end of that
    warm-up, with its own tuning; the last part of the warm-up (:func:`full_warmup_steps`)
    adapts the step size on all rows, so the kept draws are of the model's posterior.
    """
    full_warmup = full_warmup_steps(settings.num_warmup)
    pilot_settings = settings._replace(
        num_warmup=settings.num_warmup - full_warmup, num_draws=1, warmup_rows=None
    )
    pilot_key = jax.random.fold_in(rng_key, SUBSAMPLE_KEY)
    pilot_start = time.perf_counter()
    rows = subsample.rows(jax.random.fold_in(pilot_key, 0))
    scale = np.asarray(subsample.likelihood_scale, settings.dtype)
    pilot_data = (
        prepare_sampler_data(rows, settings, padded_rows(subsample.num_rows)),
        scale,
    )
    pilot = run_chains(
        pilot_key,
        _hmc_kernel_factory(priors, settings, scaled_likelihood=True),
        _adaptation(pilot_settings),
        positions,
        data=pilot_data,
        num_warmup=pilot_settings.num_warmup,
        num_draws=1,
        initial_tuning=_initial_tuning(positions, settings),
        program_identity=(pilot_settings, priors, "subsample"),
        **run_options,
    )
    pilot_seconds = time.perf_counter() - pilot_start - pilot.compile_seconds
    last = Params(*(pilot.draws[name][:, -1] for name in Params._fields))
    run = run_chains(
        rng_key,
        _hmc_kernel_factory(priors, settings),
        step_size_adaptation(settings.target_accept),
        _positions(last, settings),
        data=data,
        num_warmup=full_warmup,
        num_draws=settings.num_draws,
        initial_tuning=pilot.tuning,
        chain_tuning=True,
        program_identity=(settings, priors, "after a subsample"),
        **run_options,
        **main_run_options,
    )
    return run._replace(
        compile_seconds=run.compile_seconds + pilot.compile_seconds,
        sampling_seconds=run.sampling_seconds + pilot_seconds,
        warmup_rows=subsample.num_rows,
    )


def _adaptation(settings: SamplerSettings):
    if settings.adaptation == "tutorial":
        t = TUTORIAL_SAMPLER
        return tutorial_step_size_rule(
            settings.num_adaptation_steps, t.target_accept_prob, t.adaptation_rate
        )
    if settings.adaptation == "window":
        return window_adaptation(
            settings.num_warmup,
            settings.target_accept,
            dense=settings.metric == "dense",
            fit_path_length=_fits_path_length(settings),
        )
    raise ValueError(f"unknown adaptation {settings.adaptation!r}; expected one of {ADAPTATIONS}")


def _fits_path_length(settings: SamplerSettings) -> bool:
    """HMC with the window adaptation and ``num_leapfrog_steps="auto"``: fitted in warm-up."""
    return (
        settings.sampler == "hmc"
        and settings.adaptation == "window"
        and settings.num_leapfrog_steps == AUTO_PATH_LENGTH
    )


def _warmup_path_length(settings: SamplerSettings) -> int:
    """HMC's mean path length until (and unless) it is fitted; unused by NUTS and Gibbs."""
    steps = settings.num_leapfrog_steps
    return steps if isinstance(steps, int) else WARMUP_LEAPFROG_STEPS


def _hmc_kernel_factory(
    priors: Priors,
    settings: SamplerSettings,
    mesh: jax.sharding.Mesh | None = None,
    scaled_likelihood: bool = False,
) -> Callable[..., Kernel]:
    """HMC or NUTS on the unconstrained posterior: model data (split over ``mesh``'s rows
    when given) -> :class:`Kernel`. With ``scaled_likelihood`` the data are a pair (model
    data, scale of the log-likelihood, shape ()), for a warm-up on a subsample."""
    num_features = priors.num_features
    priors = priors.astype(settings.dtype)
    structure = settings.covariance_type

    def make_kernel(model_data) -> Kernel:
        model_data, scale = model_data if scaled_likelihood else (model_data, 1.0)
        logdensity = make_logdensity(
            model_data, priors, settings.target, structure, mesh=mesh, likelihood_scale=scale
        )
        if settings.sampler == "nuts":
            step = build_nuts_step(logdensity, settings.max_tree_depth)
        else:
            # The tutorial's rule reproduces the tutorial: fixed path length. Else jitter it.
            step = build_hmc_step(logdensity, jitter_steps=settings.adaptation != "tutorial")

        def record(state, info, tuning):
            params = to_constrained(state.position, num_features, structure)
            log_joint = state.logdensity - unconstrained_log_det_jacobian(
                state.position, num_features, structure
            )
            extra = (
                {"tree_depth": info.num_trajectory_expansions}
                if (settings.sampler == "nuts")
                else {}
            )
            return extra | {
                "weights": params.weights,
                "means": params.means,
                "chol_precision": params.chol_precision,
                "lp": log_joint,
                "data_log_likelihood": log_joint
                - log_prior(params, priors, settings.target, structure),
                "lp_target": state.logdensity,
                "acceptance_rate": info.acceptance_rate,
                "diverging": info.is_divergent,
                "energy": info.energy,
                "n_steps": info.num_integration_steps,
                "step_size": tuning.step_size,
            }

        def probe(rng_key, state, tuning):
            return uturn_time(rng_key, state, logdensity, tuning, MAX_FITTED_STEPS)

        return Kernel(
            init=lambda position: init_hmc(position, logdensity),
            step=step,
            acceptance_rate=lambda info: info.acceptance_rate,
            position=lambda state: state.position,
            record=record,
            probe=probe if _fits_path_length(settings) else None,
        )

    return make_kernel


def _gibbs_kernel_factory(priors: Priors, settings: SamplerSettings) -> Callable[..., Kernel]:
    """Gibbs sweeps of the exact conditionals: model data -> :class:`Kernel`. Nothing to
    adapt; warm-up sweeps are plain burn-in."""
    if settings.target != "correct":
        raise ValueError(
            "Gibbs samples the model as written; there is no Gibbs form for target='tutorial'"
        )
    dtype = jnp.dtype(settings.dtype)

    def make_kernel(model_data) -> Kernel:
        init, step = build_gibbs_kernel(model_data, priors, settings.covariance_type)

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

    return make_kernel
