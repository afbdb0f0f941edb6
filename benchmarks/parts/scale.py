"""Part 3: scale, at N = 10^6, D = 8, K = 8 by default.

Value + gradient time of the direct form, the fast (two-GEMM) form, the sampler's whole
target and the two GEMMs alone (the floor), per dtype (``gradients``). Then peak memory
(max RSS, measured by ``workload.py rss``) of ``bgmm fit`` on a saved ``.npy`` at that size,
and of its parts: ``import bgmm``, the imports of a fit, building the features.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np
from gradients import DTYPES, Forms, measure_point, num_features, synthetic
from harness import (
    GIB,
    WORKLOAD,
    bgmm_command,
    child_env,
    log,
    power_of_ten,
    run_child,
    save,
    show,
    table,
)

BASELINE_CODE = "import bgmm, jax.numpy as jnp; print(float(jnp.sum(jnp.ones(3))))"
FIT_IMPORTS = (
    "import bgmm, bgmm.cli, bgmm.data, bgmm.results, bgmm.relabel, arviz, xarray, h5netcdf, scipy"
)


def run(opts, results: dict) -> dict:
    """Run part 3 and print its tables; ``results["part3"]``.

    Parameters
    ----------
    opts : argparse.Namespace
        ``scale_n``, ``scale_d``, ``scale_k``, ``dtypes``, ``mem_limit_gb``, ``quick``,
        ``no_fit_memory`` and ``json``.
    results : dict
        The run's results; saved after each measurement.

    Returns
    -------
    dict
        The size, ``points`` (one ``measure_point`` row per dtype) and, unless
        ``--no-fit-memory``, ``fit_memory`` runs and the RSS of the parts of a fit.
    """
    n, d, k = opts.scale_n, opts.scale_d, opts.scale_k
    out: dict = {"N": n, "D": d, "K": k, "points": [], "fit_memory": []}
    forms = Forms()
    for dtype_name in opts.dtypes:
        log(f"part 3: value+grad N={n} D={d} K={k} {dtype_name}")
        row = measure_point(
            forms,
            n,
            d,
            k,
            dtype_name,
            limit_bytes=opts.mem_limit_gb * GIB,
            budget=2.0 if opts.quick else 6.0,
        )
        out["points"].append(row)
        results["part3"] = out
        save(opts.json, results)
    jax.clear_caches()
    show_gradients(out)
    if not opts.no_fit_memory:
        measure_memory(opts, out, results)
        show_memory(out)
    return out


def measure_memory(opts, out: dict, results: dict) -> None:
    """Peak RSS of ``bgmm fit`` runs and of the parts of a fit, into ``out``."""
    n, d, k = opts.scale_n, opts.scale_d, opts.scale_k
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        out["baseline_rss_bytes"] = code_rss(BASELINE_CODE, tmp)
        out["fit_imports_rss_bytes"] = code_rss(FIT_IMPORTS, tmp)
        out["features_rss_bytes"] = {
            dtype_name: features_rss(n, d, k, dtype_name, tmp) for dtype_name in opts.dtypes
        }
        # (N, dtype, longer run): the size itself in each dtype; the same with a longer run
        # (memory does not grow with the run); a small N (the fixed cost of a fit).
        runs = [(n, dtype_name, False) for dtype_name in opts.dtypes]
        if opts.quick:
            runs = runs[:1]
        else:
            runs.append((n, opts.dtypes[0], True))
            runs.append((min(10_000, n), opts.dtypes[0], False))
        for size, dtype_name, long in runs:
            log(f"part 3: bgmm fit peak memory N={size} {dtype_name}{' longer' if long else ''}")
            out["fit_memory"].append(fit_memory(size, d, k, dtype_name, tmp, long))
            results["part3"] = out
            save(opts.json, results)


def data_file(n: int, d: int, k: int, tmp: Path) -> Path:
    """A saved (N, D) ``.npy`` of ``synthetic`` data (written once per size)."""
    path = tmp / f"data-{n}-{d}-{k}.npy"
    if not path.exists():
        np.save(path, synthetic(n, d, k)[0])
    return path


def code_rss(code: str, tmp: Path) -> int:
    """Max RSS in bytes of ``python -c code`` (run by ``workload.py rss``)."""
    record_path = tmp / "rss-code.json"
    run_child([WORKLOAD, "rss", record_path, "--", sys.executable, "-c", code], child_env())
    return json.loads(record_path.read_text())["max_rss_bytes"]


def features_rss(n: int, d: int, k: int, dtype_name: str, tmp: Path) -> int:
    """Max RSS in bytes of a process that loads the ``.npy`` and builds bgmm's features."""
    path = str(data_file(n, d, k, tmp))
    code = (
        "import numpy as np, jax.numpy as jnp, bgmm\n"
        "from bgmm.model.gemm_likelihood import make_features as build\n"
        + f"f = build(np.load({path!r}), jnp.{dtype_name})\n"
        "f.phi.block_until_ready()"
    )
    return code_rss(code, tmp)


def fit_memory(n: int, d: int, k: int, dtype_name: str, tmp: Path, long: bool = False) -> dict:
    """Peak RSS of a ``bgmm fit`` process on a saved (N, D) ``.npy``.

    Parameters
    ----------
    n, d, k : int
        Observations, dimensions, components.
    dtype_name : str
        The fit's ``--dtype``.
    tmp : Path
        Where the data and the fit's outputs go.
    long : bool
        20 + 40 transitions instead of 5 + 5 (to show memory does not grow with the run).

    Returns
    -------
    dict
        The settings, ``returncode``, ``max_rss_bytes``, ``wall_seconds``, the sizes of the
        data and the features, and the fit's own timings (or ``error``).
    """
    data_path = data_file(n, d, k, tmp)
    run = ["--warmup", "20", "--draws", "40"] if long else ["--warmup", "5", "--draws", "5"]
    command = [*bgmm_command(), "fit", str(data_path), "-k", str(k), "--chains", "1", *run]
    command += ["--leapfrog-steps", "2", "--quiet", "--no-plots", "--no-cache", "--json"]
    command += ["--dtype", dtype_name, "--out", str(tmp / "fit-out")]
    record_path = tmp / "rss.json"
    run_child([WORKLOAD, "rss", record_path, "--", *command], child_env())
    record = json.loads(record_path.read_text())
    out = {
        "N": n,
        "D": d,
        "K": k,
        "dtype": dtype_name,
        "warmup": int(run[1]),
        "draws": int(run[3]),
        "leapfrog_steps": 2,
        "returncode": record["returncode"],
        "max_rss_bytes": record["max_rss_bytes"],
        "wall_seconds": record["wall_seconds"],
        "data_bytes": n * d * 8,
        "features_bytes": n * num_features(d) * np.dtype(DTYPES[dtype_name]).itemsize,
    }
    if record["returncode"] != 0:
        out["error"] = record["stderr"][-2000:]
        return out
    try:
        fit = json.loads(record["stdout"])
    except json.JSONDecodeError:
        fit = {}
        out["error"] = "--json output is not one JSON object: " + record["stdout"][:500]
    for key in ("compile_seconds", "sampling_seconds", "total_seconds", "process_seconds"):
        out[key] = fit.get(key)
    return out


def show_gradients(out: dict) -> None:
    """Print the value + gradient table, in milliseconds."""

    def ms(seconds):
        return seconds * 1e3 if isinstance(seconds, float) else seconds

    rows = [
        [
            r["dtype"],
            *(ms(r.get(f"{form}_seconds")) for form in ("direct", "fast", "target", "gemms")),
            r.get("fast_over_gemms"),
            r.get("direct_over_fast"),
        ]
        for r in out["points"]
    ]
    title = (
        f"Part 3: value+gradient at N={out['N']:,}, D={out['D']}, K={out['K']} "
        "(ms, median; data passed as arguments)"
    )
    headers = ["dtype", "direct ms", "fast ms", "target ms", "2 GEMMs ms", "fast/GEMMs"]
    show(table(title, [*headers, "direct/fast"], rows))


def show_memory(out: dict) -> None:
    """Print the peak memory table, in GiB."""
    rows = [
        [
            f"bgmm fit, N={power_of_ten(m['N'])}",
            m["dtype"],
            f"{m['warmup']}+{m['draws']}",
            m["max_rss_bytes"] / GIB,
            m["features_bytes"] / GIB,
            m["data_bytes"] / GIB,
            m.get("process_seconds"),
            m["returncode"],
        ]
        for m in out["fit_memory"]
    ]
    blank = [None, None, None, 0]  # no features, data or seconds; exit 0
    parts = [
        ["import bgmm + jax only", "-", out["baseline_rss_bytes"]],
        ["imports of a fit (arviz, xarray, ...)", "-", out["fit_imports_rss_bytes"]],
    ]
    parts += [
        [f"np.load + make_features, N={power_of_ten(out['N'])}", dtype_name, rss]
        for dtype_name, rss in out["features_rss_bytes"].items()
    ]
    rows += [[what, dtype_name, "-", rss / GIB, *blank] for what, dtype_name, rss in parts]
    title = (
        f"Part 3: peak memory (max RSS) of `bgmm fit` and its parts, D={out['D']}, "
        f"K={out['K']} (1 chain, 2 leapfrog steps; GiB)"
    )
    headers = ["process", "dtype", "warm+draws", "max RSS GiB", "features GiB", "data GiB"]
    show(table(title, [*headers, "process s", "exit"], rows))
