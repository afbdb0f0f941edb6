"""Part 4: the scaling curve, value + gradient time over N, D and K (``gradients``).

A form whose estimated memory exceeds ``--mem-limit-gb`` is skipped; the direct form stops
for the rest of an N series after its first evaluation of ``DIRECT_LIMIT_SECONDS`` or more.
"""

from __future__ import annotations

import jax
import numpy as np
from gradients import DTYPES, Forms, form_memory, measure_point
from harness import GIB, log, power_of_ten, save, show, table

DIRECT_LIMIT_SECONDS = 2.0


def run(opts, results: dict) -> dict:
    """Run part 4 and print its table; ``results["part4"]``.

    Parameters
    ----------
    opts : argparse.Namespace
        ``curve_n``, ``curve_d``, ``curve_k``, ``curve_dtypes``, ``mem_limit_gb``,
        ``quick`` and ``json``.
    results : dict
        The run's results; saved after each point.

    Returns
    -------
    dict
        ``points`` (``measure_point`` rows, or a skipped row), ``mem_limit_gb`` and
        ``direct_limit_seconds``.
    """
    forms = Forms()
    out: dict = {
        "points": [],
        "mem_limit_gb": opts.mem_limit_gb,
        "direct_limit_seconds": DIRECT_LIMIT_SECONDS,
    }
    results["part4"] = out
    for dtype_name in opts.curve_dtypes:
        for d in opts.curve_d:
            for k in opts.curve_k:
                for row in n_series(forms, opts, d, k, dtype_name):
                    out["points"].append(row)
                    if "skipped" not in row:
                        save(opts.json, results)
                jax.clear_caches()
    show_table(out)
    return out


def n_series(forms, opts, d: int, k: int, dtype_name: str):
    """Yield the row of each N in ``opts.curve_n`` at one D, K and dtype.

    The features are kept from one N to the next only for the same size (``cache``), and
    the direct form stops once it gets slow.
    """
    itemsize = np.dtype(DTYPES[dtype_name]).itemsize
    limit = opts.mem_limit_gb * GIB
    direct_ok = True
    cache: dict = {}
    for n in opts.curve_n:
        memory = form_memory(n, d, k, itemsize)
        if memory["fast"] > limit and (memory["direct"] > limit or not direct_ok):
            yield {
                "N": n,
                "D": d,
                "K": k,
                "dtype": dtype_name,
                "skipped": "memory",
                "memory_estimate_bytes": memory,
            }
            continue
        log(f"part 4: N={n} D={d} K={k} {dtype_name}")
        row = measure_point(
            forms,
            n,
            d,
            k,
            dtype_name,
            allow_direct=direct_ok,
            limit_bytes=limit,
            budget=1.0 if opts.quick else 2.0,
            skip_target=True,
            cache=cache,
        )
        if row.get("direct_seconds", 0.0) >= DIRECT_LIMIT_SECONDS:
            direct_ok = False
        yield row
    cache.clear()


def show_table(out: dict) -> None:
    """Print the curve, in milliseconds."""
    rows = []
    for r in out["points"]:
        size = [r["dtype"], r["D"], r["K"], power_of_ten(r["N"])]
        if r.get("skipped"):
            rows.append([*size, "skipped (memory)", None, None, None, None])
            continue
        direct = r.get("direct_seconds")
        rows.append(
            [
                *size,
                f"{r['fast_seconds'] * 1e3:.3g}"
                if "fast_seconds" in r
                else f"({r.get('fast_skipped')})",
                r.get("gemms_seconds", 0) * 1e3 if "gemms_seconds" in r else None,
                f"{direct * 1e3:.3g}" if direct is not None else f"({r.get('direct_skipped')})",
                r.get("fast_over_gemms"),
                r.get("direct_over_fast"),
            ]
        )
    headers = ["dtype", "D", "K", "N", "fast ms", "2 GEMMs ms", "direct ms", "fast/GEMMs"]
    show(
        table(
            "Part 4: value+gradient time (ms, median) by N, D, K", [*headers, "direct/fast"], rows
        )
    )
