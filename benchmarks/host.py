"""The machine a benchmark ran on: CPU, memory, package versions, load, code version."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata as md
import os
import platform
import subprocess
from pathlib import Path

from harness import BASE_ENV, GIB, HERE

# What run.py records the versions of (TensorFlow and TFP for part 2).
PACKAGES = (
    "bgmm",
    "jax",
    "jaxlib",
    "numpy",
    "blackjax",
    "arviz",
    "scipy",
    "tensorflow",
    "tf-keras",
    "tfp-nightly",
    "tensorflow-probability",
)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the system has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def package_versions(packages) -> dict[str, str]:
    """Installed version of each package that is installed."""
    versions = {}
    for package in packages:
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


def cpu_info() -> dict:
    """``cpu_model`` and ``cpu_avx512`` from /proc/cpuinfo (only the model elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"cpu_model": platform.processor() or None}
    models = [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")
    ]
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return {"cpu_model": models[0] if models else None, "cpu_avx512": "avx512f" in flags}


def memory_info() -> dict:
    """Total and available memory in GiB, from /proc/meminfo."""
    try:
        meminfo = dict(
            line.split(":", 1)
            for line in Path("/proc/meminfo").read_text().splitlines()
            if ":" in line
        )
        return {
            "memory_gib": round(int(meminfo["MemTotal"].split()[0]) * 1024 / GIB, 1),
            "memory_available_gib_start": round(
                int(meminfo["MemAvailable"].split()[0]) * 1024 / GIB, 1
            ),
        }
    except (OSError, KeyError, ValueError):
        return {"memory_gib": None}


def git_state() -> dict | None:
    """HEAD and a hash of the uncommitted changes under src/.

    Recorded at the start and the end of a run, to notice code changing under it.
    """
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "diff", "HEAD", "--", "src"], cwd=HERE.parent, capture_output=True, text=True
        ).stdout
    except OSError:
        return None
    return {
        "commit": head or None,
        "src_diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else None,
    }


def machine_info() -> dict:
    """Describe the machine, and opt this process in to one JAX device per core and float64.

    Returns
    -------
    dict
        Date, host, CPU, memory, load average, package versions, XLA flags before and
        after the opt-in, JAX's backend and devices, and ``git_state()`` as ``git_start``.
    """
    info: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "load_average_start": load_average(),
    }
    info.update(cpu_info())
    info.update(memory_info())
    info["versions"] = package_versions(PACKAGES)
    info["xla_flags_before_bgmm"] = BASE_ENV.get("XLA_FLAGS")
    import jax

    import bgmm

    # This process is a host that opts in: one device per core, float64 for its own arrays.
    bgmm.use_cpu_cores()
    jax.config.update("jax_enable_x64", True)

    info["jax_backend"] = jax.default_backend()
    info["jax_devices"] = [str(d) for d in jax.devices()]
    info["jax_device_kind"] = jax.devices()[0].device_kind
    info["xla_flags"] = os.environ.get("XLA_FLAGS")
    info["git_start"] = git_state()
    return info
