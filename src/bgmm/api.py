"""The friendly front: the estimator ``BayesianGMM(...).fit(X)`` in scikit-learn's manner,
and ``demo()`` and ``resume()`` returning a :class:`bgmm.fit_result.FitResult`.

The steps of a fit are :func:`bgmm.fitting.run_fit`; every option and its default is in
:class:`bgmm.config.RunConfig`.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bgmm.assignments import Memberships
from bgmm.checkpoint import (
    DEFAULT_CHECKPOINT_INTERVAL,
    CheckpointError,
    checkpoint_plan,
    describe_data,
    has_checkpoint,
    read_checkpoint,
)
from bgmm.coclustering import PointPartition, Similarity
from bgmm.config import RunConfig, defaults, demo_config, parameters_doc, signature
from bgmm.data import check_num_components
from bgmm.diagnostics import ESS_LIMIT, RHAT_LIMIT
from bgmm.errors import NotFittedError, UserError
from bgmm.fit_result import SIMILARITY_ROWS, FitResult, as_data
from bgmm.fitting import run_fit
from bgmm.model.transforms import Params
from bgmm.tutorial import tutorial_data, tutorial_start

__all__ = ["BayesianGMM", "FitResult", "demo", "demo_model", "resume"]


class BayesianGMM:
    """Bayesian Gaussian mixture sampled with HMC, NUTS or Gibbs, as a scikit-learn
    estimator.

    ``BayesianGMM(n_components, **options)`` keeps its options as attributes of the same
    names (``get_params`` / ``set_params``); their defaults, meanings and checks are those
    of :class:`bgmm.config.RunConfig` (listed below), which :attr:`config` builds. As in
    scikit-learn, options are checked by ``fit`` (or by reading ``config``): a bad one
    raises :class:`bgmm.errors.UserError` naming it; an unknown one ``TypeError`` here.

    ``fit(X)`` samples the posterior and returns the estimator, with the fitted attributes
    below. scikit-learn's ``BayesianGaussianMixture`` names are used where the concept is
    the same: ``n_components``, ``covariance_type``, ``random_state``, ``n_init`` (here:
    k-means++ clusterings tried per chain, the best start kept).

    Attributes
    ----------
    result_ : FitResult
        The run: draws (``idata``), summary, settings and timings.
    idata_ : arviz.InferenceData
        The relabelled draws in data units (``result_.idata``).
    weights_ : array, shape (K,)
        Posterior mean of the mixture weights.
    means_ : array, shape (K, D)
        Posterior mean of the component means.
    covariances_ : array
        Posterior mean of the component covariance matrices, in scikit-learn's shape for
        ``covariance_type``: (K, D, D) full, (K, D) diag, (D, D) tied, (K,) spherical.
    precisions_ : array
        Posterior mean of the component precision matrices, shaped as ``covariances_``.
    converged_ : bool
        Every monitored quantity has R-hat <= 1.01 and bulk and tail ESS >= 400
        (:mod:`bgmm.diagnostics`); the summary's warnings say which do not.
    n_features_in_ : int
    feature_names_in_ : array of str, shape (D,)
        Only when ``X`` was a table with string column names (a pandas DataFrame).
    """

    def __init__(self, n_components: int = 3, **options: Any) -> None:
        unknown = sorted(set(options) - set(defaults()))
        if unknown:
            raise TypeError(f"BayesianGMM got an unexpected keyword argument {unknown[0]!r}")
        # scikit-learn's convention: keep the options as given, check them in fit.
        self.n_components = n_components
        for name, default in defaults().items():
            if name != "n_components":
                setattr(self, name, options.get(name, default))

    def __repr__(self) -> str:
        changed = {
            k: v for k, v in self.get_params().items() if k == "n_components" or _changed(k, v)
        }
        return f"BayesianGMM({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    __init__.__signature__ = signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("n_components", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=3),
        ]
    )
    __doc__ = (__doc__ or "") + parameters_doc()

    @property
    def config(self) -> RunConfig:
        """The options checked, as a :class:`bgmm.config.RunConfig`."""
        return RunConfig(**self.get_params())

    @classmethod
    def from_config(cls, config: RunConfig) -> BayesianGMM:
        """The model that runs ``config``."""
        return cls(**{name: getattr(config, name) for name in defaults()})

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The options, by name (scikit-learn's ``get_params``; ``deep`` changes nothing:
        no option is an estimator)."""
        return {name: getattr(self, name) for name in defaults()}

    def set_params(self, **params: Any) -> BayesianGMM:
        """Change options (checked by the next ``fit``); returns the estimator."""
        for name, value in params.items():
            if name not in defaults():
                raise UserError(
                    f"not an option of BayesianGMM (valid: {', '.join(defaults())})", option=name
                )
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        """What scikit-learn's clone, Pipeline and checks need to know about the estimator."""
        # Called only by scikit-learn, so importing it here adds no dependency.
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type="density_estimator", target_tags=TargetTags(required=False))

    def fit(
        self,
        X,
        y: None = None,
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
    ) -> BayesianGMM:
        """Sample the posterior given data ``X``.

        Parameters
        ----------
        X : array-like or DataFrame, shape (N, D)
            Finite values, N >= n_components. With ``split_rows`` on JAX's distributed
            runtime, this process's block of the rows: every process calls ``fit`` with its
            own block and the same options, and the data are the blocks in process order.
        y : None
            Ignored (scikit-learn's signature).
        feature_names : list of D str, optional
            By default a DataFrame's column names, else ``x0 ... x{D-1}``.
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
        BayesianGMM
            The estimator, fitted.

        Raises
        ------
        bgmm.checkpoint.Interrupted
            When ``should_stop`` asked the run to stop; the checkpoint is written.
        """
        start_time = time.perf_counter()
        config = self.config
        data = as_data(X)
        if len(data) < 2:  # scikit-learn's words
            raise UserError(
                f"n_samples = {len(data)}: a mixture needs at least 2 observations", option="X"
            )
        check_num_components(data, config.n_components, source)
        d = data.shape[1]
        table_names = _column_names(X)
        if feature_names is None:
            feature_names = table_names or [f"x{j}" for j in range(d)]
        names = [str(name) for name in feature_names]
        if len(names) != d:
            raise UserError(f"{len(names)} names for {d} features", option="feature_names")
        plan = checkpoint_plan(
            checkpoint_dir, checkpoint_interval, should_stop, extra, keep_checkpoint
        )
        if plan is not None and config.split_rows:
            raise UserError(
                "a run on split rows keeps no checkpoint (its state is on several processes)",
                option="checkpoint_dir",
            )
        if plan is not None and has_checkpoint(plan.directory):
            raise CheckpointError(
                f"{plan.directory} holds the checkpoint of an unfinished run: resume it "
                "(bgmm.api.resume) or delete it (bgmm.checkpoint.remove_checkpoint)"
            )
        result = run_fit(
            config, data, names, source, start_time, progress=progress, plan=plan, initial=initial
        )
        self._set_fitted(result, table_names)
        return self

    def _set_fitted(self, result: FitResult, table_names: list[str] | None) -> None:
        """The fitted attributes (scikit-learn's trailing underscores) read off ``result``."""
        posterior = result.idata.posterior
        summary = result.summary
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("_")]:
            delattr(self, name)  # nothing left over from an earlier fit
        self.result_ = result
        self.idata_ = result.idata
        self.weights_ = np.asarray(summary["weights_mean"])
        self.means_ = np.asarray(summary["means_mean"])
        chol = posterior["chol_precision"].values
        covariance_type = self.config.covariance_type
        self.covariances_ = _sklearn_shape(np.asarray(summary["covariance_mean"]), covariance_type)
        self.precisions_ = _sklearn_shape(
            np.mean(chol @ np.swapaxes(chol, -1, -2), axis=(0, 1)), covariance_type
        )
        self.converged_ = bool(
            summary["rhat_max"] <= RHAT_LIMIT
            and min(summary["ess_bulk_min"], summary["ess_tail_min"]) >= ESS_LIMIT
        )
        self.n_features_in_ = posterior.sizes["feature"]
        if table_names is not None:
            self.feature_names_in_ = np.asarray(table_names, dtype=object)

    def _fitted_result(self, X) -> tuple[FitResult, Any]:
        """The fit's result and ``X`` checked against the fit's features (scikit-learn's
        messages)."""
        if not hasattr(self, "result_"):
            raise NotFittedError("this BayesianGMM is not fitted yet: call fit(X) before using it")
        names = _column_names(X)
        fitted_names = getattr(self, "feature_names_in_", None)
        if names is not None and fitted_names is not None and list(fitted_names) != names:
            raise UserError(
                f"the feature names differ from those seen in fit ({list(fitted_names)}, "
                f"now {names})",
                option="X",
            )
        data = as_data(X)
        if data.shape[1] != self.n_features_in_:
            raise UserError(
                f"X has {data.shape[1]} features, but BayesianGMM is expecting "
                f"{self.n_features_in_} features as input",
                option="X",
            )
        return self.result_, data

    def memberships(self, X) -> Memberships:
        """Posterior mean and sd of the membership probabilities of ``X`` (N, D): each
        (N, K), components as in ``weights_`` (:meth:`FitResult.memberships`)."""
        result, data = self._fitted_result(X)
        return result.memberships(data)

    def predict_proba(self, X) -> np.ndarray:
        """Membership probabilities of ``X`` (N, D) averaged over the posterior, (N, K);
        their posterior sd is :meth:`memberships`."""
        return self.memberships(X).mean

    def predict(self, X) -> np.ndarray:
        """The most probable component of each row of ``X`` (N, D): labels (N,)."""
        return np.argmax(self.predict_proba(X), axis=1)

    def fit_predict(self, X, y: None = None, **fit_options: Any) -> np.ndarray:
        """``fit(X)``, then the labels (N,) of its rows."""
        return self.fit(X, **fit_options).predict(X)

    def similarity(self, X, max_rows: int = SIMILARITY_ROWS) -> Similarity:
        """The posterior probability that two rows of ``X`` (N, D) share a component: an
        (M, M) matrix on M = min(N, max_rows) rows (:meth:`FitResult.similarity`)."""
        result, data = self._fitted_result(X)
        return result.similarity(data, max_rows=max_rows, seed=self.config.random_state)

    def point_partition(
        self, X, loss: str = "vi", max_rows: int = SIMILARITY_ROWS
    ) -> PointPartition:
        """The clustering of the rows of ``X`` (N, D) that minimises the posterior expected
        loss, "vi" or "binder" (:meth:`FitResult.point_partition`)."""
        result, data = self._fitted_result(X)
        return result.point_partition(
            data, loss=loss, max_rows=max_rows, seed=self.config.random_state
        )

    def score_samples(self, X) -> np.ndarray:
        """log posterior predictive density of each row of ``X`` (N, D), shape (N,)."""
        result, data = self._fitted_result(X)
        return result.score_samples(data)

    def score(self, X, y: None = None) -> float:
        """Mean log posterior predictive density of the rows of ``X`` (N, D)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``n_samples`` points from the posterior predictive distribution, drawn with
        ``random_state``: X (n_samples, D) and their components (n_samples,)."""
        if not hasattr(self, "result_"):
            raise NotFittedError("this BayesianGMM is not fitted yet: call fit(X) before using it")
        return self.result_.sample(n_samples, random_state=self.config.random_state)


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
    data = as_data(X)
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
    if checkpoint_interval is None:
        checkpoint_interval = checkpoint.fit["checkpoint_interval"]
    plan = checkpoint_plan(
        checkpoint_dir, checkpoint_interval, should_stop, checkpoint.extra, keep_checkpoint
    )
    return run_fit(
        config,
        data,
        list(checkpoint.fit["feature_names"]),
        source,
        start_time,
        progress=progress,
        plan=plan,
        resumed=checkpoint,
    )


def _sklearn_shape(matrices: np.ndarray, covariance_type: str) -> np.ndarray:
    """(K, D, D) matrices of a structure in scikit-learn's shape for it: full (K, D, D),
    diag (K, D), tied (D, D), spherical (K,)."""
    if covariance_type == "diag":
        return np.diagonal(matrices, axis1=1, axis2=2).copy()
    if covariance_type == "tied":
        return matrices.mean(axis=0)  # equal in every component
    if covariance_type == "spherical":
        return np.diagonal(matrices, axis1=1, axis2=2).mean(axis=1)
    return matrices


def _column_names(X) -> list[str] | None:
    """A table's column names when they are all strings (scikit-learn's rule), else None."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = list(columns)
    return names if names and all(isinstance(n, str) for n in names) else None


def _changed(name: str, value: Any) -> bool:
    """Whether option ``name`` is not at its default (custom priors always are)."""
    default = defaults()[name]
    return not (type(value) is type(default) and value == default)


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
    those of :func:`demo_model` (num_chains, num_warmup, num_draws, random_state, dtype,
    chain_method, sampler, relabel); the checkpoint arguments are those of
    :meth:`BayesianGMM.fit` (resume with ``resume(checkpoint_dir, tutorial_data())``).
    """
    model = demo_model(target, **options)
    fitted = model.fit(
        tutorial_data(),
        initial=Params(*tutorial_start()),
        progress=progress,
        checkpoint_dir=checkpoint_dir,
        checkpoint_interval=checkpoint_interval,
        should_stop=should_stop,
        extra=extra,
        keep_checkpoint=keep_checkpoint,
    )
    return fitted.result_
