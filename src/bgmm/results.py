"""Results at the edge: the ArviZ InferenceData, NetCDF files and the run summary."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bgmm.diagnostics import (
    ESS_LIMIT,
    RHAT_LIMIT,
    convergence_statistics,
    convergence_warnings,
    detect_component_disagreement,
    detect_mode_disagreement,
    diagnosed_parameters,
    empty_components_warning,
    invariant_diagnostics,
)
from bgmm.plumbing.files import write_atomically

if TYPE_CHECKING:
    import xarray as xr
    from arviz import InferenceData

__all__ = [
    "build_inference_data",
    "check_inference_data",
    "inference_data_bytes",
    "load_inference_data",
    "run_attributes",
    "save_inference_data",
    "summarize",
]

# Sample statistics copied from the draws when present (``lp_target`` is stored as ``lp``).
_SAMPLE_STATS = (
    "acceptance_rate",
    "step_size",
    "n_steps",
    "diverging",
    "energy",
    "tree_depth",
    "data_log_likelihood",
    "num_occupied",
    "label_permutation",
)
_MATRIX_DIMS = ("component", "feature", "feature_")
# Dimensions after (chain, draw) of every variable that has any.
_DIMS = {
    "weights": ("component",),
    "means": ("component", "feature"),
    "chol_precision": _MATRIX_DIMS,
    "precision": _MATRIX_DIMS,
    "covariance": _MATRIX_DIMS,
    "y": ("observation", "feature"),
    "label_permutation": ("component",),
}


def build_inference_data(
    draws: dict[str, np.ndarray],
    data: np.ndarray,
    feature_names: list[str],
    attrs: dict[str, Any],
    pointwise_log_likelihood: np.ndarray | None = None,
    log_likelihood_thinning: int = 1,
) -> InferenceData:
    """Lay the draws out as docs/design.md section 3.

    Parameters
    ----------
    draws : dict
        ``weights`` (C, S, K), ``means`` (C, S, K, D), ``chol_precision`` (C, S, K, D, D),
        ``lp`` (C, S), all in data units; the sample statistics ``acceptance_rate``,
        ``step_size``, ``n_steps``, ``diverging``, ``energy``, ``lp_target``,
        ``data_log_likelihood``, ``num_occupied`` and for NUTS ``tree_depth`` (C, S); and,
        after relabelling, ``label_permutation`` (C, S, K): the raw component that got
        each label.
    data : array, shape (N, D), in data units
    feature_names : list of D str
    attrs : dict of str, number or list values, stored on every group
    pointwise_log_likelihood : array, shape (C, S', N), optional
        For every ``log_likelihood_thinning``-th draw of each chain: S' = ceil(S / t).
    log_likelihood_thinning : int
        t; the log-likelihood group's draw coordinates are those of the kept draws.

    Returns
    -------
    arviz.InferenceData
    """
    import arviz as az

    coords = {
        "component": np.arange(draws["weights"].shape[-1]),
        "feature": list(feature_names),
        "feature_": list(feature_names),
        "observation": np.arange(len(data)),
    }
    log_likelihood = None
    if pointwise_log_likelihood is not None:
        log_likelihood = {"y": pointwise_log_likelihood}
    idata = az.from_dict(
        posterior=_posterior_variables(draws),
        sample_stats=_sample_stats(draws),
        observed_data={"y": np.asarray(data)},
        log_likelihood=log_likelihood,
        coords=coords,
        dims={name: list(dims) for name, dims in _DIMS.items()},
    )
    if log_likelihood is not None and log_likelihood_thinning > 1:
        kept = idata.posterior["draw"].values[::log_likelihood_thinning]
        idata.log_likelihood = idata.log_likelihood.assign_coords(draw=kept)
    for group in idata.groups():
        idata[group].attrs.update(attrs)
    return idata


def _posterior_variables(draws: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The posterior group: the draws' parameters and ``lp``, with the precision L L' and the
    covariance (L L')^-1 (C, S, K, D, D) worked out from the Cholesky factors."""
    chol = draws["chol_precision"]
    precision = chol @ np.swapaxes(chol, -1, -2)
    return {
        "weights": draws["weights"],
        "means": draws["means"],
        "chol_precision": chol,
        "precision": precision,
        "covariance": np.linalg.inv(precision),
        "lp": draws["lp"],
    }


def _sample_stats(draws: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The sample_stats group: the statistics present in ``draws``, ``lp_target`` as ``lp``."""
    sample_stats = {name: draws[name] for name in _SAMPLE_STATS if name in draws}
    if "lp_target" in draws:
        sample_stats["lp"] = draws["lp_target"]
    return sample_stats


def inference_data_bytes(idata: InferenceData) -> bytes:
    """The NetCDF-4 (HDF5) file of ``idata``, in memory, as ArviZ's ``to_netcdf`` writes it.

    Every group goes through xarray and h5netcdf into one in-memory buffer, compressed with
    zlib like ArviZ's default. Writing the file from these bytes with plain Python I/O keeps
    HDF5 away from the disk: libhdf5 can crash the process when the disk fills while it
    writes, whereas Python raises ``OSError`` (``ENOSPC``).

    Parameters
    ----------
    idata : arviz.InferenceData

    Returns
    -------
    bytes
        Readable by ``arviz.from_netcdf`` once written to a file.
    """
    import xarray as xr

    buffer = io.BytesIO()
    mode = "w"
    attrs = getattr(idata, "_attrs", None)
    if attrs:
        xr.Dataset(attrs=attrs).to_netcdf(buffer, mode=mode, engine="h5netcdf", group="/")
        mode = "a"
    for group in idata.groups():
        dataset = idata[group]
        encoding = {
            name: {"zlib": True}
            for name, values in dataset.variables.items()
            if values.dtype.kind in "biufcS"
        }
        dataset.to_netcdf(buffer, mode=mode, engine="h5netcdf", group=group, encoding=encoding)
        mode = "a"
    return buffer.getvalue()


def save_inference_data(idata: InferenceData, path: str | os.PathLike) -> Path:
    """Write NetCDF atomically: a crash, a full disk or bad input never leaves a half-written
    file. The bytes are made in memory (:func:`inference_data_bytes`) and written with plain
    file I/O.

    Raises
    ------
    OSError
        When the file cannot be written (the temporary file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, inference_data_bytes(idata))


def load_inference_data(path: str | os.PathLike) -> InferenceData:
    """Read a ``posterior.nc`` written by :func:`save_inference_data`."""
    import arviz as az

    return az.from_netcdf(str(path))


_POSTERIOR_DIMS = {
    "weights": ("chain", "draw", "component"),
    "means": ("chain", "draw", "component", "feature"),
    "chol_precision": ("chain", "draw", "component", "feature", "feature_"),
    "covariance": ("chain", "draw", "component", "feature", "feature_"),
}


def check_inference_data(idata: InferenceData) -> None:
    """Check that ``idata`` has what :func:`summarize` reads, as bgmm writes it.

    Parameters
    ----------
    idata : arviz.InferenceData

    Raises
    ------
    ValueError
        One line saying what is missing or malformed: the ``posterior`` or ``sample_stats``
        group, a posterior variable (``weights``, ``means``, ``chol_precision``,
        ``covariance``) or its dimensions, sizes that disagree, fewer than 2 draws, a
        non-numeric variable, or a sample statistic not laid out as (chain, draw).
    """
    groups = set(idata.groups())
    for group in ("posterior", "sample_stats"):
        if group not in groups:
            raise ValueError(f"no {group!r} group")
    sizes = _posterior_sizes(idata.posterior)
    _check_sample_stats(idata.sample_stats, sizes["chain"], sizes["draw"])


def _posterior_sizes(posterior: xr.Dataset) -> dict[str, int]:
    """The size of every posterior dimension, checked: the variables :func:`summarize` reads
    are there, numeric, agree on sizes and hold enough draws to summarise."""
    sizes: dict[str, int] = {}
    for var, dims in _POSTERIOR_DIMS.items():
        if var not in posterior:
            raise ValueError(f"no {var!r} in the posterior group")
        values = posterior[var]
        if tuple(values.dims) != dims:
            raise ValueError(
                f"posterior {var!r} has dimensions {tuple(values.dims)}, expected {dims}"
            )
        if values.dtype.kind not in "iuf":
            raise ValueError(f"posterior {var!r} holds {values.dtype}, not numbers")
        for dim, size in zip(dims, values.shape, strict=True):
            if sizes.setdefault(dim, size) != size:
                raise ValueError(
                    f"posterior {var!r} has {size} {dim}s, other variables {sizes[dim]}"
                )
    if sizes["feature"] != sizes["feature_"]:
        raise ValueError("posterior matrices are not square (feature vs feature_)")
    if sizes["chain"] < 1 or sizes["draw"] < 2 or sizes["component"] < 1 or sizes["feature"] < 1:
        raise ValueError(
            f"posterior has {sizes['chain']} chains, {sizes['draw']} draws, "
            f"{sizes['component']} components and {sizes['feature']} features; summaries need "
            "at least 1 chain, 2 draws, 1 component and 1 feature"
        )
    return sizes


def _check_sample_stats(stats: xr.Dataset, num_chains: int, num_draws: int) -> None:
    """Every sample statistic is numeric and laid out as (chain, draw, ...) like the posterior."""
    for var in stats.data_vars:
        values = stats[var]
        if tuple(values.dims[:2]) != ("chain", "draw") or values.shape[:2] != (
            num_chains,
            num_draws,
        ):
            raise ValueError(
                f"sample_stats {var!r} is not laid out as ({num_chains} chains, "
                f"{num_draws} draws, ...)"
            )
        if values.dtype.kind not in "biuf":
            raise ValueError(f"sample_stats {var!r} holds {values.dtype}, not numbers")


def _flat_parameters(posterior: xr.Dataset) -> tuple[np.ndarray, list[str]]:
    """The diagnosed parameters, shape (C, S, P), and their P display names
    (:func:`bgmm.diagnostics.diagnosed_parameters`)."""
    return diagnosed_parameters(
        posterior["weights"].values,
        posterior["means"].values,
        posterior["chol_precision"].values,
        str(posterior.attrs.get("covariance_type", "full")),
        [str(f) for f in posterior["feature"].values],
    )


def _finite_extreme(fn, values: np.ndarray) -> float:
    """max/min over the finite values; NaN when there are none (too few draws)."""
    finite = values[np.isfinite(values)]
    return float(fn(finite)) if finite.size else float("nan")


INVARIANT_QUANTITIES = ("lp", "data_log_likelihood", "num_occupied")


def _label_invariant_checks(stats: xr.Dataset, warnings: list[str]) -> tuple[dict, dict]:
    """R-hat/ESS of quantities no relabelling changes, and chains in different modes."""
    quantities = {
        name: np.asarray(stats[name].values, dtype=np.float64)
        for name in INVARIANT_QUANTITIES
        if name in stats
    }
    invariant = invariant_diagnostics(quantities) if quantities else {}
    for name, row in invariant.items():
        if row["flagged"]:
            warnings.append(
                f"R-hat of the label-invariant {name} is {row['rhat']:.3f}: the chains have not "
                "mixed, whatever the labels; run longer"
            )
    empty = {"chain_lp_means": [], "chains_in_other_modes": [], "message": None}
    modes = detect_mode_disagreement(quantities["lp"]) if "lp" in quantities else empty
    if modes["message"]:
        warnings.append(modes["message"])
    return invariant, modes


def summarize(idata: InferenceData) -> dict[str, Any]:
    """Posterior means and sds, R-hat, bulk and tail ESS, divergences and warnings.

    Parameters
    ----------
    idata : arviz.InferenceData
        As :func:`build_inference_data` lays it out (:func:`check_inference_data`).

    Returns
    -------
    dict
        JSON-ready: ``num_chains``, ``num_draws``, ``weights_mean`` and ``weights_sd`` (K),
        ``means_mean`` and ``means_sd`` (K x D), ``chol_precision_mean`` (K x D x D),
        ``covariance_mean`` and ``covariance_sd`` (K x D x D), ``acceptance_rate``,
        ``rhat_max``, ``ess_bulk_min``, ``ess_tail_min``, ``divergences``,
        ``invariant_diagnostics`` (R-hat, ESS, mean and sd of the log density, the data
        log-likelihood and the number of occupied components, computed on the draws as
        sampled, so label switching cannot hide or fake a problem), ``chain_lp_means``,
        ``chains_in_other_modes`` and ``chains_disagreeing_components`` (chain indices),
        ``parameters`` (one row per diagnosed scalar) and ``warnings`` (one line each).
    """
    posterior = idata.posterior
    stats = idata.sample_stats
    flat, names = _flat_parameters(posterior)
    rhat, ess_bulk, ess_tail, mcse = convergence_statistics(flat)
    divergences = int(np.sum(stats["diverging"].values)) if "diverging" in stats else 0
    acceptance = (
        float(np.mean(stats["acceptance_rate"].values)) if "acceptance_rate" in stats else None
    )
    warnings = convergence_warnings(
        names, flat, rhat, ess_bulk, ess_tail, rhat_limit=RHAT_LIMIT, ess_limit=ESS_LIMIT
    )
    if divergences:
        warnings.append(
            f"{divergences} divergent transition(s) after warm-up: the posterior may be biased; "
            "raise --warmup or lower the step size"
        )
    if "num_occupied" in stats:
        empty = empty_components_warning(
            stats["num_occupied"].values, int(posterior.sizes["component"])
        )
        warnings.extend([empty] if empty else [])
    invariant, modes = _label_invariant_checks(stats, warnings)
    disagreeing = _component_disagreement(posterior, modes, warnings)
    if "log_likelihood_note" in posterior.attrs:
        warnings.append(str(posterior.attrs["log_likelihood_note"]))
    return {
        "num_chains": int(posterior.sizes["chain"]),
        "num_draws": int(posterior.sizes["draw"]),
        "acceptance_rate": acceptance,
        **_posterior_moments(posterior),
        "rhat_max": _finite_extreme(np.max, rhat),
        "ess_bulk_min": _finite_extreme(np.min, ess_bulk),
        "ess_tail_min": _finite_extreme(np.min, ess_tail),
        "divergences": divergences,
        "invariant_diagnostics": invariant,
        "chain_lp_means": modes["chain_lp_means"],
        "chains_in_other_modes": modes["chains_in_other_modes"],
        "chains_disagreeing_components": disagreeing,
        "parameters": _parameter_rows(names, flat, mcse, ess_bulk, ess_tail, rhat),
        "warnings": warnings,
    }


def _posterior_moments(posterior: xr.Dataset) -> dict[str, list]:
    """Posterior means and sds over chains and draws, as nested lists (K), (K, D), (K, D, D)."""

    def moment(var: str, fn) -> list:
        return fn(posterior[var].values, axis=(0, 1)).tolist()

    return {
        "weights_mean": moment("weights", np.mean),
        "weights_sd": moment("weights", np.std),
        "means_mean": moment("means", np.mean),
        "means_sd": moment("means", np.std),
        "chol_precision_mean": moment("chol_precision", np.mean),
        "covariance_mean": moment("covariance", np.mean),
        "covariance_sd": moment("covariance", np.std),
    }


def _component_disagreement(
    posterior: xr.Dataset, modes: dict[str, Any], warnings: list[str]
) -> list[int]:
    """Chains whose relabelled means disagree with the others'; warns unless they are already
    reported in another mode (``modes`` from :func:`detect_mode_disagreement`)."""
    if posterior.sizes["chain"] <= 1:
        return []
    disagreeing = detect_component_disagreement(posterior["means"].values)
    if disagreeing and not modes["chains_in_other_modes"]:
        warnings.append(
            f"chains {', '.join(map(str, disagreeing))} describe the components differently "
            "from the other chains even after relabelling: a different clustering of the "
            "data; compare the chains (bgmm summary --json) before trusting the means"
        )
    return disagreeing


def _parameter_rows(
    names: list[str],
    flat: np.ndarray,
    mcse: np.ndarray,
    ess_bulk: np.ndarray,
    ess_tail: np.ndarray,
    rhat: np.ndarray,
) -> list[dict[str, Any]]:
    """One row per diagnosed scalar: its mean, sd, MCSE, ESS and R-hat; ``flat`` (C, S, P),
    the statistics (P,)."""
    num_chains, num_draws = flat.shape[:2]
    means = flat.mean(axis=(0, 1))
    sds = flat.std(axis=(0, 1), ddof=1) if num_chains * num_draws > 1 else np.zeros(len(names))
    return [
        {
            "name": n,
            "mean": float(m),
            "sd": float(s),
            "mcse": float(e),
            "ess_bulk": float(b),
            "ess_tail": float(t),
            "r_hat": float(r),
        }
        for n, m, s, e, b, t, r in zip(
            names, means, sds, mcse, ess_bulk, ess_tail, rhat, strict=True
        )
    ]


def run_attributes(
    record: dict[str, Any],
    priors: Any,
    center: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> dict[str, Any]:
    """A run's record as NetCDF attributes (no booleans, no None), with the versions, the
    priors (JSON) and the standardisation (``center``, ``scale``: (D,) or None)."""
    import importlib.metadata as md

    import jax

    attrs = {k: int(v) if isinstance(v, bool) else v for k, v in record.items() if v is not None}
    device = jax.devices()[0]
    attrs |= {
        "bgmm_version": md.version("bgmm"),
        "jax_version": jax.__version__,
        "numpy_version": np.__version__,
        "device": f"{device.platform}:{getattr(device, 'device_kind', '')}",
        "priors_json": json.dumps(
            {
                "concentration": np.asarray(priors.concentration).tolist(),
                "mean_loc": np.asarray(priors.mean_loc).tolist(),
                "mean_scale": float(priors.mean_scale),
                "wishart_df": float(priors.wishart_df),
                "wishart_scale": np.asarray(priors.wishart_scale).tolist(),
            }
        ),
    }
    if center is not None:
        attrs["standardizer_center"] = np.asarray(center).tolist()
        attrs["standardizer_scale"] = np.asarray(scale).tolist()
    return attrs
