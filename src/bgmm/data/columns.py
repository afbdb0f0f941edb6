"""Columns of the data named by index or by name, as users give them."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from bgmm.errors import UserError

__all__ = ["resolve_features"]


def resolve_features(features: Any, names: Sequence[str]) -> tuple[int, int]:
    """The two features a plot shows, as column indices.

    Parameters
    ----------
    features : pair of int or str
        Column indices (0-based; digit strings too, as the command line gives them) or
        names from ``names``.
    names : sequence of D str

    Returns
    -------
    (int, int)
        Two different indices; (0, 0) when D = 1 (the plots then show 1-D densities).

    Raises
    ------
    bgmm.errors.UserError
        Naming ``features``: not a pair, an unknown name, an index out of range, or the
        same feature twice.
    """
    n = len(names)
    if n == 1:
        return 0, 0
    if isinstance(features, str | bytes) or not isinstance(features, Sequence | tuple):
        features = None
    if features is None or len(features) != 2:
        raise UserError(
            f"expected two feature indices (0..{n - 1}) or names; got {features!r}",
            option="features",
        )
    indices = [_feature_index(feature, names) for feature in features]
    if indices[0] == indices[1]:
        raise UserError("pick two different features", option="features")
    return indices[0], indices[1]


def _feature_index(feature: Any, names: Sequence[str]) -> int:
    if isinstance(feature, str) and feature in names:
        return list(names).index(feature)
    if isinstance(feature, str) and feature.lstrip("-").isdigit():
        feature = int(feature)
    if isinstance(feature, numbers.Integral) and not isinstance(feature, bool):
        if not 0 <= int(feature) < len(names):
            raise UserError(
                f"index {int(feature)} out of range 0..{len(names) - 1}", option="features"
            )
        return int(feature)
    if isinstance(feature, str):
        raise UserError(
            f"no feature named {feature!r} (have {', '.join(names)})", option="features"
        )
    raise UserError(f"expected a feature index or name, got {feature!r}", option="features")
