"""The CLI keeps compiled programs on disk and reuses them; --no-cache keeps out of it."""

import json
import os
import subprocess
import sys

ARGS = [
    "demo",
    "--chains",
    "1",
    "--warmup",
    "10",
    "--draws",
    "10",
    "--no-plots",
    "--quiet",
    "--json",
]


def _demo(tmp_path, cache, *extra):
    env = dict(os.environ, BGMM_CACHE_DIR=str(cache))
    done = subprocess.run(
        [sys.executable, "-m", "bgmm.cli", *ARGS, "--out", str(tmp_path / "out"), *extra],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _files(directory):
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


def test_second_run_reads_the_compilation_cache(tmp_path):
    cache = tmp_path / "cache"
    first = _demo(tmp_path, cache)
    entries = _files(cache)
    assert entries, "the first run wrote no compiled programs"
    # The sampler's init, steps and final programs, whole (bgmm.samplers.programs).
    assert len([e for e in entries if e.startswith("programs")]) == 3
    second = _demo(tmp_path, cache)
    assert _files(cache) == entries, "the second run compiled something new"
    assert second["weights_mean"] == first["weights_mean"]


def test_no_cache_writes_nothing(tmp_path):
    cache = tmp_path / "cache"
    _demo(tmp_path, cache, "--no-cache")
    assert not cache.exists() or not os.listdir(cache)
