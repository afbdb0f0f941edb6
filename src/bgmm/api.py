"""The friendly front: ``BayesianGMM(...).fit(X)``, ``demo()`` and ``resume()`` returning a
``FitResult``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bgmm.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointWriter,
    Interrupted,
    checkpoint_path,
    describe_data,
    has_checkpoint,
    read_checkpoint,
    remove_checkpoint,
)
from bgmm.data import Standardizer, check_num_components
from bgmm.devices import default_chain_method
from bgmm.inference import (
    ADAPTATIONS,
    DEFAULT_TARGET_ACCEPT,
    SAMPLERS,
    DeferredData,
    SamplerSettings,
    likelihood_data_bytes,
    sample_posterior,
)
from bgmm.model.density import TARGETS, log_joint
from bgmm.model.likelihood import pointwise_log_likelihood
from bgmm.model.priors import (
    Priors,
    default_priors,
    is_exchangeable,
    tutorial_priors,
    validate_priors,
)
from bgmm.model.transforms import Params
from bgmm.precision import float64_scope
from bgmm.relabel import (
    RELABEL_METHODS,
    apply_permutations,
    classification_probabilities,
    expected_counts,
    pivot_permutations,
    stephens_permutations,
)
from bgmm.results import build_inference_data, format_summary, summarize
from bgmm.samplers.runner import CHAIN_METHODS, StopRequested
from bgmm.starts import kmeans_plus_plus_starts
from bgmm.tutorial import TUTORIAL_SAMPLER, tutorial_data, tutorial_start

__all__ = ["BayesianGMM", "FitResult", "demo", "demo_model", "resume"]

DTYPES = {"float64": jnp.float64, "float32": jnp.float32}
PRIOR_PRESETS = ("default", "tutorial")


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
        return format_summary(self.summary, {k: self.settings[k] for k in shown})

    def save(self, path: str | Path) -> Path:
        """Write the InferenceData as NetCDF (atomically)."""
        from bgmm.results import save_inference_data

        return save_inference_data(self.idata, path)


class BayesianGMM:
    """Bayesian Gaussian mixture sampled with HMC, NUTS or Gibbs.

    Parameters
    ----------
    n_components : int
        K >= 1.
    priors : "default", "tutorial" or Priors
        "default": exchangeable weakly informative priors on standardised data
        (:func:`bgmm.model.default_priors`); "tutorial": the TFP tutorial's (K = 3).
        A :class:`Priors` is used as given, in the units of the data.
    target : "correct" or "tutorial"
        "tutorial" drops the Wishart-on-Cholesky Jacobian, as the TFP tutorial does.
    sampler : "hmc", "nuts" or "gibbs"
        Gibbs: the exact conditionals of the model as written (design.md 1.5).
    num_chains, num_warmup, num_draws : int
    num_leapfrog_steps : int
        HMC: mean leapfrog steps per transition (jittered, except with the tutorial's rule).
    max_tree_depth : int
        NUTS: at most 2**max_tree_depth leapfrog steps per transition.
    step_size : float
        Initial step size.
    adaptation : "window" or "tutorial"
    target_accept : float in (0, 1) or None
        Mean acceptance probability the window adaptation aims its step size at. None:
        0.65 for HMC, 0.8 for NUTS (:data:`bgmm.inference.DEFAULT_TARGET_ACCEPT`).
    chain_method : "auto", "sequential", "vectorized" or "parallel"
        "auto": one chain per CPU core ("parallel") when there are several, vmapped on an
        accelerator, else one after another (:func:`bgmm.devices.default_chain_method`).
    dtype : "float64" or "float32"
    seed : int
    standardize : bool or None
        Centre and scale the data before sampling and report back in data units.
        None: only with the default priors (they are written for standardised data).
    store_log_likelihood : bool
        Keep pointwise log-likelihoods (chain, draw, observation) for LOO/WAIC.
    start_candidates : int
        Best-of-M start search: each chain starts from the highest-posterior of this many
        k-means++ clusterings of the data (ignored when ``initial`` is given to fit).
    relabel : "auto", "none", "pivot" or "stephens"
        Undo label switching before summaries (:mod:`bgmm.relabel`). "auto": "pivot" when
        the priors are exchangeable, else "none". "stephens" starts from the pivot's labels.
    """

    def __init__(
        self,
        n_components: int = 3,
        *,
        priors: str | Priors = "default",
        target: str = "correct",
        sampler: str = "hmc",
        num_chains: int = 4,
        num_warmup: int = 1000,
        num_draws: int = 1000,
        num_leapfrog_steps: int = 16,
        max_tree_depth: int = 10,
        step_size: float = 0.1,
        adaptation: str = "window",
        target_accept: float | None = None,
        chain_method: str = "auto",
        dtype: str = "float64",
        seed: int = 0,
        standardize: bool | None = None,
        store_log_likelihood: bool = False,
        relabel: str = "auto",
        start_candidates: int = 10,
    ) -> None:
        if isinstance(n_components, bool) or not isinstance(n_components, int | np.integer):
            raise ValueError(f"n_components must be an integer, got {n_components!r}")
        if n_components < 1:
            raise ValueError(f"n_components must be at least 1, got {n_components}")
        if isinstance(priors, str) and priors not in PRIOR_PRESETS:
            raise ValueError(f"unknown priors {priors!r}; expected one of {PRIOR_PRESETS}")
        if priors == "tutorial" and n_components != 3:
            raise ValueError(f"the tutorial priors have 3 components, not {n_components}")
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
        if sampler != "hmc" and adaptation == "tutorial":
            raise ValueError(f"the tutorial's step-size rule is for HMC, not {sampler}")
        if sampler == "gibbs" and target != "correct":
            raise ValueError(
                "Gibbs samples the model as written; there is no Gibbs form for "
                "target='tutorial' (use --sampler hmc)"
            )
        if adaptation not in ADAPTATIONS:
            raise ValueError(f"unknown adaptation {adaptation!r}; expected one of {ADAPTATIONS}")
        if relabel not in ("auto", *RELABEL_METHODS):
            raise ValueError(
                f"unknown relabel {relabel!r}; expected one of {('auto', *RELABEL_METHODS)}"
            )
        if chain_method not in ("auto", *CHAIN_METHODS):
            raise ValueError(
                f"unknown chain_method {chain_method!r}; expected one of {('auto', *CHAIN_METHODS)}"
            )
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; expected one of {tuple(DTYPES)}")
        for name, value, low in (
            ("num_chains", num_chains, 1),
            ("num_warmup", num_warmup, 0),
            ("num_draws", num_draws, 2),
            ("num_leapfrog_steps", num_leapfrog_steps, 1),
            ("max_tree_depth", max_tree_depth, 1),
            ("start_candidates", start_candidates, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not step_size > 0:
            raise ValueError(f"step_size must be positive, got {step_size!r}")
        if target_accept is not None and not 0 < target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {target_accept!r}")
        # What a checkpoint records to build this model again (custom priors as arrays).
        self._arguments = {
            "n_components": int(n_components),
            "priors": priors if isinstance(priors, str) else "custom",
            "target": target,
            "sampler": sampler,
            "num_chains": int(num_chains),
            "num_warmup": int(num_warmup),
            "num_draws": int(num_draws),
            "num_leapfrog_steps": int(num_leapfrog_steps),
            "max_tree_depth": int(max_tree_depth),
            "step_size": float(step_size),
            "adaptation": adaptation,
            "target_accept": None if target_accept is None else float(target_accept),
            "chain_method": chain_method,
            "dtype": dtype,
            "seed": int(seed),
            "standardize": None if standardize is None else bool(standardize),
            "store_log_likelihood": bool(store_log_likelihood),
            "relabel": relabel,
            "start_candidates": int(start_candidates),
        }
        self.n_components = int(n_components)
        self.priors = priors
        self.target = target
        self.num_chains = int(num_chains)
        self.seed = int(seed)
        self.dtype = dtype
        self.standardize = standardize
        self.store_log_likelihood = store_log_likelihood
        self.relabel = relabel
        self.start_candidates = int(start_candidates)
        self.sampler_settings = SamplerSettings(
            sampler=sampler,
            num_warmup=int(num_warmup),
            num_draws=int(num_draws),
            num_leapfrog_steps=int(num_leapfrog_steps),
            max_tree_depth=int(max_tree_depth),
            step_size=float(step_size),
            adaptation=adaptation,
            target_accept=None if target_accept is None else float(target_accept),
            num_adaptation_steps=min(TUTORIAL_SAMPLER.num_adaptation_steps, int(num_warmup)),
            chain_method=chain_method,
        )

    def _resolve_priors(self, num_features: int) -> tuple[Priors, str, bool]:
        if isinstance(self.priors, Priors):
            priors, name = self.priors, "custom"
        elif self.priors == "tutorial":
            priors, name = tutorial_priors(num_features), "tutorial"
        else:
            priors, name = default_priors(self.n_components, num_features), "default"
        validate_priors(priors)
        if priors.num_components != self.n_components or priors.num_features != num_features:
            raise ValueError(
                f"priors are for K={priors.num_components}, D={priors.num_features}; "
                f"the model has K={self.n_components}, D={num_features}"
            )
        standardize = self.standardize if self.standardize is not None else name == "default"
        return priors, name, standardize

    def fit(
        self,
        X,
        *,
        feature_names: list[str] | None = None,
        initial: Params | None = None,
        progress: bool = False,
        source: str = "data",
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_interval: float = 30.0,
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
        check_num_components(data, self.n_components, source)
        d = data.shape[1]
        names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(d)]
        if len(names) != d:
            raise ValueError(f"{len(names)} feature names for {d} features")
        plan = _checkpoint_plan(
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
        plan: _CheckpointPlan | None,
        initial: Params | None = None,
        resumed: Checkpoint | None = None,
    ) -> FitResult:
        """Sample and summarise; from ``resumed``'s starts and state when given."""
        d = data.shape[1]
        priors, priors_name, standardize = self._resolve_priors(d)

        scaler = Standardizer.fit(data, source=source) if standardize else None
        model_data = scaler.transform(data) if scaler else data
        if resumed is not None:
            starts = resumed.starts  # the start search is done already
        elif initial is None:
            scored = _subsample(model_data, self.seed, size=10_000)
            starts = kmeans_plus_plus_starts(
                self.seed,
                model_data,
                self.n_components,
                self.num_chains,
                num_candidates=self.start_candidates,
                score=_log_joint_scorer(scored, priors, self.target),
            )
        else:
            starts = _starts_in_model_units(initial, scaler, self.num_chains)

        dtype = DTYPES[self.dtype]
        settings = self.sampler_settings
        if settings.chain_method == "auto":
            data_bytes = likelihood_data_bytes(model_data.shape, dtype, settings)
            settings = settings._replace(
                chain_method=default_chain_method(self.num_chains, data_bytes)
            )
        if scaler is not None:
            # Standardised again when the sampler asks (after compiling), so that this N x D
            # copy is not in memory while it compiles and samples.
            del model_data
            sampler_data = DeferredData(data.shape, lambda: scaler.transform(data))
        else:
            sampler_data = data
        on_chunk = None
        if plan is not None:
            fixed = Checkpoint(
                # The layout resolved: a resumed run must run the chains as this one did.
                settings=self._arguments | {"chain_method": settings.chain_method},
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
        try:
            run = sample_posterior(
                jax.random.key(self.seed),
                sampler_data,
                priors,
                starts,
                settings,
                target=self.target,
                dtype=dtype,
                progress=progress,
                resume_from=None if resumed is None else resumed.state,
                on_chunk=on_chunk,
            )
        except StopRequested as stop:
            state = stop.state
            raise Interrupted(
                plan.directory, state.steps_done, state.num_chains * state.num_steps
            ) from None
        # Results in float64 whatever the run's dtype; counts and flags keep their types.
        draws = {
            name: np.asarray(value, np.float64)
            if np.issubdtype(value.dtype, np.floating)
            else value
            for name, value in run.draws.items()
        }
        if scaler is not None:
            draws["means"] = scaler.means_to_data(draws["means"])
            draws["chol_precision"] = scaler.chol_precision_to_data(draws["chol_precision"])
        relabel = self.relabel
        if relabel == "auto":
            relabel = "pivot" if is_exchangeable(priors) and self.n_components > 1 else "none"
        _count_and_relabel(draws, data, relabel, self.seed)
        pointwise = _pointwise_log_likelihood(draws, data) if self.store_log_likelihood else None

        s = settings
        record = {
            "sampler": s.sampler,
            "target": self.target,
            "priors": priors_name,
            "adaptation": s.adaptation,
            "target_accept": (s.target_accept or DEFAULT_TARGET_ACCEPT[s.sampler])
            if s.adaptation == "window" and s.sampler != "gibbs"
            else None,
            "num_chains": self.num_chains,
            "num_warmup": s.num_warmup,
            "num_draws": s.num_draws,
            "num_leapfrog_steps": s.num_leapfrog_steps if s.sampler == "hmc" else None,
            "max_tree_depth": s.max_tree_depth if s.sampler == "nuts" else None,
            "initial_step_size": s.step_size,
            "step_size": float(np.mean(run.tuning.step_size)),
            "chain_method": s.chain_method,
            "dtype": self.dtype,
            "seed": self.seed,
            "standardized": bool(standardize),
            "relabel": relabel,
        }
        # NetCDF attributes have no booleans.
        attrs = {
            k: int(v) if isinstance(v, bool) else v for k, v in record.items() if v is not None
        }
        attrs.update(_versions())
        attrs["priors_json"] = _priors_json(priors)
        if scaler is not None:
            attrs["standardizer_center"] = scaler.center.tolist()
            attrs["standardizer_scale"] = scaler.scale.tolist()
        idata = build_inference_data(draws, data, names, attrs, pointwise)
        summary = summarize(idata)
        timing = {
            "compile_seconds": run.compile_seconds,
            "sampling_seconds": run.sampling_seconds,
            "total_seconds": time.perf_counter() - start_time,
        }
        idata.posterior.attrs.update(timing)
        if plan is not None and not plan.keep:
            remove_checkpoint(plan.directory)  # the results supersede it
        return FitResult(idata, summary, record, timing)

    @classmethod
    def _from_settings(cls, settings: dict[str, Any], priors: Priors | None) -> BayesianGMM:
        """The model a checkpoint's ``settings`` describe."""
        arguments = dict(settings)
        if arguments.get("priors") == "custom":
            arguments["priors"] = priors
        try:
            return cls(arguments.pop("n_components"), **arguments)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"the checkpoint's settings do not make a model: {exc}") from None


class _CheckpointPlan(NamedTuple):
    directory: Path
    interval: float
    should_stop: Callable[[], bool] | None
    extra: dict[str, Any]
    keep: bool


def _checkpoint_plan(directory, interval, should_stop, extra, keep) -> _CheckpointPlan | None:
    """Check fit's checkpoint arguments; None: no checkpoint."""
    if directory is None:
        if should_stop is not None:
            raise ValueError("should_stop needs a checkpoint_dir to keep the stopped run in")
        return None
    if not interval >= 0:
        raise ValueError(f"checkpoint_interval must be >= 0 seconds, got {interval!r}")
    extra = {} if extra is None else extra
    try:
        # Written as JSON with every checkpoint: refuse what cannot be, before sampling.
        json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"extra must be a JSON-able dict: {exc}") from None
    if not isinstance(extra, dict):
        raise ValueError(f"extra must be a JSON-able dict, got {type(extra).__name__}")
    # The directory that holds .bgmm-checkpoint, whichever of the two was named.
    return _CheckpointPlan(
        checkpoint_path(directory).parent, float(interval), should_stop, extra, bool(keep)
    )


def _as_data(X) -> np.ndarray:
    """``X`` as a finite float64 array (N, D)."""
    data = np.asarray(X, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] < 1:
        raise ValueError(f"X must have shape (N, D), got {np.shape(X)}")
    if not np.all(np.isfinite(data)):
        row, col = np.argwhere(~np.isfinite(data))[0]
        raise ValueError(f"X has a non-finite value at row {row + 1}, column {col + 1}")
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
    model = BayesianGMM._from_settings(checkpoint.settings, checkpoint.priors)
    if checkpoint_interval is None:
        checkpoint_interval = checkpoint.fit["checkpoint_interval"]
    plan = _checkpoint_plan(
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


def demo_model(
    target: str = "correct",
    *,
    num_chains: int | None = None,
    num_warmup: int | None = None,
    num_draws: int | None = None,
    seed: int = 0,
    dtype: str = "float64",
    chain_method: str = "auto",
    sampler: str = "hmc",
    relabel: str = "auto",
) -> BayesianGMM:
    """The model :func:`demo` fits: the tutorial's priors and, for ``target="tutorial"``,
    its sampler configuration."""
    t = TUTORIAL_SAMPLER
    if target == "tutorial":
        defaults = {
            "num_chains": t.num_chains,
            "num_warmup": t.num_burnin,
            "num_draws": t.num_draws,
        }
        if sampler != "hmc":
            raise ValueError(
                f"the tutorial's configuration is HMC; --sampler {sampler} needs --target correct"
            )
        sampler_options = {
            "num_leapfrog_steps": t.num_leapfrog_steps,
            "step_size": t.step_size,
            "adaptation": "tutorial",
        }
    else:
        defaults = {"num_chains": 4, "num_warmup": 500, "num_draws": 1000}
        sampler_options = {"sampler": sampler}
    return BayesianGMM(
        3,
        priors="tutorial",
        target=target,
        num_chains=num_chains if num_chains is not None else defaults["num_chains"],
        num_warmup=num_warmup if num_warmup is not None else defaults["num_warmup"],
        num_draws=num_draws if num_draws is not None else defaults["num_draws"],
        chain_method=chain_method,
        dtype=dtype,
        seed=seed,
        relabel=relabel,
        **sampler_options,
    )


def demo(
    target: str = "correct",
    *,
    progress: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_interval: float = 30.0,
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


def _starts_in_model_units(initial: Params, scaler: Standardizer | None, num_chains: int) -> Params:
    weights, means, chol = (np.asarray(a, np.float64) for a in initial)
    if weights.ndim == 1:
        weights, means, chol = (
            np.repeat(a[None], num_chains, axis=0) for a in (weights, means, chol)
        )
    if weights.shape[0] != num_chains:
        raise ValueError(f"initial values for {weights.shape[0]} chains, expected {num_chains}")
    if scaler is not None:
        means = (means - scaler.center) / scaler.scale
        chol = chol * scaler.scale[:, None]  # diag(scale) L: the inverse of chol_precision_to_data
    return Params(weights, means, chol)


def _count_and_relabel(draws: dict, data: np.ndarray, relabel: str, seed: int) -> None:
    """Add ``num_occupied`` and, unless ``relabel == "none"``, relabel the draws in place.

    Both use the classification probabilities of (a subsample of) the observations. A
    component is occupied when it expects at least one of the N observations; Gibbs runs
    bring their own count, from the sampled assignments.
    """
    subsample = _subsample(data, seed)
    params = (draws["weights"], draws["means"], draws["chol_precision"])
    # Stephens needs every probability; the occupancy only their sums over observations.
    probabilities = None
    if relabel == "stephens":
        probabilities = classification_probabilities(subsample, *params)
    if "num_occupied" not in draws:
        if probabilities is None:
            counts = expected_counts(subsample, *params)
        else:
            counts = probabilities.sum(axis=2)
        draws["num_occupied"] = np.sum(counts * (len(data) / len(subsample)) >= 1.0, axis=-1)
    if relabel == "none":
        return
    perms = pivot_permutations(draws["means"], draws["chol_precision"], draws["lp"])
    if relabel == "stephens":
        perms = stephens_permutations(probabilities, initial=perms)
    for name in ("weights", "means", "chol_precision"):
        draws[name] = apply_permutations(draws[name], perms)
    draws["label_permutation"] = perms


def _log_joint_scorer(data: np.ndarray, priors: Priors, target: str):
    """Log posterior of a batch of candidate starts, on (a subsample of) the data."""
    y = jnp.asarray(data)

    # The data are an argument, never a constant of the compiled program: a constant would
    # be written into the on-disk compilation cache with the program.
    @jax.jit
    def score(candidates: Params, y: jax.Array) -> jax.Array:
        return jax.vmap(lambda p: log_joint(p, y, priors, target))(candidates)

    return lambda candidates: score(Params(*(jnp.asarray(a) for a in candidates)), y)


def _subsample(data: np.ndarray, seed: int, size: int = 1000) -> np.ndarray:
    """At most ``size`` observations for the relabelling and occupancy computations, whose
    memory grows as draws x observations x components."""
    if len(data) <= size:
        return data
    rng = np.random.default_rng(seed)
    return data[np.sort(rng.choice(len(data), size, replace=False))]


def _pointwise_log_likelihood(draws: dict[str, np.ndarray], data: np.ndarray) -> np.ndarray:
    """log p(y_i | draw) for every draw, shape (C, S, N), in batches to bound memory."""
    params = Params(draws["weights"], draws["means"], draws["chol_precision"])
    c, s = params.weights.shape[:2]
    flat = jax.tree.map(lambda a: jnp.asarray(a.reshape(c * s, *a.shape[2:])), params)
    per_draw = jax.jit(  # the data as an argument: no constant in the cached program
        lambda p, y: jax.lax.map(lambda q: pointwise_log_likelihood(q, y), p, batch_size=16)
    )
    return np.asarray(per_draw(flat, jnp.asarray(data))).reshape(c, s, -1)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    device = jax.devices()[0]
    return {
        "bgmm_version": md.version("bgmm"),
        "jax_version": jax.__version__,
        "numpy_version": np.__version__,
        "device": f"{device.platform}:{getattr(device, 'device_kind', '')}",
    }


def _priors_json(priors: Priors) -> str:
    import json

    return json.dumps(
        {
            "concentration": np.asarray(priors.concentration).tolist(),
            "mean_loc": np.asarray(priors.mean_loc).tolist(),
            "mean_scale": float(priors.mean_scale),
            "wishart_df": float(priors.wishart_df),
            "wishart_scale": np.asarray(priors.wishart_scale).tolist(),
        }
    )
