"""What every figure shares: figures never registered with pyplot, PNG writing, the
components' colours, and reading draws and data out of an InferenceData."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr
    from arviz import InferenceData
    from matplotlib.figure import Figure

_DPI = 100


def _new_figure(figsize: tuple[float, float], constrained: bool = True) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained" if constrained else None)


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=_DPI, format="png")
    fig.clear()
    return out


def _component_colors(k: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    if k <= 10:
        cmap = colormaps["tab10"]
        return [cmap(i) for i in range(k)]
    if k <= 20:
        cmap = colormaps["tab20"]
        return [cmap(i) for i in range(k)]
    cmap = colormaps["turbo"]
    return [cmap(x) for x in np.linspace(0.05, 0.95, k)]


def _posterior(idata: InferenceData) -> xr.Dataset:
    try:
        return idata.posterior
    except AttributeError as err:
        raise ValueError("idata has no 'posterior' group") from err


def _coordinate_labels(values: xr.Dataset | xr.DataArray, dim: str, prefix: str) -> list[str]:
    """The labels along ``dim``: its coordinate's values as str, else ``prefix`` + index."""
    if dim in values.coords:
        return [str(v) for v in np.asarray(values.coords[dim].values)]
    return [f"{prefix}{i}" for i in range(values.sizes[dim])]


def _means_array(idata: InferenceData) -> tuple[np.ndarray, list[str]]:
    """Return (draws, feature_names): draws has shape (n_draws, K, D), chains pooled."""
    post = _posterior(idata)
    if "means" not in post:
        raise ValueError("posterior has no 'means' variable")
    means = post["means"]
    if means.ndim != 4 or means.dims[:2] != ("chain", "draw"):
        raise ValueError(
            f"posterior 'means' must have dims (chain, draw, component, feature); got {means.dims}"
        )
    names = _coordinate_labels(means, means.dims[3], "x")
    values = np.asarray(means.values, dtype=float)
    return values.reshape(-1, values.shape[2], values.shape[3]), names


def _mean_weights(idata: InferenceData, k: int) -> np.ndarray | None:
    """The posterior mean weight of each of the ``k`` components, shape (K,); None if absent."""
    post = _posterior(idata)
    if "weights" not in post:
        return None
    w = np.asarray(post["weights"].values, dtype=float)
    if w.ndim < 3 or w.shape[-1] != k:
        return None
    with np.errstate(invalid="ignore"):
        return np.nanmean(w.reshape(-1, k), axis=0)


def _observed(idata: InferenceData) -> np.ndarray | None:
    """The observed data as an (N, D) array; None if absent."""
    try:
        y = idata.observed_data["y"]
    except (AttributeError, KeyError):
        return None
    arr = np.asarray(y.values, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    return arr.reshape(arr.shape[0], -1)


def _thin(x: np.ndarray, max_n: int) -> np.ndarray:
    """At most ``max_n`` rows of ``x`` (n, ...), evenly spaced."""
    if x.shape[0] > max_n:
        idx = np.linspace(0, x.shape[0] - 1, max_n).round().astype(int)
        return x[idx]
    return x


def _weight_label(k: int, weights: np.ndarray | None) -> str:
    """The legend label of component ``k``, with its mean weight from ``weights`` (K,)."""
    if weights is None or not np.isfinite(weights[k]):
        return f"component {k}"
    return f"component {k} (weight {weights[k]:.2g})"


# ----------------------------------------------------------------------------------------------
# KDE of location draws
# ----------------------------------------------------------------------------------------------
