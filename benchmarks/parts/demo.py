"""Part 5: the ``bgmm demo`` command end to end, as a user sees it.

Per repeat, in a new temporary directory: cold (``--no-cache``, an empty cache directory;
not with ``--quick``), the first run with an empty cache, and the second run with that
cache (warm). The command's ``--json`` timings split each wall time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

from harness import bgmm_command, child_env, log, median, save, show, table

from parts.targets import DEMO_LIMITS

# Taken from the command's --json output.
FIT_KEYS = (
    "compile_seconds",
    "sampling_seconds",
    "total_seconds",
    "process_seconds",
    "startup_seconds",
    "ess_bulk_min",
    "rhat_max",
)
# Medians per kind of run; the first six are the table's columns.
SUMMARY_KEYS = (
    "wall_seconds",
    "startup_seconds",
    "compile_seconds",
    "sampling_seconds",
    "fit_other_seconds",
    "after_fit_seconds",
    "process_seconds",
    "total_seconds",
)
KINDS = ("cold_no_cache", "first_with_cache", "warm")


def run(opts, results: dict) -> dict:
    """Run part 5 and print its table; ``results["part5"]``.

    Parameters
    ----------
    opts : argparse.Namespace
        ``repeats``, ``quick`` and ``json``.
    results : dict
        The run's results; saved after each repeat.

    Returns
    -------
    dict
        ``repeats``, ``runs`` (per repeat, a record per kind of run), ``extra_args``,
        ``import_seconds`` and, per kind, the medians.
    """
    repeats = opts.repeats
    extra = ["--draws", "200", "--warmup", "200"] if opts.quick else []
    out: dict = {"repeats": repeats, "runs": [], "extra_args": extra}
    results["part5"] = out
    out["import_seconds"] = import_seconds(max(repeats, 3))
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            log(f"part 5: bgmm demo, repeat {i}")
            runs = {}
            if not opts.quick:
                runs["cold_no_cache"] = demo(extra, f"{tmp}/empty", f"{tmp}/o1", no_cache=True)
            runs["first_with_cache"] = demo(extra, f"{tmp}/cache", f"{tmp}/o2", no_cache=False)
            runs["warm"] = demo(extra, f"{tmp}/cache", f"{tmp}/o3", no_cache=False)
            out["runs"].append(runs)
            save(opts.json, results)
    for kind in KINDS:
        if kind in out["runs"][0]:
            out[kind] = summarise([r[kind] for r in out["runs"] if r[kind]["returncode"] == 0])
    show_table(out, extra)
    return out


def import_seconds(repeats: int) -> float | None:
    """Median wall seconds of ``python -c "import bgmm"``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import bgmm"], env=child_env(), check=True)
        times.append(time.perf_counter() - start)
    return median(times)


def demo(extra: list[str], cache_dir: str, out_dir: str, no_cache: bool) -> dict:
    """One ``bgmm demo`` process: its wall seconds, exit status and ``--json`` timings."""
    command = [*bgmm_command(), "demo", "--json", "--quiet", "--out", out_dir, *extra]
    if no_cache:
        command.append("--no-cache")
    start = time.perf_counter()
    proc = subprocess.run(command, env=child_env(cache_dir), capture_output=True, text=True)
    wall = time.perf_counter() - start
    record = {"wall_seconds": wall, "returncode": proc.returncode}
    if proc.returncode == 0:
        fit = json.loads(proc.stdout)
        for key in FIT_KEYS:
            record[key] = fit.get(key)
    else:
        record["error"] = proc.stderr[-2000:]
    return record


def summarise(good: list[dict]) -> dict:
    """Split each good run's wall time (added to its record) and take the medians.

    The parts: interpreter start, ``import bgmm`` and the CLI's checks (the process's age
    when the fit starts), compilation, sampling, the rest of the fit (starts,
    relabelling, summaries, InferenceData), and after the fit (MVN check, posterior.nc,
    figures, the interpreter's exit).
    """
    for r in good:
        r["fit_other_seconds"] = r["total_seconds"] - r["compile_seconds"] - r["sampling_seconds"]
        r["after_fit_seconds"] = r["wall_seconds"] - r["startup_seconds"] - r["total_seconds"]
    return {key: median(r.get(key) for r in good) for key in SUMMARY_KEYS}


def show_table(out: dict, extra: list[str]) -> None:
    """Print the medians per kind of run against their targets."""
    rows = []
    for kind in KINDS:
        if kind not in out:
            continue
        summary, limit = out[kind], DEMO_LIMITS[kind]
        wall = summary["wall_seconds"]
        rows.append(
            [
                kind,
                *(summary[key] for key in SUMMARY_KEYS[:6]),
                f"< {limit:g} s",
                wall is not None and wall < limit,
            ]
        )
    rows.append(["python -c 'import bgmm'", out["import_seconds"], *[None] * 7])
    title = (
        f"Part 5: `bgmm demo {' '.join(extra)}` end to end (wall s, median of "
        f"{out['repeats']}; with figures and posterior.nc)"
    )
    headers = ["run", "wall s", "start s", "compile s", "sampling s", "rest of fit s"]
    show(table(title, [*headers, "after fit s", "target", "met"], rows))
