"""Results at the edge: the ArviZ InferenceData, NetCDF files and the run summary."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bgmm.diagnostics import (
    convergence_warnings,
    detect_component_disagreement,
    detect_mode_disagreement,
    invariant_diagnostics,
)

__all__ = [
    "build_inference_data",
    "check_inference_data",
    "format_summary",
    "inference_data_bytes",
    "load_inference_data",
    "save_inference_data",
    "summarize",
    "to_json",
]

RHAT_LIMIT = 1.01
ESS_LIMIT = 400
# Parameters whose R-hat and ESS decide convergence (the lower triangle of each L_k).
DIAGNOSED = ("weights", "means", "chol_precision")


def build_inference_data(
    draws: dict[str, np.ndarray],
    data: np.ndarray,
    feature_names: list[str],
    attrs: dict[str, Any],
    pointwise_log_likelihood: np.ndarray | None = None,
):
    """Lay the draws out as design.md section 3.

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
    pointwise_log_likelihood : array, shape (C, S, N), optional

    Returns
    -------
    arviz.InferenceData
    """
    import arviz as az

    chol = draws["chol_precision"]
    precision = chol @ np.swapaxes(chol, -1, -2)
    posterior = {
        "weights": draws["weights"],
        "means": draws["means"],
        "chol_precision": chol,
        "precision": precision,
        "covariance": np.linalg.inv(precision),
        "lp": draws["lp"],
    }
    stat_names = (
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
    sample_stats = {name: draws[name] for name in stat_names if name in draws}
    if "lp_target" in draws:
        sample_stats["lp"] = draws["lp_target"]
    matrix_dims = ["component", "feature", "feature_"]
    dims = {
        "weights": ["component"],
        "means": ["component", "feature"],
        "chol_precision": matrix_dims,
        "precision": matrix_dims,
        "covariance": matrix_dims,
        "y": ["observation", "feature"],
        "label_permutation": ["component"],
    }
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
        posterior=posterior,
        sample_stats=sample_stats,
        observed_data={"y": np.asarray(data)},
        log_likelihood=log_likelihood,
        coords=coords,
        dims=dims,
    )
    for group in idata.groups():
        idata[group].attrs.update(attrs)
    return idata


def inference_data_bytes(idata) -> bytes:
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


def save_inference_data(idata, path: str | os.PathLike) -> Path:
    """Write NetCDF atomically: a crash, a full disk or bad input never leaves a half-written
    file. The bytes are made in memory (:func:`inference_data_bytes`) and written with plain
    file I/O.

    Raises
    ------
    OSError
        When the file cannot be written (the temporary file is removed).
    """
    data = inference_data_bytes(idata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_inference_data(path: str | os.PathLike):
    """Read a ``posterior.nc`` written by :func:`save_inference_data`."""
    import arviz as az

    return az.from_netcdf(str(path))


_POSTERIOR_DIMS = {
    "weights": ("chain", "draw", "component"),
    "means": ("chain", "draw", "component", "feature"),
    "chol_precision": ("chain", "draw", "component", "feature", "feature_"),
    "covariance": ("chain", "draw", "component", "feature", "feature_"),
}


def check_inference_data(idata) -> None:
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
    posterior = idata.posterior
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
    stats = idata.sample_stats
    for var in stats.data_vars:
        values = stats[var]
        if tuple(values.dims[:2]) != ("chain", "draw") or values.shape[:2] != (
            sizes["chain"],
            sizes["draw"],
        ):
            raise ValueError(
                f"sample_stats {var!r} is not laid out as ({sizes['chain']} chains, "
                f"{sizes['draw']} draws, ...)"
            )
        if values.dtype.kind not in "biuf":
            raise ValueError(f"sample_stats {var!r} holds {values.dtype}, not numbers")


def _lower_triangle_names(var: str, component: int, features: list[str]) -> list[tuple]:
    d = len(features)
    return [(var, component, i, j) for i in range(d) for j in range(i + 1)]


def _flat_parameters(posterior) -> tuple[np.ndarray, list[str]]:
    """(chain, draw, P) array of the diagnosed parameters and their display names."""
    features = [str(f) for f in posterior["feature"].values]
    columns, names = [], []
    weights = posterior["weights"].values
    k = weights.shape[-1]
    for c in range(k):
        columns.append(weights[..., c])
        names.append(f"weights[{c}]")
    means = posterior["means"].values
    for c in range(k):
        for i, f in enumerate(features):
            columns.append(means[..., c, i])
            names.append(f"means[{c}, {f}]")
    chol = posterior["chol_precision"].values
    for c in range(k):
        for _, _, i, j in _lower_triangle_names("chol_precision", c, features):
            columns.append(chol[..., c, i, j])
            names.append(f"chol_precision[{c}, {features[i]}, {features[j]}]")
    return np.stack(columns, axis=-1), names


def _finite_extreme(fn, values: np.ndarray) -> float:
    """max/min over the finite values; NaN when there are none (too few draws)."""
    finite = values[np.isfinite(values)]
    return float(fn(finite)) if finite.size else float("nan")


INVARIANT_QUANTITIES = ("lp", "data_log_likelihood", "num_occupied")


def _label_invariant_checks(stats, warnings: list[str]) -> tuple[dict, dict]:
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


def summarize(idata) -> dict[str, Any]:
    """Posterior means and sds, R-hat, bulk and tail ESS, divergences and warnings.

    Returns
    -------
    dict
        JSON-ready: ``weights_mean`` (K), ``means_mean`` (K x D), ``chol_precision_mean``
        (K x D x D), ``covariance_mean`` (K x D x D) and their ``*_sd``, ``acceptance_rate``,
        ``rhat_max``, ``ess_bulk_min``, ``ess_tail_min``, ``divergences``,
        ``invariant_diagnostics`` (R-hat, ESS, mean and sd of the log density, the data
        log-likelihood and the number of occupied components, computed on the draws as
        sampled, so label switching cannot hide or fake a problem), ``chain_lp_means``,
        ``chains_in_other_modes`` and ``chains_disagreeing_components`` (chain indices),
        ``parameters`` (one row per diagnosed scalar) and ``warnings`` (one line each).
    """
    import arviz as az
    import xarray as xr

    posterior = idata.posterior
    stats = idata.sample_stats
    num_chains = posterior.sizes["chain"]
    num_draws = posterior.sizes["draw"]
    flat, names = _flat_parameters(posterior)
    dataset = xr.Dataset({"theta": (("chain", "draw", "param"), flat)})
    halves = flat
    if num_chains == 1:
        # ArviZ needs two chains for R-hat; one chain's halves give its split R-hat.
        half = num_draws // 2
        halves = np.stack([flat[0, :half], flat[0, half : 2 * half]])
    # Constant parameters (the weight when K = 1) give 0/0 inside ArviZ: NaN, not a warning.
    with np.errstate(divide="ignore", invalid="ignore"):
        rhat = az.rhat(xr.Dataset({"theta": (("chain", "draw", "param"), halves)}))
        rhat = rhat["theta"].values
        ess_bulk = az.ess(dataset, method="bulk")["theta"].values
        ess_tail = az.ess(dataset, method="tail")["theta"].values
        mcse = az.mcse(dataset)["theta"].values
    means_flat = flat.mean(axis=(0, 1))
    sds_flat = flat.std(axis=(0, 1), ddof=1) if num_chains * num_draws > 1 else np.zeros(len(names))

    def moment(var, fn):
        return fn(posterior[var].values, axis=(0, 1)).tolist()

    divergences = int(np.sum(stats["diverging"].values)) if "diverging" in stats else 0
    acceptance = (
        float(np.mean(stats["acceptance_rate"].values)) if "acceptance_rate" in stats else None
    )
    rhat_max = _finite_extreme(np.max, rhat)
    ess_bulk_min = _finite_extreme(np.min, ess_bulk)
    ess_tail_min = _finite_extreme(np.min, ess_tail)
    warnings = convergence_warnings(
        names, flat, rhat, ess_bulk, ess_tail, rhat_limit=RHAT_LIMIT, ess_limit=ESS_LIMIT
    )
    if divergences:
        warnings.append(
            f"{divergences} divergent transition(s) after warm-up: the posterior may be biased; "
            "raise --warmup or lower the step size"
        )
    invariant, modes = _label_invariant_checks(stats, warnings)
    disagreeing = []
    if num_chains > 1:
        disagreeing = detect_component_disagreement(posterior["means"].values)
        if disagreeing and not modes["chains_in_other_modes"]:
            warnings.append(
                f"chains {', '.join(map(str, disagreeing))} describe the components differently "
                "from the other chains even after relabelling: a different clustering of the "
                "data; compare the chains (bgmm summary --json) before trusting the means"
            )
    return {
        "num_chains": int(num_chains),
        "num_draws": int(num_draws),
        "acceptance_rate": acceptance,
        "weights_mean": moment("weights", np.mean),
        "weights_sd": moment("weights", np.std),
        "means_mean": moment("means", np.mean),
        "means_sd": moment("means", np.std),
        "chol_precision_mean": moment("chol_precision", np.mean),
        "covariance_mean": moment("covariance", np.mean),
        "covariance_sd": moment("covariance", np.std),
        "rhat_max": rhat_max,
        "ess_bulk_min": ess_bulk_min,
        "ess_tail_min": ess_tail_min,
        "divergences": divergences,
        "invariant_diagnostics": invariant,
        "chain_lp_means": modes["chain_lp_means"],
        "chains_in_other_modes": modes["chains_in_other_modes"],
        "chains_disagreeing_components": disagreeing,
        "parameters": [
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
                names, means_flat, sds_flat, mcse, ess_bulk, ess_tail, rhat, strict=True
            )
        ],
        "warnings": warnings,
    }


def _fmt(values, digits: int = 4) -> str:
    return np.array2string(np.asarray(values), precision=digits, suppress_small=True)


def format_summary(summary: dict[str, Any], settings: dict[str, Any] | None = None) -> str:
    """The printed report: the tutorial's printout, then a diagnostics table and warnings."""
    lines = []
    if settings:
        lines.append(", ".join(f"{k}={v}" for k, v in settings.items()))
    if summary.get("acceptance_rate") is not None:
        lines.append(f"acceptance_rate: {summary['acceptance_rate']:.4f}")
    lines.append(f"avg mix probs: {_fmt(summary['weights_mean'])}")
    lines.append(f"avg loc:\n{_fmt(summary['means_mean'])}")
    lines.append(f"avg chol(precision):\n{_fmt(summary['chol_precision_mean'])}")
    lines.append(f"avg covariance:\n{_fmt(summary['covariance_mean'])}")
    lines.append("")
    width = max(len(p["name"]) for p in summary["parameters"])
    lines.append(
        f"{'parameter':<{width}} {'mean':>9} {'sd':>8} {'mcse':>8} "
        f"{'ess_bulk':>9} {'ess_tail':>9} {'r_hat':>6}"
    )
    for p in summary["parameters"]:
        lines.append(
            f"{p['name']:<{width}} {p['mean']:>9.4f} {p['sd']:>8.4f} {p['mcse']:>8.4f} "
            f"{p['ess_bulk']:>9.0f} {p['ess_tail']:>9.0f} {p['r_hat']:>6.3f}"
        )
    lines.append("")
    invariant = summary.get("invariant_diagnostics") or {}
    if invariant:
        lines.append("label-invariant (before relabelling):")
        for name, row in invariant.items():
            if row["constant"]:
                lines.append(f"  {name}: constant at {row['mean']:.4g}")
            else:
                lines.append(
                    f"  {name}: mean {row['mean']:.4g}, sd {row['sd']:.3g}, "
                    f"R-hat {row['rhat']:.3f}, bulk ESS {row['ess_bulk']:.0f}"
                )
    lines.append(
        f"chains: {summary['num_chains']}, draws per chain: {summary['num_draws']}, "
        f"R-hat max: {summary['rhat_max']:.3f}, bulk ESS min: {summary['ess_bulk_min']:.0f}, "
        f"tail ESS min: {summary['ess_tail_min']:.0f}, divergences: {summary['divergences']}"
    )
    for warning in summary["warnings"]:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def to_json(record: dict[str, Any]) -> str:
    """One JSON object; NaN and infinities become null so any JSON parser reads it."""

    def clean(value):
        if isinstance(value, float):
            return value if np.isfinite(value) else None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(record))
