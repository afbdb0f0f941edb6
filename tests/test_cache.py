"""The CLI keeps compiled programs on disk and reuses them; --no-cache keeps out of it."""

import contextlib
import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    # The sampler's init, steps and final programs, whole (bgmm.plumbing.programs).
    assert len([e for e in entries if e.startswith("programs")]) == 3
    assert all(e.startswith(("programs/", "executables/")) for e in entries), entries
    second = _demo(tmp_path, cache)
    assert _files(cache) == entries, "the second run compiled something new"
    assert second["weights_mean"] == first["weights_mean"]


def test_no_cache_writes_nothing(tmp_path):
    cache = tmp_path / "cache"
    _demo(tmp_path, cache, "--no-cache")
    assert not cache.exists() or not os.listdir(cache)


# ---------------------------------------------------------------------------------------
# Across processes: every sampler x layout, cold, warm and after damage (cache_driver.py)
# ---------------------------------------------------------------------------------------

DRIVER = Path(__file__).with_name("cache_driver.py")
TWO_CPU_DEVICES = "--xla_force_host_platform_device_count=2"


# The trust tests need one configuration; Gibbs is the one whose programs crashed on reload.
ONE = ("gibbs/sequential",)


def _drive(cache, configurations=()) -> dict:
    env = dict(os.environ, XLA_FLAGS=TWO_CPU_DEVICES)
    env.pop("BGMM_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, str(DRIVER), str(cache), *configurations],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.splitlines()[-1])


def _flip_a_bit_in_every_file(directory: Path) -> int:
    damaged = 0
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        blob = bytearray(path.read_bytes())
        if blob:
            blob[len(blob) // 2] ^= 0x10
            path.write_bytes(bytes(blob))
            damaged += 1
    return damaged


def test_cold_warm_and_damaged_caches_give_the_uncached_draws(tmp_path):
    reference = _drive("none")
    assert reference["warnings"] == []
    cache = tmp_path / "cache"

    cold = _drive(cache)
    assert cold == reference
    stored = _files(cache)
    programs = [e for e in stored if e.startswith("programs")]
    assert len(programs) >= 3 * len(reference["digests"]), programs

    warm = _drive(cache)  # the Gibbs programs used to crash here (exit 139)
    assert warm == reference
    assert _files(cache) == stored, "the warm run compiled something new"

    assert _flip_a_bit_in_every_file(cache) == len(stored)
    damaged = _drive(cache)
    assert damaged["digests"] == reference["digests"]
    # One warning per damaged record, stored programs and JAX's executables alike.
    assert len(damaged["warnings"]) == len(stored), damaged["warnings"]
    assert all(
        w.startswith("StoreWarning") and "failed its check and is rebuilt" in w
        for w in damaged["warnings"]
    ), damaged["warnings"]

    rebuilt = _drive(cache)  # every damaged record was replaced: no warning again
    assert rebuilt == reference


def test_a_planted_pickle_never_runs(tmp_path):
    cache = tmp_path / "cache"
    _drive(cache, ONE)
    sentinel = tmp_path / "planted-code-ran"
    payload = pickle.dumps(_Planted(str(sentinel)))
    records = [p for p in (cache / "programs").rglob("*") if p.is_file()]
    for path in records:
        path.write_bytes(payload)
    result = _drive(cache, ONE)
    assert not sentinel.exists()
    assert len(result["warnings"]) == len(records)


class _Planted:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_world_writable_cache_is_refused_and_left_alone(tmp_path):
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(0o777)
    result = _drive(cache, ONE)
    assert result["digests"] == _drive("none", ONE)["digests"]
    assert len(result["warnings"]) == 1, result["warnings"]
    assert "not using the cache" in result["warnings"][0]
    assert "writable" in result["warnings"][0]
    assert os.listdir(cache) == []
    assert stat.S_IMODE(cache.stat().st_mode) == 0o777


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a record to another user")
def test_a_record_owned_by_another_user_is_not_read(tmp_path):
    cache = tmp_path / "cache"
    _drive(cache, ONE)
    records = [p for p in cache.rglob("*") if p.is_file()]
    for path in records:
        os.chown(path, 65534, 65534)
    result = _drive(cache, ONE)
    assert len(result["warnings"]) == len(records), result["warnings"]
    assert all("owned by" in w or "owner" in w for w in result["warnings"]), result["warnings"]


def test_the_cache_is_private(tmp_path):
    cache = tmp_path / "cache"
    _demo(tmp_path, cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    for path in cache.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.lstat().st_mode) & 0o077 == 0, (path, oct(expected))


# ---------------------------------------------------------------------------------------
# No user data in the cache
# ---------------------------------------------------------------------------------------


def _decompressed(blob: bytes) -> bytes:
    """The record, plus its decompressed form where it is zlib or zstandard data."""
    import zlib

    forms = [blob]
    with contextlib.suppress(zlib.error):
        forms.append(zlib.decompress(blob))
    try:
        import zstandard
    except ImportError:
        zstandard = None
    if zstandard is not None:
        with contextlib.suppress(zstandard.ZstdError):
            forms.append(zstandard.ZstdDecompressor().decompressobj().decompress(blob))
    return b"".join(forms)


def test_no_data_value_is_written_into_the_cache(tmp_path):
    rng = np.random.default_rng(7)
    # Values no program would hold as a constant: random bits in every mantissa.
    data = np.concatenate([rng.normal(-4, 1, (30, 2)), rng.normal(4, 1, (30, 2))]) * np.pi
    np.savetxt(tmp_path / "private.csv", data, delimiter=",", fmt="%.17g")
    cache = tmp_path / "cache"
    env = dict(os.environ, BGMM_CACHE_DIR=str(cache))
    done = subprocess.run(
        [sys.executable, "-m", "bgmm.cli", "fit", "private.csv", "-k", "2", *ARGS[1:-1]],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    standardized = (data - data.mean(0)) / data.std(0)
    needles = set()
    for values in (data, standardized, data.T, standardized.T):
        for dtype in (np.float64, np.float32):
            row = np.ascontiguousarray(values, dtype=dtype).ravel()
            needles.update(row[i : i + 2].tobytes() for i in range(0, row.size - 1, 7))
    records = [p for p in cache.rglob("*") if p.is_file()]
    assert records
    for path in records:
        contents = _decompressed(path.read_bytes())
        leaked = [needle for needle in needles if needle in contents]
        assert not leaked, f"{path} holds {len(leaked)} pieces of the data"


# ---------------------------------------------------------------------------------------
# A changed default never finds a program built with the old one
# ---------------------------------------------------------------------------------------

STEP_SIZE = """
import json, sys
import numpy as np
import bgmm, bgmm.config
if sys.argv[1] != "none":
    bgmm.enable_compilation_cache(sys.argv[1])
bgmm.config.DEFAULT_TARGET_ACCEPT["hmc"] = float(sys.argv[2])
data = np.random.default_rng(0).normal(size=(40, 2)) + np.repeat([[-3.0], [3.0]], 20, 0)
model = bgmm.BayesianGMM(2, num_chains=1, num_warmup=150, num_draws=10, random_state=3)
step = model.fit(data).idata_.sample_stats["step_size"].values
print(json.dumps(float(step.mean())))
"""


def _adapted_step_size(cache, target_accept: float) -> float:
    done = subprocess.run(
        [sys.executable, "-c", STEP_SIZE, str(cache), str(target_accept)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_default_changed_between_processes_is_not_served_a_stale_program(tmp_path):
    cache = tmp_path / "cache"
    usual = _adapted_step_size(cache, 0.65)
    eager = _adapted_step_size(cache, 0.95)  # same cache, the default changed
    assert eager == _adapted_step_size("none", 0.95)
    # A higher acceptance target adapts a smaller step. Not a z-test: adapted step sizes
    # estimate no known quantity (no truth, no MCSE); measured eager / usual = 0.50.
    assert eager < 0.7 * usual


def _fit_rows(tmp_path, cache, num_rows: int) -> set[str]:
    """``bgmm fit`` of the first ``num_rows`` tutorial rows; the program records after it."""
    from bgmm.tutorial import tutorial_data

    path = tmp_path / f"rows{num_rows}.csv"
    np.savetxt(path, tutorial_data(1300)[:num_rows], delimiter=",")
    env = dict(os.environ, BGMM_CACHE_DIR=str(cache))
    command = [sys.executable, "-m", "bgmm.cli", "fit", str(path), *ARGS[1:]]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / f"out{num_rows}")],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {e for e in _files(cache) if e.startswith("programs")}


def test_a_slightly_larger_data_set_reuses_the_stored_programs(tmp_path):
    """1,000 and 1,100 rows are both padded to 1,200 (docs/design.md 5.1): the second
    process compiles no sampler program; 1,300 rows (padded to 1,500) compile the two that
    read the data (init and steps)."""
    cache = tmp_path / "cache"
    first = _fit_rows(tmp_path, cache, 1000)
    assert len(first) == 3
    assert _fit_rows(tmp_path, cache, 1100) == first
    assert len(_fit_rows(tmp_path, cache, 1300) - first) == 2
