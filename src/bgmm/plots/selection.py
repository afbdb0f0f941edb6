"""``selection.png``: each model's elpd_loo with its standard error, by K and covariance
structure, the chosen model marked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bgmm.plots.common import _component_colors, _new_figure, _save
from bgmm.selection import Selection

__all__ = ["plot_selection"]


def plot_selection(selection: Selection, path: str | os.PathLike) -> Path:
    """elpd_loo +- 2 se against K, one line per covariance structure; the chosen model
    circled.

    Parameters
    ----------
    selection : Selection
    path : str or PathLike

    Returns
    -------
    pathlib.Path
    """
    fig = _new_figure((6.4, 4.2))
    ax = fig.add_subplot()
    types = list(dict.fromkeys(row["covariance"] for row in selection.table))
    for covariance, color in zip(types, _component_colors(len(types)), strict=True):
        rows = sorted(
            (row for row in selection.table if row["covariance"] == covariance),
            key=lambda row: row["k"],
        )
        k = np.array([row["k"] for row in rows])
        elpd = np.array([row["elpd_loo"] for row in rows])
        se = np.array([row["se"] for row in rows])
        ax.errorbar(k, elpd, yerr=2 * se, color=color, marker="o", capsize=3, label=covariance)
    chosen = next(row for row in selection.table if row["chosen"])
    ax.plot(
        chosen["k"],
        chosen["elpd_loo"],
        "o",
        markersize=14,
        markerfacecolor="none",
        markeredgecolor="black",
        label=f"chosen: K = {chosen['k']}, {chosen['covariance']}",
    )
    ax.set_xlabel("number of components K")
    ax.set_ylabel("elpd_loo (+- 2 se)")
    ax.set_xticks(sorted({row["k"] for row in selection.table}))
    ax.set_title("Model choice by PSIS-LOO (higher predicts better)")
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)
