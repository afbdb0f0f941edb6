"""What the parts of ``benchmarks/run.py`` share: messages, tables, the results file and
the child processes that do the measuring.

``benchmarks/`` is on ``sys.path`` when a script in it runs, so the parts import this as
``harness``.
"""

from __future__ import annotations

import os

# Child processes get the environment as it was before this process opted in to one JAX
# device per core (``bgmm.use_cpu_cores`` adds to XLA_FLAGS, which children would inherit).
BASE_ENV = dict(os.environ)

import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workload.py"
TFP_TUTORIAL = HERE / "tfp_tutorial.py"
GIB = 1024**3


def log(message: str) -> None:
    """Print a progress message to stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def show(text: str) -> None:
    """Print a table or a note to stdout, followed by a blank line."""
    print(text + "\n", flush=True)


def _cell(value) -> str:
    """A table cell: floats to 3 significant digits, more for large numbers."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not np.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 0.01:
            return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


def table(title: str, headers: list[str], rows: list[list]) -> str:
    """A plain text table: text left-aligned, numbers right-aligned.

    Parameters
    ----------
    title : str
        The line above the table.
    headers : list of str
        Column names.
    rows : list of list
        Cells: None prints as "-", booleans as yes/no, floats to about 3 digits.

    Returns
    -------
    str
        The table, without a trailing newline.
    """
    body = [[_cell(v) for v in row] for row in rows]
    # Strings that read as numbers ("1e6", "(memory)") are aligned like numbers.
    left = [
        [isinstance(v, str) and not re.fullmatch(r"[\d.,e+-]+|\(\w+\)", v) for v in row]
        for row in rows
    ]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)
    ]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r, flags in zip(body, left, strict=True):
        cells = [
            v.ljust(w) if flag else v.rjust(w) for v, w, flag in zip(r, widths, flags, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def power_of_ten(n: int) -> str:
    """``1e6`` for a power of ten, else ``n`` with thousands separators."""
    e = round(float(np.log10(n))) if n > 0 else 0
    return f"1e{e}" if 10**e == n else f"{n:,}"


def median(values) -> float | None:
    """The median of the values that are not None; None if there are none."""
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def child_env(cache_dir: str | None = None) -> dict[str, str]:
    """The environment of a measured child process.

    Parameters
    ----------
    cache_dir : str, optional
        Where bgmm's command keeps its program cache. Without it the child has no
        persistent compilation cache, so that its compile times are honest.

    Returns
    -------
    dict
        ``BASE_ENV`` without any cache settings, plus the ones asked for.
    """
    env = dict(BASE_ENV)
    for key in ("BGMM_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR", "JAX_ENABLE_COMPILATION_CACHE"):
        env.pop(key, None)
    if cache_dir is None:
        env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    else:
        env["BGMM_CACHE_DIR"] = cache_dir
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_child(args: list, env: dict[str, str], timeout: float = 1800) -> tuple[int, str, str]:
    """Run ``python ARGS...`` with this interpreter.

    Parameters
    ----------
    args : list
        The script and its arguments (converted with ``str``).
    env : dict
        The child's environment (``child_env``).
    timeout : float
        Seconds before the child is killed.

    Returns
    -------
    tuple of (int, str, str)
        Exit status, stdout, stderr.
    """
    proc = subprocess.run(
        [sys.executable, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout
    )
    return proc.returncode, proc.stdout, proc.stderr


def bgmm_command() -> list[str]:
    """The ``bgmm`` command next to this interpreter, or ``python -m bgmm.cli``."""
    script = Path(sys.executable).parent / "bgmm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bgmm.cli"]


def save(path: str | Path, results: dict) -> None:
    """Write the results so far to ``path`` (atomically: a killed run leaves a whole file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=_json_default))
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
