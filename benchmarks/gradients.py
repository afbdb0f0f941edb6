"""Timing value + gradient of the likelihood's forms (parts 3 and 4 of ``run.py``).

Every function is ``jax.jit(jax.value_and_grad(...))`` with respect to the unconstrained
parameters, the data or features passed as arguments (never closure constants), timed
after one compiling call.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from harness import GIB
from workload import two_gemms

from bgmm.model import (
    Params,
    default_priors,
    log_likelihood,
    make_logdensity,
    to_constrained,
    to_unconstrained,
)
from bgmm.model.gemm_likelihood import gemm_log_likelihood, make_features

DTYPES = {"float64": np.float64, "float32": np.float32}


def num_features(d: int) -> int:
    """Columns of the feature matrix: 1, the D coordinates, the D (D + 1) / 2 products."""
    return 1 + d + d * (d + 1) // 2


def synthetic(n: int, d: int, k: int, seed: int = 0):
    """Data from a K-component mixture and parameters near it.

    Returns
    -------
    tuple
        ``y`` (N, D) and ``(weights, means, chol)``, float64 numpy arrays.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 3.0, (k, d))
    labels = rng.integers(0, k, n)
    y = centers[labels]
    y += rng.standard_normal((n, d))
    weights = rng.dirichlet(np.full(k, 5.0))
    means = centers + 0.1 * rng.standard_normal((k, d))
    chol = np.tril(0.1 * rng.standard_normal((k, d, d)), -1)
    chol += np.eye(d) * rng.uniform(0.7, 1.3, (k, d))[:, :, None]
    return y, (weights, means, chol)


def time_call(fn, *args, min_repeats: int = 5, max_repeats: int = 200, budget: float = 3.0):
    """Time ``fn(*args)``: one compiling call, then repeats filling about ``budget`` seconds.

    Returns
    -------
    dict
        ``seconds`` (median), ``seconds_min``, ``first_seconds`` (the compiling call) and
        ``repeats``.
    """
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    once = time.perf_counter() - start
    repeats = int(min(max_repeats, max(min_repeats, budget / max(once, 1e-9))))
    times = [once]
    for _ in range(repeats - 1):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return {
        "seconds": float(np.median(times)),
        "seconds_min": float(np.min(times)),
        "first_seconds": first,
        "repeats": len(times),
    }


def time_interleaved(
    calls: dict, min_repeats: int = 5, max_repeats: int = 200, budget: float = 3.0
) -> dict:
    """Time several calls in alternation, one of each per round.

    A change of load on the machine then hits them alike, so their ratios stay fair.

    Parameters
    ----------
    calls : dict
        ``name: (fn, args)``.
    min_repeats, max_repeats : int
        Bounds on the rounds.
    budget : float
        Seconds of rounds to run once ``min_repeats`` are done.

    Returns
    -------
    dict
        ``name: {"first_seconds": the compiling call, "seconds": median, "seconds_min":
        min, "repeats": n}``.
    """
    out = {}
    for name, (fn, args) in calls.items():
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out[name] = {"first_seconds": time.perf_counter() - start, "times": []}
    round_start = time.perf_counter()
    rounds = 0
    while True:
        for name, (fn, args) in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            out[name]["times"].append(time.perf_counter() - start)
        rounds += 1
        elapsed = time.perf_counter() - round_start
        if rounds >= max_repeats or (rounds >= min_repeats and elapsed >= budget):
            break
    for record in out.values():
        times = record.pop("times")
        record.update(
            seconds=float(np.median(times)), seconds_min=float(np.min(times)), repeats=len(times)
        )
    return out


class Forms:
    """The jitted functions that parts 3 and 4 time.

    ``direct``: ``bgmm.model.log_likelihood`` on the (N, D) data. ``fast``:
    ``gemm_log_likelihood`` on the features. ``gemms``: the two GEMMs alone, the floor of
    the fast form (``workload.two_gemms``). ``target(priors)``: the sampler's whole target.
    """

    def __init__(self):
        def direct(u, y):
            return log_likelihood(to_constrained(u, y.shape[1]), y)

        def fast(u, features):
            return gemm_log_likelihood(to_constrained(u, features.center.shape[0]), features)

        self.direct = jax.jit(jax.value_and_grad(direct))
        self.fast = jax.jit(jax.value_and_grad(fast))
        self.gemms = jax.jit(two_gemms)

    def target(self, priors):
        """value_and_grad of prior + fast likelihood + Jacobians; the priors are static,
        the features an argument."""
        return jax.jit(lambda u, features: jax.value_and_grad(make_logdensity(features, priors))(u))


def problem(n: int, d: int, k: int, dtype):
    """Data, unconstrained parameters, priors and GEMM weights of one problem size."""
    y, (weights, means, chol) = synthetic(n, d, k)
    params = Params(*(jnp.asarray(a, dtype) for a in (weights, means, chol)))
    u = to_unconstrained(params)
    priors = default_priors(k, d).astype(dtype)
    w = jnp.asarray(np.random.default_rng(1).normal(0, 0.1, (k, num_features(d))), dtype)
    return y, u, priors, w


def form_memory(n: int, d: int, k: int, itemsize: int) -> dict[str, float]:
    """Rough peak bytes of each form (what decides what to skip)."""
    return {
        # the feature matrix, the logits and responsibilities
        "fast": n * num_features(d) * itemsize + 3 * n * k * itemsize + n * d * 8,
        # y L (K, N, D), z, z*z and their cotangents
        "direct": 3 * n * k * d * itemsize + n * d * 8,
    }


def measure_point(
    forms: Forms,
    n: int,
    d: int,
    k: int,
    dtype_name: str,
    allow_direct: bool = True,
    limit_bytes: float = 6 * GIB,
    budget: float = 3.0,
    skip_target: bool = False,
    cache: dict | None = None,
) -> dict:
    """Time the forms at one size.

    Parameters
    ----------
    forms : Forms
        The jitted functions.
    n, d, k : int
        Observations, dimensions, components.
    dtype_name : str
        "float64" or "float32".
    allow_direct : bool
        False skips the direct form (it was too slow at a smaller N).
    limit_bytes : float
        Skip a form whose ``form_memory`` estimate exceeds this.
    budget : float
        Seconds of timing per form.
    skip_target : bool
        Leave out the sampler's whole target.
    cache : dict, optional
        Keeps the last features built, for the next point of the same N, D and dtype.

    Returns
    -------
    dict
        The size, the memory estimate, ``{form}_{seconds, seconds_min, first_seconds,
        repeats}``, the ratios, and ``{form}_skipped`` (and ``{form}_error``) for a form not
        timed.
    """
    dtype = DTYPES[dtype_name]
    row: dict = {"N": n, "D": d, "K": k, "dtype": dtype_name, "F": num_features(d)}
    memory = form_memory(n, d, k, np.dtype(dtype).itemsize)
    row["memory_estimate_bytes"] = memory
    y, u, priors, w = problem(n, d, k, dtype)
    if memory["fast"] <= limit_bytes:
        calls = _fast_calls(forms, y, u, priors, w, dtype, skip_target, cache, (n, d, dtype_name))
        row.update(_time_fast(calls, budget))
        del calls  # the features: free them (unless cached) before the direct form runs
    else:
        row["fast_skipped"] = "memory"
    if not allow_direct:
        row["direct_skipped"] = "slow"
    elif memory["direct"] > limit_bytes:
        row["direct_skipped"] = "memory"
    else:
        row.update(_time_direct(forms, y, u, dtype, budget))
        if "fast_seconds" in row and "direct_seconds" in row:
            row["direct_over_fast"] = row["direct_seconds"] / row["fast_seconds"]
    return row


def _fast_calls(forms, y, u, priors, w, dtype, skip_target, cache, cache_key) -> dict:
    """The fast form, its two GEMMs and (unless skipped) the target, on one set of features."""
    features = cache.get(cache_key) if cache is not None else None
    if features is None:
        features = make_features(y, dtype)
        if cache is not None:
            cache.clear()
            cache[cache_key] = features
    calls = {"fast": (forms.fast, (u, features)), "gemms": (forms.gemms, (w, features.phi))}
    if not skip_target:
        calls["target"] = (forms.target(priors), (u, features))
    return calls


def _time_fast(calls: dict, budget: float) -> dict:
    """Time the fast form's calls interleaved; ``{name}_{field}`` and fast / GEMMs."""
    row: dict = {}
    try:
        timings = time_interleaved(calls, budget=budget)
    except Exception as exc:  # e.g. out of device memory on a GPU: record, go on
        timings = {}
        row["fast_skipped"] = "error"
        row["fast_error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
    for name, record in timings.items():
        for field, value in record.items():
            row[f"{name}_{field}"] = value
    if timings:
        row["fast_over_gemms"] = row["fast_seconds"] / row["gemms_seconds"]
    return row


def _time_direct(forms, y, u, dtype, budget) -> dict:
    """The direct form on the (N, D) data."""
    y_dev = jnp.asarray(y, dtype)
    try:
        timing = time_call(forms.direct, u, y_dev, min_repeats=3, budget=budget)
    except Exception as exc:  # e.g. out of device memory on a GPU: record, go on
        return {
            "direct_skipped": "error",
            "direct_error": f"{type(exc).__name__}: {str(exc)[:500]}",
        }
    return {
        "direct_seconds": timing["seconds"],
        "direct_first_seconds": timing["first_seconds"],
        "direct_repeats": timing["repeats"],
        "direct_seconds_min": timing["seconds_min"],
    }
