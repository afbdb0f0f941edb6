"""The GPU part: HMC draws per second on synthetic data, vectorised chains, float32.

Runs on any backend (on a CPU with ``--quick`` as a smoke test); ``benchmarks/gpu.sh`` runs
it at GPU sizes on a CUDA machine.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from gradients import num_features, synthetic
from harness import GIB, log, save, show, table

import bgmm
from bgmm.inference import FEATURE_MEMORY_BUDGET_BYTES

FLOAT32_BYTES = 4


def run(opts, results: dict) -> dict:
    """Run the GPU part and print its table; ``results["gpu"]``.

    Parameters
    ----------
    opts : argparse.Namespace
        ``gpu_n``, ``gpu_d``, ``gpu_k``, ``gpu_chains``, ``gpu_warmup``, ``gpu_draws``,
        ``gpu_leapfrog``, ``gpu_forms`` and ``json``.
    results : dict
        The run's results; saved after each fit.

    Returns
    -------
    dict
        The backend, devices and settings, and ``runs``: one record per N and likelihood
        form.
    """
    out: dict = {
        "backend": jax.default_backend(),
        "devices": [str(x) for x in jax.devices()],
        "runs": [],
        "chains": opts.gpu_chains,
        "warmup": opts.gpu_warmup,
        "draws": opts.gpu_draws,
        "leapfrog_steps": opts.gpu_leapfrog,
    }
    results["gpu"] = out
    d, k = opts.gpu_d, opts.gpu_k
    for n in opts.gpu_n:
        y, _ = synthetic(n, d, k)
        features_bytes = n * num_features(d) * FLOAT32_BYTES
        auto = "gemm" if features_bytes <= FEATURE_MEMORY_BUDGET_BYTES else "direct"
        for form in opts.gpu_forms:
            log(f"gpu: HMC N={n} D={d} K={k} float32, likelihood {form}")
            record = {
                "N": n,
                "D": d,
                "K": k,
                "likelihood": form if form != "auto" else f"auto ({auto})",
            }
            record.update(fit(opts, y, k, form))
            out["runs"].append(record)
            save(opts.json, results)
            if "error" not in record:
                jax.clear_caches()
        del y
    show_table(opts, out)
    return out


def fit(opts, y, k: int, form: str) -> dict:
    """Fit with HMC and the likelihood ``form``: timings and rates, or ``error``."""
    model = bgmm.BayesianGMM(
        k,
        num_chains=opts.gpu_chains,
        num_warmup=opts.gpu_warmup,
        num_draws=opts.gpu_draws,
        num_leapfrog_steps=opts.gpu_leapfrog,
        chain_method="vectorized",
        dtype="float32",
        seed=0,
        likelihood=form,
    )
    start = time.perf_counter()
    try:
        result = model.fit(y).result_
    except Exception as exc:  # out of device memory, typically
        return {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    record: dict = {"wall_seconds": time.perf_counter() - start}
    t = result.timing
    steps = float(np.mean(result.idata.sample_stats["n_steps"].values))
    transitions = opts.gpu_chains * (opts.gpu_warmup + opts.gpu_draws)
    record.update(
        compile_seconds=t["compile_seconds"],
        sampling_seconds=t["sampling_seconds"],
        fit_seconds=t["total_seconds"],
        mean_leapfrog_steps=steps,
        draws_per_second=opts.gpu_chains * opts.gpu_draws / t["sampling_seconds"],
        transitions_per_second=transitions / t["sampling_seconds"],
        gradients_per_second=transitions * steps / t["sampling_seconds"],
        ess_bulk_min=result.summary["ess_bulk_min"],
        rhat_max=result.summary["rhat_max"],
    )
    try:
        stats = jax.devices()[0].memory_stats() or {}
        record["device_peak_bytes"] = stats.get("peak_bytes_in_use")
    except Exception:  # CPU devices have no memory stats
        pass
    return record


def show_table(opts, out: dict) -> None:
    """Print the runs: rates, device memory peaks and errors."""
    rows = [
        [
            r["N"],
            r["likelihood"],
            r.get("compile_seconds"),
            r.get("sampling_seconds"),
            r.get("draws_per_second"),
            r.get("gradients_per_second"),
            (r.get("device_peak_bytes") or 0) / GIB or None,
            r.get("error", ""),
        ]
        for r in out["runs"]
    ]
    title = (
        f"GPU part: HMC, {opts.gpu_chains} vectorised chains, D={opts.gpu_d}, K={opts.gpu_k}, "
        f"float32, {opts.gpu_warmup}+{opts.gpu_draws} steps of {opts.gpu_leapfrog} leapfrog "
        f"steps on average ({jax.default_backend()}: {jax.devices()[0].device_kind})"
    )
    headers = ["N", "likelihood", "compile s", "sampling s", "draws/s", "grads/s"]
    show(table(title, [*headers, "dev peak GiB", "error"], rows))
