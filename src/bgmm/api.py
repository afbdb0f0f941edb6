"""The friendly front: ``BayesianGMM(...).fit(X)``, ``demo()`` and ``resume()`` returning a
``FitResult``.

A fit is a sequence of named steps (:meth:`BayesianGMM._fit`): priors, standardisation,
starts, sampler settings, sampling (with a checkpoint), draws back in data units,
relabelling, results. Every option and its default is in :class:`bgmm.config.RunConfig`.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bgmm.assignments import Memberships, membership_probabilities
from bgmm.checkpoint import (
    DEFAULT_CHECKPOINT_INTERVAL,
    Checkpoint,
    CheckpointError,
    CheckpointPlan,
    CheckpointWriter,
    Interrupted,
    checkpoint_plan,
    describe_data,
    has_checkpoint,
    read_checkpoint,
    remove_checkpoint,
)
from bgmm.config import RunConfig, defaults, demo_config, parameters_doc, signature
from bgmm.data import Standardizer, check_num_components
from bgmm.data.subsample import subsample_rows
from bgmm.errors import UserError
from bgmm.inference import SamplerSettings, likelihood_data_bytes, sample_posterior
from bgmm.model.likelihood import draws_pointwise_log_likelihood
from bgmm.model.priors import Priors, default_priors, tutorial_priors
from bgmm.model.transforms import Params
from bgmm.plumbing.devices import default_chain_method
from bgmm.plumbing.precision import float64_scope
from bgmm.relabel import relabel_draws
from bgmm.results import build_inference_data, format_summary, run_attributes, summarize
from bgmm.samplers.runner import LazyData, RunOutput, StopRequested
from bgmm.starts import kmeans_plus_plus_starts, log_joint_scorer, starts_in_model_units
from bgmm.tutorial import tutorial_data, tutorial_start

__all__ = ["BayesianGMM", "FitResult", "demo", "demo_model", "resume"]

# Observations the best-of-M start search scores its candidates on.
START_SCORE_OBSERVATIONS = 10_000


@dataclass
class FitResult:
    """A finished run.

    Attributes
    ----------
    idata : arviz.InferenceData
        Draws laid out as (chain, draw, ...) in data units; see README "Output files".
    summary : dict
        Posterior means, sds and diagnostics (:func:`bgmm.results.summarize`).
    settings : dict
        How the run was made (also stored as attributes of ``idata``).
    timing : dict
        ``compile_seconds``, ``sampling_seconds``, ``total_seconds``.
    """

    idata: Any
    summary: dict[str, Any]
    settings: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` record: settings, posterior summary and timings."""
        keys = ("sampler", "target", "num_chains", "num_draws", "num_warmup", "priors", "dtype")
        record = {k: self.settings[k] for k in keys}
        record.update(
            {k: v for k, v in self.summary.items() if k not in ("num_chains", "num_draws")}
        )
        record.update(self.timing)
        return record

    def report(self) -> str:
        """The printed summary."""
        shown = ("sampler", "target", "adaptation", "num_chains", "num_warmup", "num_draws")
        return format_summary(
            self.summary, {k: self.settings[k] for k in shown if self.settings[k] is not None}
        )

    def memberships(self, X) -> Memberships:
        """Posterior mean and sd of the membership probabilities of ``X`` (N, D), in data
        units, under the (relabelled) draws: the components are the summary's.

        Returns
        -------
        Memberships
            ``mean`` and ``sd``, each (N, K).
        """
        posterior = self.idata.posterior
        data = _as_data(X)
        if data.shape[1] != posterior.sizes["feature"]:
            raise UserError(
                f"expected {posterior.sizes['feature']} features, got {data.shape[1]}",
                option="X",
            )
        return membership_probabilities(
            data, *(posterior[v].values for v in ("weights", "means", "chol_precision"))
        )

    def predict_proba(self, X) -> np.ndarray:
        """Membership probabilities of ``X`` (N, D) averaged over the posterior, (N, K)."""
        return self.memberships(X).mean

    def predict(self, X) -> np.ndarray:
        """The most probable component of each row of ``X`` (N, D): integer labels (N,)."""
        return np.argmax(self.predict_proba(X), axis=1)

    def save(self, path: str | Path) -> Path:
        """Write the InferenceData as NetCDF (atomically)."""
        from bgmm.results import save_inference_data

        return save_inference_data(self.idata, path)


class BayesianGMM:
    """Bayesian Gaussian mixture sampled with HMC, NUTS or Gibbs.

    ``BayesianGMM(n_components, **options)``: the options, their defaults and their checks
    are those of :class:`bgmm.config.RunConfig` (listed below), kept as ``self.config``
    and readable as attributes (``model.num_chains``). A bad option raises
    :class:`bgmm.errors.UserError` naming it; an unknown one ``TypeError``.
    """

    def __init__(self, n_components: int = 3, **options: Any) -> None:
        unknown = sorted(set(options) - set(defaults()))
        if unknown:
            raise TypeError(f"BayesianGMM got an unexpected keyword argument {unknown[0]!r}")
        self.config = RunConfig(n_components=n_components, **options)

    def __getattr__(self, name: str) -> Any:
        if name != "config" and name in defaults():
            return getattr(self.config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        changed = {
            k: v
            for k, v in self.config.to_dict().items()
            if v != defaults()[k] or k == "n_components"
        }
        return f"BayesianGMM({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    __init__.__signature__ = signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("n_components", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=3),
        ]
    )
    __doc__ = (__doc__ or "") + parameters_doc()

    @classmethod
    def from_config(cls, config: RunConfig) -> BayesianGMM:
        """The model that runs ``config``."""
        model = cls.__new__(cls)
        model.config = config
        return model

    def _resolve_priors(self, num_features: int) -> tuple[Priors, str, bool]:
        """The priors, their name ("default", "tutorial", "custom") and whether the data
        are standardised."""
        config = self.config
        if isinstance(config.priors, Priors):
            priors, name = config.priors, "custom"
        elif config.priors == "tutorial":
            priors, name = tutorial_priors(num_features), "tutorial"
        else:
            priors, name = default_priors(config.n_components, num_features), "default"
        if priors.num_features != num_features:
            raise UserError(
                f"the priors are for D = {priors.num_features} features, the data have "
                f"{num_features}",
                option="priors",
            )
        return priors, name, config.standardizes

    def fit(
        self,
        X,
        *,
        feature_names: list[str] | None = None,
        initial: Params | None = None,
        progress: bool = False,
        source: str = "data",
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
        should_stop: Callable[[], bool] | None = None,
        extra: dict[str, Any] | None = None,
        keep_checkpoint: bool = False,
    ) -> FitResult:
        """Sample the posterior given data ``X``.

        Parameters
        ----------
        X : array-like, shape (N, D)
            Finite values, N >= n_components.
        feature_names : list of D str, optional
        initial : Params, optional
            Starting points in data units, with or without a leading chain axis. By
            default every chain starts from its own k-means++ clustering of the data.
        progress : bool
            Progress bar on stderr.
        source : str
            Name of the data in error messages (the CLI: the data file's path); kept in
            the checkpoint.
        checkpoint_dir : path, optional
            Keep a checkpoint of the run in ``checkpoint_dir/.bgmm-checkpoint/`` while it
            samples (:mod:`bgmm.checkpoint`), so that a killed run can be finished by
            :func:`resume`. Refused when the directory holds one already (an unfinished
            run: resume it or remove it). Deleted when the fit succeeds.
        checkpoint_interval : float
            Seconds at least between two checkpoints (0: after every compiled chunk).
        should_stop : () -> bool, optional
            Asked after every chunk; when True the run writes its checkpoint and raises
            :class:`bgmm.checkpoint.Interrupted` (see :func:`bgmm.checkpoint.stop_on_signal`).
            Needs ``checkpoint_dir``.
        extra : dict, optional
            JSON-able record kept in the checkpoint and returned by
            :func:`bgmm.checkpoint.read_checkpoint` (the CLI keeps its options there).
        keep_checkpoint : bool
            Keep the checkpoint after success, brought up to the last chunk, for a caller
            that deletes it itself once the results are safe
            (:func:`bgmm.checkpoint.remove_checkpoint`). A run shorter than
            ``checkpoint_interval`` writes none.

        Returns
        -------
        FitResult

        Raises
        ------
        bgmm.checkpoint.Interrupted
            When ``should_stop`` asked the run to stop; the checkpoint is written.
        """
        start_time = time.perf_counter()
        data = _as_data(X)
        check_num_components(data, self.config.n_components, source)
        d = data.shape[1]
        names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(d)]
        if len(names) != d:
            raise UserError(f"{len(names)} names for {d} features", option="feature_names")
        plan = checkpoint_plan(
            checkpoint_dir, checkpoint_interval, should_stop, extra, keep_checkpoint
        )
        if plan is not None and has_checkpoint(plan.directory):
            raise CheckpointError(
                f"{plan.directory} holds the checkpoint of an unfinished run: resume it "
                "(bgmm.api.resume) or delete it (bgmm.checkpoint.remove_checkpoint)"
            )
        return self._fit(
            data, names, source, start_time, progress=progress, plan=plan, initial=initial
        )

    @float64_scope
    def _fit(
        self,
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
        config = self.config
        priors, priors_name, standardize = self._resolve_priors(data.shape[1])
        scaler = Standardizer.fit(data, source=source) if standardize else None
        if resumed is not None:
            starts = resumed.starts  # the start search is done already
        else:
            starts = self._starts(data, scaler, priors, initial)
        settings = self._sampler_settings(data.shape)
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
        run = _sample(
            config.seed,
            _sampler_data(data, scaler),
            priors,
            starts,
            settings,
            plan,
            progress=progress,
            resume_from=None if resumed is None else resumed.state,
            on_chunk=on_chunk,
        )
        relabel = config.resolved_relabel(priors)
        draws = relabel_draws(_draws_in_data_units(run.draws, scaler), data, relabel, config.seed)
        record = _run_record(config, settings, run, priors_name, standardize, relabel)
        pointwise = None
        if config.store_log_likelihood:
            params = Params(draws["weights"], draws["means"], draws["chol_precision"])
            pointwise = draws_pointwise_log_likelihood(params, data)
        center, scale = (scaler.center, scaler.scale) if scaler else (None, None)
        attrs = run_attributes(record, priors, center, scale)
        idata = build_inference_data(draws, data, names, attrs, pointwise)
        timing = {
            "compile_seconds": run.compile_seconds,
            "sampling_seconds": run.sampling_seconds,
            "total_seconds": time.perf_counter() - start_time,
        }
        idata.posterior.attrs.update(timing)
        if plan is not None and not plan.keep:
            remove_checkpoint(plan.directory)  # the results supersede it
        return FitResult(idata, summarize(idata), record, timing)

    def _starts(
        self,
        data: np.ndarray,
        scaler: Standardizer | None,
        priors: Priors,
        initial: Params | None,
    ) -> Params:
        """One start per chain in model units: ``initial``, or the best-of-M search."""
        config = self.config
        if initial is not None:
            center, scale = (scaler.center, scaler.scale) if scaler else (None, None)
            return starts_in_model_units(initial, config.num_chains, center, scale)
        model_data = scaler.transform(data) if scaler else data
        return kmeans_plus_plus_starts(
            config.seed,
            model_data,
            config.n_components,
            config.num_chains,
            num_candidates=config.start_candidates,
            score=log_joint_scorer(
                subsample_rows(model_data, START_SCORE_OBSERVATIONS, config.seed),
                priors,
                config.target,
            ),
        )

    def _sampler_settings(self, data_shape: tuple[int, int]) -> SamplerSettings:
        """The config resolved for data of ``data_shape``: "auto" chain method made concrete
        (it depends on the devices and the size of what the likelihood reads)."""
        config = self.config
        if config.chain_method != "auto":
            return config.sampler_settings()
        probe = config.sampler_settings(chain_method="sequential")
        data_bytes = likelihood_data_bytes(data_shape, probe)
        return probe._replace(chain_method=default_chain_method(config.num_chains, data_bytes))


def _as_data(X) -> np.ndarray:
    """``X`` as a finite float64 array (N, D)."""
    data = np.asarray(X, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] < 1:
        raise UserError(f"expected shape (N, D), got {np.shape(X)}", option="X")
    if not np.all(np.isfinite(data)):
        row, col = np.argwhere(~np.isfinite(data))[0]
        raise UserError(f"a non-finite value at row {row + 1}, column {col + 1}", option="X")
    return data


def resume(
    checkpoint_dir: str | os.PathLike,
    X,
    *,
    progress: bool = False,
    checkpoint_interval: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    keep_checkpoint: bool = False,
) -> FitResult:
    """Finish the run whose checkpoint is in ``checkpoint_dir``.

    The model is built again from the checkpoint's settings, the chains carry on from
    its state (no start search, no warm-up again), and the result is the one the run
    would have given had it never stopped: the same draws, bit for bit, and so the same
    relabelling and summaries. The checkpoint is kept up to date while the run goes on,
    and deleted when it succeeds.

    Parameters
    ----------
    checkpoint_dir : path
        The ``checkpoint_dir`` the run was given (or its ``.bgmm-checkpoint``).
    X : array-like, shape (N, D)
        The same data: refused unless their sha256 is the checkpoint's.
    progress : bool
        Progress bar on stderr.
    checkpoint_interval : float, optional
        Seconds at least between checkpoints; None: as the run was given.
    should_stop, keep_checkpoint
        As for :meth:`BayesianGMM.fit`.

    Returns
    -------
    FitResult

    Raises
    ------
    bgmm.checkpoint.CheckpointError
        No checkpoint, a damaged one, one written by other versions or on another device,
        or other data.
    bgmm.checkpoint.Interrupted
        When ``should_stop`` asked the run to stop again.
    """
    start_time = time.perf_counter()
    checkpoint = read_checkpoint(checkpoint_dir)
    stored = checkpoint.data
    source = stored.get("source") or "data"
    data = _as_data(X)
    if list(data.shape) != list(stored["shape"]):
        raise CheckpointError(
            f"{source}: the data changed since the checkpoint was written (shape "
            f"{tuple(data.shape)}, then {tuple(stored['shape'])})"
        )
    if describe_data(data, source)["sha256"] != stored["sha256"]:
        raise CheckpointError(
            f"{source}: the data changed since the checkpoint was written (their sha256 "
            "differs); resume needs the data the run started with"
        )
    try:
        config = RunConfig.from_dict(checkpoint.settings, checkpoint.priors)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint's settings do not make a model: {exc}") from None
    model = BayesianGMM.from_config(config)
    if checkpoint_interval is None:
        checkpoint_interval = checkpoint.fit["checkpoint_interval"]
    plan = checkpoint_plan(
        checkpoint_dir, checkpoint_interval, should_stop, checkpoint.extra, keep_checkpoint
    )
    return model._fit(
        data,
        list(checkpoint.fit["feature_names"]),
        source,
        start_time,
        progress=progress,
        plan=plan,
        resumed=checkpoint,
    )


def demo_model(target: str = RunConfig.target, **options: Any) -> BayesianGMM:
    """The model :func:`demo` fits (:func:`bgmm.config.demo_config`): the tutorial's priors
    and, for ``target="tutorial"``, its sampler configuration. ``options`` are
    :class:`bgmm.config.RunConfig` fields (None: the demo's default)."""
    return BayesianGMM.from_config(demo_config(target, **options))


def demo(
    target: str = RunConfig.target,
    *,
    progress: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
    should_stop: Callable[[], bool] | None = None,
    extra: dict[str, Any] | None = None,
    keep_checkpoint: bool = False,
    **options,
) -> FitResult:
    """Fit the tutorial's data from the tutorial's start.

    ``target="tutorial"`` runs the tutorial's exact configuration by default: one chain
    from its start, HMC with 5 leapfrog steps, step size 0.065 adapted by its rule over
    the first 400 of 500 burn-in steps, 2000 kept draws. ``target="correct"`` samples the
    model as written with 4 chains and the default windowed adaptation. ``options`` are
    those of :func:`demo_model` (num_chains, num_warmup, num_draws, seed, dtype,
    chain_method, sampler, relabel); the checkpoint arguments are those of
    :meth:`BayesianGMM.fit` (resume with ``resume(checkpoint_dir, tutorial_data())``).
    """
    model = demo_model(target, **options)
    return model.fit(
        tutorial_data(),
        initial=Params(*tutorial_start()),
        progress=progress,
        checkpoint_dir=checkpoint_dir,
        checkpoint_interval=checkpoint_interval,
        should_stop=should_stop,
        extra=extra,
        keep_checkpoint=keep_checkpoint,
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
        "priors": priors_name,
        "adaptation": settings.adaptation,
        "target_accept": settings.target_accept,
        "num_chains": config.num_chains,
        "num_warmup": settings.num_warmup,
        "num_draws": settings.num_draws,
        "num_leapfrog_steps": settings.num_leapfrog_steps,
        "max_tree_depth": settings.max_tree_depth,
        "initial_step_size": settings.step_size,
        "step_size": float(np.mean(run.tuning.step_size)),
        "chain_method": settings.chain_method,
        "dtype": settings.dtype,
        "seed": config.seed,
        "standardized": bool(standardize),
        "relabel": relabel,
    }
