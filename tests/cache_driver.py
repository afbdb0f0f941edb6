"""Run by tests/test_cache.py in fresh processes: fit every sampler in every layout, with
or without the on-disk cache, and print one JSON object: a digest of each fit's draws and
the warnings raised.

Usage: python cache_driver.py CACHE_DIR|none [SAMPLER/LAYOUT ...]  (default: all)
"""

import hashlib
import json
import sys
import warnings

import numpy as np

import bgmm

SAMPLERS = ("hmc", "nuts", "gibbs")
LAYOUTS = ("sequential", "parallel")  # the test's XLA_FLAGS give the CPU two devices


def draws_digest(result) -> str:
    posterior = result.idata.posterior
    digest = hashlib.sha256()
    for name in sorted(posterior.data_vars):
        digest.update(np.ascontiguousarray(posterior[name].values).tobytes())
    return digest.hexdigest()


def main(cache: str, configurations: list[str]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cache != "none":
            assert bgmm.enable_compilation_cache(cache) is not None or caught
        data = np.random.default_rng(0).normal(size=(40, 2)) + np.repeat([[-3.0], [3.0]], 20, 0)
        digests = {}
        every = [f"{sampler}/{layout}" for sampler in SAMPLERS for layout in LAYOUTS]
        for configuration in configurations or every:
            sampler, layout = configuration.split("/")
            model = bgmm.BayesianGMM(
                2,
                num_chains=2,
                num_warmup=20,
                num_draws=20,
                sampler=sampler,
                chain_method=layout,
                random_state=3,
            )
            digests[configuration] = draws_digest(model.fit(data).result_)
    print(
        json.dumps(
            {
                "digests": digests,
                "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
