"""One fit, as named steps: priors, standardisation, starts, sampler settings, sampling (with
a checkpoint), draws back in data units, relabelling, results.

:meth:`bgmm.BayesianGMM.fit` and :func:`bgmm.resume` run :func:`run_fit`; every option and
its default is in :class:`bgmm.config.RunConfig`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from bgmm.checkpoint import (
    Checkpoint,
    CheckpointPlan,
    CheckpointWriter,
    Interrupted,
    describe_data,
    remove_checkpoint,
)
from bgmm.config import RunConfig
from bgmm.data import Standardizer
from bgmm.data.subsample import subsample_rows
from bgmm.errors import UserError
from bgmm.fit_result import FitResult
from bgmm.inference import (
    SamplerSettings,
    likelihood_data_bytes,
    resolve_path_length,
    sample_posterior,
)
from bgmm.model.likelihood import draws_pointwise_log_likelihood
from bgmm.model.priors import Priors, default_priors, tutorial_priors
from bgmm.model.transforms import Params
from bgmm.plumbing.devices import default_chain_method
from bgmm.plumbing.precision import float64_scope
from bgmm.relabel import relabel_draws
from bgmm.results import build_inference_data, run_attributes, summarize
from bgmm.samplers.chain_layout import ChainLayout
from bgmm.samplers.runner import LazyData, RunOutput, StopRequested
from bgmm.split_rows import SplitRows, gather_split_rows, split_features
from bgmm.starts import (
    kmeans_plus_plus_starts,
    log_joint_scorer,
    project_starts,
    starts_in_model_units,
)
from bgmm.stopping import TargetEss

__all__ = ["run_fit"]

# The pointwise log-likelihood kept by default: at most this many bytes, at least this many
# draws (thinned within each chain to fit), else none.
LOG_LIKELIHOOD_BYTES = 256 * 2**20
MIN_LOO_DRAWS = 1000
# Observations the best-of-M start search scores its candidates on.
START_SCORE_OBSERVATIONS = 10_000


def _resolve_priors(config: RunConfig, num_features: int) -> tuple[Priors, str, bool]:
    """The priors, their name ("default", "tutorial", "custom") and whether the data
    are standardised."""
    if isinstance(config.priors, Priors):
        priors, name = config.priors, "custom"
    elif config.priors == "tutorial":
        priors, name = tutorial_priors(num_features), "tutorial"
    else:
        priors, name = default_priors(config.n_components, num_features), "default"
    if priors.num_features != num_features:
        raise UserError(
            f"the priors are for D = {priors.num_features} features, the data have {num_features}",
            option="priors",
        )
    return priors, name, config.standardizes


@float64_scope
def run_fit(
    config: RunConfig,
    data: np.ndarray,
    names: list[str],
    source: str,
    start_time: float,
    *,
    progress: bool,
    plan: CheckpointPlan | None,
    initial: Params | None = None,
    resumed: Checkpoint | None = None,
) -> FitResult:
    """Sample and summarise; from ``resumed``'s starts and state when given."""
    priors, priors_name, standardize = _resolve_priors(config, data.shape[1])
    # Rows split over processes: ``data`` is this process's block, ``rows`` what every
    # process holds of all of them (a sample), for what needs the same rows everywhere.
    split = None
    if config.split_rows:
        split = gather_split_rows(data, config.random_state, source, standardize)
    rows = data if split is None else split.sample
    scaler = _standardizer(config, data, source, split) if standardize else None
    if resumed is not None:
        starts = resumed.starts  # the start search is done already
    else:
        starts = _starts(config, rows, scaler, priors, initial)
    settings = _sampler_settings(config, data.shape)
    on_chunk = None
    if plan is not None:
        fixed = Checkpoint(
            # The layout resolved: a resumed run must run the chains as this one did.
            settings=config.to_dict() | {"chain_method": settings.chain_method},
            data=describe_data(data, source),
            fit={"feature_names": names, "checkpoint_interval": plan.interval},
            extra=plan.extra,
            starts=Params(*(np.asarray(a) for a in starts)),
            priors=priors if priors_name == "custom" else None,
            state=None,
        )
        on_chunk = CheckpointWriter(
            plan.directory,
            lambda state: fixed._replace(state=state),
            plan.interval,
            plan.should_stop,
            write_last=plan.keep,
        )
    relabel = config.resolved_relabel(priors)
    num_rows = len(data) if split is None else split.num_rows
    reported = _reported(scaler, rows, relabel, config.random_state, num_rows)
    stop_when = None
    if config.target_ess is not None:
        stop_when = _agreed(TargetEss(config.target_ess, reported, config.covariance_type))
    run = _sample(
        config.random_state,
        _sampler_data(data, scaler)
        if split is None
        else _split_data(split, data, scaler, settings),
        priors,
        starts,
        settings,
        plan,
        progress=progress,
        resume_from=None if resumed is None else resumed.state,
        on_chunk=on_chunk,
        stop_when=stop_when,
        mesh=None if split is None else split.mesh,
    )
    draws = reported(run.draws)
    record = _run_record(config, settings, run, priors_name, standardize, relabel)
    if split is None:
        pointwise, thinning = _pointwise_log_likelihood(config, draws, data, record)
    else:
        pointwise, thinning = None, 0
        record |= _split_record(split)
    center, scale = (scaler.center, scaler.scale) if scaler else (None, None)
    attrs = run_attributes(record, priors, center, scale)
    idata = build_inference_data(draws, rows, names, attrs, pointwise, thinning or 1)
    timing = {
        "compile_seconds": run.compile_seconds,
        "sampling_seconds": run.sampling_seconds,
        "total_seconds": time.perf_counter() - start_time,
    }
    idata.posterior.attrs.update(timing)
    if plan is not None and not plan.keep:
        remove_checkpoint(plan.directory)  # the results supersede it
    summary = summarize(idata)
    if run.converged is False:
        summary["warnings"].append(
            f"the target ESS ({config.target_ess}) was not reached in {config.num_draws} "
            f"draws per chain (bulk ESS min {summary['ess_bulk_min']:.0f}, R-hat max "
            f"{summary['rhat_max']:.3f}): raise --draws, the most draws per chain"
        )
    return FitResult(idata, summary, record, timing)


def _reported(
    scaler: Standardizer | None, rows: np.ndarray, relabel: str, seed: int, num_rows: int
) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """sampled draws -> the draws as the results report them: in data units, relabelled
    (:func:`bgmm.relabel.relabel_draws` on ``rows``, of ``num_rows`` in all)."""

    def reported(sampled: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        in_data_units = _draws_in_data_units(sampled, scaler)
        return relabel_draws(in_data_units, rows, relabel, seed, num_rows)

    return reported


def _agreed(stop_when: Callable[[dict[str, np.ndarray]], bool]):
    """``stop_when``, decided by process 0 where the rows are split over processes.

    Every process checks the same draws, but two machines may round differently (numpy's
    kernels differ by CPU): the processes must stop at the same step or their collectives
    hang, so all take process 0's answer.
    """
    if jax.process_count() == 1:
        return stop_when

    def decided_by_process_0(draws: dict[str, np.ndarray]) -> bool:
        from jax.experimental import multihost_utils

        answer = np.asarray(stop_when(draws), np.int32)
        return bool(multihost_utils.broadcast_one_to_all(answer))

    return decided_by_process_0


def _pointwise_log_likelihood(
    config: RunConfig, draws: dict[str, np.ndarray], data: np.ndarray, record: dict[str, Any]
) -> tuple[np.ndarray | None, int]:
    """The pointwise log-likelihood (C, S', N) of the draws kept by
    :func:`log_likelihood_thinning` (None: none kept) and the thinning; ``record`` gets the
    thinning and, when the default left it out, the warning that says so."""
    thinning = log_likelihood_thinning(
        config.num_chains, config.num_draws, len(data), config.store_log_likelihood
    )
    record["log_likelihood_thinning"] = thinning
    if not thinning and config.store_log_likelihood is None:
        size = 8 * config.num_chains * config.num_draws * len(data) / 2**30
        record["log_likelihood_note"] = (
            f"pointwise log-likelihood not stored (LOO needs it): all draws would take "
            f"{size:.1f} GiB, and thinned to {LOG_LIKELIHOOD_BYTES // 2**20} MiB fewer than "
            f"{MIN_LOO_DRAWS} draws would remain; store_log_likelihood=True "
            "(--log-likelihood) keeps them all"
        )
    pointwise = None
    if thinning:
        params = Params(*(draws[v][:, ::thinning] for v in ("weights", "means", "chol_precision")))
        pointwise = draws_pointwise_log_likelihood(params, data)
    return pointwise, thinning


def log_likelihood_thinning(
    num_chains: int, num_draws: int, num_rows: int, store: bool | None
) -> int:
    """Keep every t-th draw of each chain in the pointwise log-likelihood; 0: keep none.

    ``store`` True keeps every draw, False none; None (the default) every draw while the
    (C, S, N) array takes at most ``LOG_LIKELIHOOD_BYTES``, else the smallest t that fits,
    as long as at least ``MIN_LOO_DRAWS`` draws remain (PSIS-LOO needs a few hundred), else
    none.
    """
    if store is not None:
        return 1 if store else 0
    values = num_chains * num_draws * num_rows
    thinning = max(1, math.ceil(8 * values / LOG_LIKELIHOOD_BYTES))
    kept = num_chains * math.ceil(num_draws / thinning)
    if thinning > 1 and kept < MIN_LOO_DRAWS:
        return 0
    return thinning


def _standardizer(
    config: RunConfig, data: np.ndarray, source: str, split: SplitRows | None
) -> Standardizer:
    """The data's Standardizer (of all processes' rows when they are split); for
    'spherical' covariances one scale for every column (the root mean variance), so that a
    multiple of I stays one in data units."""
    if split is None:
        scaler = Standardizer.fit(data, source=source)
    else:
        scaler = Standardizer(split.center, split.scale)
    if config.covariance_type == "spherical":
        common = float(np.sqrt(np.mean(scaler.scale**2)))
        scaler = scaler._replace(scale=np.full_like(scaler.scale, common))
    return scaler


def _split_data(
    split: SplitRows, data: np.ndarray, scaler: Standardizer | None, settings: SamplerSettings
):
    """This process's features in model units, rows split over ``split.mesh``, built around
    the centre of all rows."""
    model_rows = scaler.transform(data) if scaler else data
    center = scaler.transform(split.center[None])[0] if scaler else split.center
    return split_features(split, model_rows, center, settings.dtype, settings.covariance_type)


def _split_record(split: SplitRows) -> dict[str, Any]:
    """What a run on split rows adds to its record: where its rows were and why the
    results hold a sample of them."""
    return {
        "split_rows_processes": jax.process_count(),
        "split_rows_devices": int(split.mesh.devices.size),
        "num_observations": split.num_rows,
        "observed_data_note": (
            f"observed_data holds a uniform sample of {len(split.sample):,} of the "
            f"{split.num_rows:,} rows (split over {jax.process_count()} processes)"
        ),
        "log_likelihood_note": (
            "pointwise log-likelihood not stored: the rows were split over devices"
        ),
    }


def _starts(
    config: RunConfig,
    data: np.ndarray,
    scaler: Standardizer | None,
    priors: Priors,
    initial: Params | None,
) -> Params:
    """One start per chain in model units: ``initial``, or the best-of-M search."""
    if initial is not None:
        center, scale = (scaler.center, scaler.scale) if scaler else (None, None)
        starts = starts_in_model_units(initial, config.num_chains, center, scale)
        return project_starts(starts, config.covariance_type)
    model_data = scaler.transform(data) if scaler else data
    starts = kmeans_plus_plus_starts(
        config.random_state,
        model_data,
        config.n_components,
        config.num_chains,
        num_candidates=config.n_init,
        score=log_joint_scorer(
            subsample_rows(model_data, START_SCORE_OBSERVATIONS, config.random_state),
            priors,
            config.target,
            config.covariance_type,
        ),
    )
    return project_starts(starts, config.covariance_type)


def _sampler_settings(config: RunConfig, data_shape: tuple[int, int]) -> SamplerSettings:
    """The config resolved for data of ``data_shape``: "auto" chain method made concrete
    (it depends on the devices and the size of what the likelihood reads; chains on split
    rows or run to a target ESS run together), and HMC's default path length (it depends
    on N)."""
    if config.split_rows:
        settings = config.sampler_settings(chain_method="vectorized")
    elif config.chain_method != "auto":
        settings = config.sampler_settings()
    else:
        probe = config.sampler_settings(chain_method="sequential")
        data_bytes = likelihood_data_bytes(data_shape, probe)
        settings = probe._replace(chain_method=default_chain_method(config.num_chains, data_bytes))
    if config.target_ess is not None:
        settings = _all_chains_at_once(config, settings)
    return resolve_path_length(settings, data_shape[0])


def _all_chains_at_once(config: RunConfig, settings: SamplerSettings) -> SamplerSettings:
    """A run to a target ESS checks all chains together: one at a time becomes
    "vectorized" when it was chosen for the user ("auto"), else is refused ("parallel"
    then runs each device's share of the chains vectorized)."""
    layout = ChainLayout(settings.chain_method, config.num_chains, all_at_once=True)
    groups = len(layout.groups)
    if groups == 1:
        return settings
    if config.chain_method == "auto":
        return settings._replace(chain_method="vectorized")
    raise UserError(
        f"a run to a target ESS checks all chains at once; chain method "
        f"{settings.chain_method!r} runs {config.num_chains} chains in {groups} turns here "
        "(use 'vectorized')",
        option="target_ess",
    )


def _sampler_data(data: np.ndarray, scaler: Standardizer | None) -> np.ndarray | LazyData:
    """The data in model units; standardised only when the sampler asks (after compiling),
    so that this N x D copy is not in memory while it compiles and samples."""
    if scaler is None:
        return data
    return LazyData(jax.ShapeDtypeStruct(data.shape, data.dtype), lambda: scaler.transform(data))


def _sample(
    seed: int,
    data: np.ndarray | LazyData,
    priors: Priors,
    starts: Params,
    settings: SamplerSettings,
    plan: CheckpointPlan | None,
    **options: Any,
) -> RunOutput:
    """:func:`bgmm.inference.sample_posterior`; a requested stop becomes ``Interrupted``."""
    try:
        return sample_posterior(jax.random.key(seed), data, priors, starts, settings, **options)
    except StopRequested as stop:
        state = stop.state
        raise Interrupted(
            plan.directory, state.steps_done, state.num_chains * state.num_steps
        ) from None


def _draws_in_data_units(
    draws: dict[str, np.ndarray], scaler: Standardizer | None
) -> dict[str, np.ndarray]:
    """Draws as float64 numpy arrays (counts and flags keep their types), in data units."""
    draws = {
        name: np.asarray(value, np.float64) if np.issubdtype(value.dtype, np.floating) else value
        for name, value in draws.items()
    }
    if scaler is not None:
        draws["means"] = scaler.means_to_data(draws["means"])
        draws["chol_precision"] = scaler.chol_precision_to_data(draws["chol_precision"])
    return draws


def _run_record(
    config: RunConfig,
    settings: SamplerSettings,
    run: RunOutput,
    priors_name: str,
    standardize: bool,
    relabel: str,
) -> dict[str, Any]:
    """How the run was made: ``FitResult.settings`` and the results' attributes."""
    return {
        "sampler": settings.sampler,
        "target": settings.target,
        "covariance_type": settings.covariance_type,
        "priors": priors_name,
        "adaptation": settings.adaptation,
        "target_accept": settings.target_accept,
        "num_chains": config.num_chains,
        "num_warmup": settings.num_warmup,
        # Kept per chain: settings.num_draws, or fewer where target_ess was reached.
        "num_draws": int(run.draws["lp"].shape[1]),
        "target_ess": config.target_ess,
        # Whether the draws reached target_ess before num_draws (None: no target).
        "converged": run.converged,
        "num_leapfrog_steps": settings.num_leapfrog_steps,
        # HMC's mean path length in the kept draws (fitted in warm-up unless given).
        "path_length_steps": float(np.mean(run.tuning.num_steps))
        if settings.sampler == "hmc"
        else None,
        # The rows of the subsample most of the warm-up ran on (None: all rows).
        "warmup_rows": run.warmup_rows,
        "max_tree_depth": settings.max_tree_depth,
        "initial_step_size": settings.step_size,
        "step_size": float(np.mean(run.tuning.step_size)),
        "chain_method": settings.chain_method,
        "dtype": settings.dtype,
        "seed": config.random_state,
        "standardized": bool(standardize),
        "relabel": relabel,
    }
