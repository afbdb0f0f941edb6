"""The measured child of part 6: one fresh process fits a synthetic mixture and times what
the fit answers. Prints one JSON object.

    python benchmarks/answers_workload.py N D K SEED
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

import bgmm


def _data(n: int, d: int, k: int, seed: int) -> np.ndarray:
    """k separated unit-variance clusters of n // k rows each, means 4 apart."""
    rng = np.random.default_rng(seed)
    centres = 4.0 * np.arange(k)[:, None] * np.ones(d)
    return np.concatenate([rng.normal(c, 1.0, (n // k, d)) for c in centres])


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main(n: int, d: int, k: int, seed: int) -> dict:
    data = _data(n, d, k, seed)
    record: dict = {"n": len(data), "d": d, "k": k, "seed": seed}
    model = bgmm.BayesianGMM(k, random_state=seed)
    _, record["fit_seconds"] = _timed(lambda: model.fit(data))
    record["first_compile_seconds"] = model.result_.timing["compile_seconds"]
    _, record["refit_seconds"] = _timed(
        lambda: bgmm.BayesianGMM(k, random_state=seed + 1).fit(data)
    )
    _, record["predict_proba_seconds"] = _timed(lambda: model.predict_proba(data))
    _, record["score_samples_seconds"] = _timed(lambda: model.score_samples(data))
    _, record["sample_10000_seconds"] = _timed(lambda: model.sample(10_000))
    _, record["similarity_seconds"] = _timed(lambda: model.similarity(data))
    for loss in ("vi", "binder"):
        partition, seconds = _timed(lambda loss=loss: model.point_partition(data, loss=loss))
        record[f"{loss}_partition_seconds"] = seconds
        record[f"{loss}_clusters"] = int(partition.labels.max() + 1)
    return record


if __name__ == "__main__":
    print(json.dumps(main(*map(int, sys.argv[1:5]))))
