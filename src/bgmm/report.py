"""The printed report of a run and its JSON record: numbers to significant digits, the
diagnostics table, the label-invariant lines and warnings."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["format_summary", "to_json"]


# Printed numbers keep this many significant digits, whatever the data's scale: body masses
# near 4200 and weights near 1e-4 both stay readable, where a fixed number of decimals shows
# one as 4200.1234 and the other as 0.0000.
SIGNIFICANT_DIGITS = 4
# |x| in [low, high) prints without an exponent (4200, 0.0001234); outside, as 1.235e+07.
_POSITIONAL_RANGE = (1e-5, 1e7)
# Widest positional text at 4 digits: "-0.00001234"; exponents ("-1.235e-05") are shorter.
_NUMBER_WIDTH = 11


def _sig(value: float, digits: int = SIGNIFICANT_DIGITS) -> str:
    """``value`` rounded to ``digits`` significant digits, trailing zeros dropped (like
    ``format(value, "g")``), but without an exponent inside ``_POSITIONAL_RANGE``."""
    x = float(value)
    if not np.isfinite(x):
        return str(x)
    if x == 0.0:
        return "0"
    if _POSITIONAL_RANGE[0] <= abs(x) < _POSITIONAL_RANGE[1]:
        return np.format_float_positional(
            x, precision=digits, unique=False, fractional=False, trim="-"
        )
    return f"{x:.{digits}g}"


def _fmt(values) -> str:
    """An array of any shape as numpy prints it, each number by :func:`_sig`, right-aligned
    to the widest so that the columns line up."""
    array = np.asarray(values, dtype=np.float64)
    cells = [_sig(v) for v in array.ravel()]
    width = max((len(c) for c in cells), default=1)
    padded = np.array([c.rjust(width) for c in cells], dtype=object).reshape(array.shape)
    return np.array2string(padded, formatter={"all": str}, max_line_width=100)


def format_summary(summary: dict[str, Any], settings: dict[str, Any] | None = None) -> str:
    """The printed report: the tutorial's printout, then a diagnostics table and warnings.

    Parameters
    ----------
    summary : dict
        As :func:`summarize` returns it.
    settings : dict, optional
        Shown first, as ``key=value`` pairs.

    Returns
    -------
    str
        Lines without a final newline. Estimates (means, sds, MCSEs) are printed with
        ``SIGNIFICANT_DIGITS`` significant digits, so that they are readable on any scale of
        the data; columns are right-aligned.
    """
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
    lines += _parameter_table(summary["parameters"])
    lines.append("")
    lines += _invariant_lines(summary.get("invariant_diagnostics") or {})
    lines.append(
        f"chains: {summary['num_chains']}, draws per chain: {summary['num_draws']}, "
        f"R-hat max: {summary['rhat_max']:.3f}, bulk ESS min: {summary['ess_bulk_min']:.0f}, "
        f"tail ESS min: {summary['ess_tail_min']:.0f}, divergences: {summary['divergences']}"
    )
    for warning in summary["warnings"]:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def _parameter_table(parameters: list[dict[str, Any]]) -> list[str]:
    """The diagnostics table: a header, then one line per row of ``summary["parameters"]``."""
    width = max(len(p["name"]) for p in parameters)
    num = _NUMBER_WIDTH
    lines = [
        f"{'parameter':<{width}} {'mean':>{num}} {'sd':>{num}} {'mcse':>{num}} "
        f"{'ess_bulk':>9} {'ess_tail':>9} {'r_hat':>6}"
    ]
    for p in parameters:
        lines.append(
            f"{p['name']:<{width}} {_sig(p['mean']):>{num}} {_sig(p['sd']):>{num}} "
            f"{_sig(p['mcse']):>{num}} "
            f"{p['ess_bulk']:>9.0f} {p['ess_tail']:>9.0f} {p['r_hat']:>6.3f}"
        )
    return lines


def _invariant_lines(invariant: dict[str, dict[str, Any]]) -> list[str]:
    """The label-invariant section (none when there are no such quantities)."""
    if not invariant:
        return []
    lines = ["label-invariant (before relabelling):"]
    for name, row in invariant.items():
        if row["constant"]:
            lines.append(f"  {name}: constant at {_sig(row['mean'])}")
        else:
            lines.append(
                f"  {name}: mean {_sig(row['mean'], 6)}, sd {_sig(row['sd'], 3)}, "
                f"R-hat {row['rhat']:.3f}, bulk ESS {row['ess_bulk']:.0f}"
            )
    return lines


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
