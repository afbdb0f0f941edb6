"""Importing and using bgmm leaves its host's JAX configuration and environment alone.

Each check runs in a fresh process, without the test suite's own opt-ins (conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

FIT = """
import hashlib, json, os, sys
import numpy as np
import jax, jax.numpy as jnp
{before}
import bgmm

data = np.random.default_rng(0).normal(size=(40, 2)) + np.repeat([[-3.0], [3.0]], 20, 0)
options = dict(num_chains=2, num_warmup=20, num_draws=20, random_state=3, dtype="{dtype}")
model = bgmm.BayesianGMM(2, **options)
posterior = model.fit(data).idata_.posterior
digest = hashlib.sha256()
for name in sorted(posterior.data_vars):
    digest.update(np.ascontiguousarray(posterior[name].values).tobytes())
print(json.dumps({{
    "user_dtype": str(jnp.zeros(1).dtype),
    "draws_dtype": str(posterior["means"].dtype),
    "sampled_in": posterior.attrs["dtype"],
    "digest": digest.hexdigest(),
    "xla_flags": os.environ.get("XLA_FLAGS"),
}}))
"""


def _python(code: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_import_changes_neither_the_dtype_nor_xla_flags():
    seen = _python(
        "import json, os, jax, jax.numpy as jnp, bgmm\n"
        "print(json.dumps({'dtype': str(jnp.zeros(1).dtype), "
        "'flags': os.environ.get('XLA_FLAGS'), 'x64': bool(jax.config.jax_enable_x64)}))"
    )
    assert seen == {"dtype": "float32", "flags": None, "x64": False}


def test_a_fit_is_float64_inside_and_leaves_the_host_in_float32():
    scoped = _python(FIT.format(before="", dtype="float64"))
    assert scoped["user_dtype"] == "float32" and scoped["sampled_in"] == "float64"
    assert scoped["draws_dtype"] == "float64"
    assert scoped["xla_flags"] is None
    # The same draws, bit for bit, as in a host that turned 64-bit mode on itself.
    global_x64 = _python(
        FIT.format(before='jax.config.update("jax_enable_x64", True)', dtype="float64")
    )
    assert global_x64["digest"] == scoped["digest"]


def test_float32_runs_in_a_float32_host():
    run = _python(FIT.format(before="", dtype="float32"))
    assert run["sampled_in"] == "float32" and run["user_dtype"] == "float32"


def test_use_cpu_cores_is_opt_in_and_only_before_jax_starts():
    seen = _python(
        "import json, os, jax.numpy as jnp, bgmm\n"
        "first = bgmm.use_cpu_cores(2); flags = os.environ.get('XLA_FLAGS')\n"
        "import jax; n = jax.device_count()\n"
        "os.environ.pop('XLA_FLAGS')\n"
        "late = bgmm.use_cpu_cores(2)\n"
        "print(json.dumps({'first': first, 'flags': flags, 'devices': n, 'late': late, "
        "'after': os.environ.get('XLA_FLAGS')}))"
    )
    assert seen == {
        "first": True,
        "flags": "--xla_force_host_platform_device_count=2",
        "devices": 2,
        "late": False,
        "after": None,
    }
