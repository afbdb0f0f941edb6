"""A finished run: its draws, summary and settings, and the answers read off its posterior
(memberships, predictive density, predictive draws).

:meth:`bgmm.BayesianGMM.fit` keeps one as ``result_``; :func:`bgmm.resume` and
:func:`bgmm.demo` return one; :meth:`FitResult.load` reads one back from ``posterior.nc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bgmm.assignments import Memberships, membership_probabilities
from bgmm.coclustering import (
    LOSSES,
    PointPartition,
    Similarity,
    point_partition,
    similarity_matrix,
)
from bgmm.errors import UserError
from bgmm.predictive import log_predictive_density, predictive_sample
from bgmm.report import format_summary

__all__ = ["FitResult", "as_data"]

# Rows above which the similarity matrix and the point partition are computed on a random
# subsample of this many (an M x M matrix: 32 MB at 2,000).
SIMILARITY_ROWS = 2000
# The posterior variables that define the mixture, in Params order.
MIXTURE_VARIABLES = ("weights", "means", "chol_precision")


# What a run on split rows records (bgmm.fitting): processes, devices and rows in all.
SPLIT_ROWS_KEYS = ("split_rows_processes", "split_rows_devices", "num_observations")


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

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        """The result saved in ``path`` (a ``posterior.nc``), summarised again."""
        from bgmm.results import load_inference_data, summarize

        idata = load_inference_data(path)
        attrs = dict(idata.posterior.attrs)
        timing_keys = ("compile_seconds", "sampling_seconds", "total_seconds")
        timing = {k: float(attrs[k]) for k in timing_keys if k in attrs}
        return cls(idata, summarize(idata), attrs, timing)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` record: settings, posterior summary and timings."""
        keys = ("sampler", "target", "num_chains", "num_draws", "num_warmup", "priors", "dtype")
        record = {k: self.settings[k] for k in keys}
        # Results written before covariance structures existed are 'full'.
        record["covariance_type"] = self.settings.get("covariance_type", "full")
        # HMC's mean path length; the warm-up's subsample; where the rows were, when split;
        # and a run to a target ESS: the target and whether it was reached.
        for key in (
            "path_length_steps",
            "warmup_rows",
            "target_ess",
            "converged",
            *SPLIT_ROWS_KEYS,
        ):
            if self.settings.get(key) is not None:
                record[key] = self.settings[key]
        record.update(
            {k: v for k, v in self.summary.items() if k not in ("num_chains", "num_draws")}
        )
        record.update(self.timing)
        return record

    def report(self) -> str:
        """The printed summary."""
        shown = ("sampler", "target", "adaptation", "num_chains", "num_warmup", "num_draws")
        shown += ("target_ess",)
        settings = {k: self.settings[k] for k in shown if self.settings.get(k) is not None}
        if self.settings.get("covariance_type", "full") != "full":
            settings["covariance_type"] = self.settings["covariance_type"]
        return format_summary(self.summary, settings)

    @property
    def feature_names(self) -> list[str]:
        """The names of the D features, in order."""
        return [str(name) for name in self.idata.posterior["feature"].values]

    def mixture_draws(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (relabelled) draws in data units: weights (C, S, K), means (C, S, K, D),
        chol_precision (C, S, K, D, D)."""
        posterior = self.idata.posterior
        return tuple(posterior[name].values for name in MIXTURE_VARIABLES)

    def memberships(self, X) -> Memberships:
        """Posterior mean and sd of the membership probabilities of ``X`` (N, D), in data
        units, under the (relabelled) draws: the components are the summary's.

        Returns
        -------
        Memberships
            ``mean`` and ``sd``, each (N, K).
        """
        return membership_probabilities(self._checked(X), *self.mixture_draws())

    def predict_proba(self, X) -> np.ndarray:
        """Membership probabilities of ``X`` (N, D) averaged over the posterior, (N, K)."""
        return self.memberships(X).mean

    def predict(self, X) -> np.ndarray:
        """The most probable component of each row of ``X`` (N, D): integer labels (N,)."""
        return np.argmax(self.predict_proba(X), axis=1)

    def score_samples(self, X) -> np.ndarray:
        """log posterior predictive density of each row of ``X`` (N, D), shape (N,)."""
        return log_predictive_density(self._checked(X), *self.mixture_draws())

    def score(self, X) -> float:
        """Mean log posterior predictive density of the rows of ``X`` (N, D)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state: int | None = None):
        """Points drawn from the posterior predictive distribution.

        Returns
        -------
        X : array, shape (n_samples, D)
        labels : array of int, shape (n_samples,)
            The component of each point.
        """
        if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer):
            raise UserError(f"expected a positive integer, got {n_samples!r}", option="n_samples")
        if n_samples < 1:
            raise UserError(f"expected a positive integer, got {n_samples}", option="n_samples")
        rng = np.random.default_rng(random_state)
        return predictive_sample(int(n_samples), *self.mixture_draws(), rng)

    def similarity(self, X, max_rows: int = SIMILARITY_ROWS, seed: int = 0) -> Similarity:
        """The posterior similarity matrix of the rows of ``X`` (N, D): the probability
        that two rows share a component (:func:`bgmm.coclustering.similarity_matrix`).

        Returns
        -------
        Similarity
            ``matrix`` (M, M) and ``rows`` (M,), the rows of ``X`` it is for: all of them,
            or a random subsample of M = ``max_rows`` when N is larger.
        """
        return similarity_matrix(
            self._checked(X), *self.mixture_draws(), max_rows=max_rows, seed=seed
        )

    def point_partition(
        self, X, loss: str = "vi", max_rows: int = SIMILARITY_ROWS, seed: int = 0
    ) -> PointPartition:
        """The clustering of the rows of ``X`` (N, D) that minimises the posterior expected
        loss: variation of information (``"vi"``, Wade and Ghahramani 2018) or Binder's
        (``"binder"``, Dahl 2006); :func:`bgmm.coclustering.point_partition`.

        Returns
        -------
        PointPartition
            ``labels`` (M,) numbered by cluster size, ``rows`` (M,) as for
            :meth:`similarity`, ``expected_loss`` and ``loss``.
        """
        if loss not in LOSSES:
            raise UserError(f"expected one of {', '.join(LOSSES)}, got {loss!r}", option="loss")
        return point_partition(
            self._checked(X), *self.mixture_draws(), loss=loss, max_rows=max_rows, seed=seed
        )

    def save(self, path: str | Path) -> Path:
        """Write the InferenceData as NetCDF (atomically)."""
        from bgmm.results import save_inference_data

        return save_inference_data(self.idata, path)

    def _checked(self, X) -> np.ndarray:
        """``X`` as data with this fit's number of features."""
        data = as_data(X)
        num_features = self.idata.posterior.sizes["feature"]
        if data.shape[1] != num_features:
            raise UserError(f"expected {num_features} features, got {data.shape[1]}", option="X")
        return data


def as_data(X) -> np.ndarray:
    """``X`` (array-like or DataFrame) as a finite float64 array (N, D), refused in
    scikit-learn's words where it has them (its estimator checks look for them).

    Raises
    ------
    UserError
        Sparse, complex, non-numeric, not two-dimensional, no feature, or non-finite.
    TypeError
        Objects that are not numbers (as numpy says).
    """
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise UserError(
            "sparse input is not supported; pass a dense array (X.toarray())", option="X"
        )
    if np.iscomplexobj(X):
        raise UserError("Complex data not supported; expected real numbers", option="X")
    try:
        data = np.asarray(X, dtype=np.float64)
    except ValueError as exc:
        raise UserError(f"expected numbers ({exc})", option="X") from None
    if data.ndim != 2:
        raise UserError(
            f"Expected 2D array, got {data.ndim}D array instead. Reshape your data "
            "(X.reshape(-1, 1) for one feature, X.reshape(1, -1) for one row)",
            option="X",
        )
    if data.shape[1] < 1:
        raise UserError(
            f"0 feature(s) (shape={data.shape}) while a minimum of 1 is required.", option="X"
        )
    if not np.all(np.isfinite(data)):
        row, col = np.argwhere(~np.isfinite(data))[0]
        raise UserError(
            f"{data[row, col]} at row {row + 1}, column {col + 1}: values must be finite "
            "(no NaN or inf)",
            option="X",
        )
    return data
