"""Part 7: a warm cache serves data of another size (issue 11's target).

Per repeat, in a new temporary cache: ``bgmm fit`` of N = 1,000 rows of the tutorial's recipe
(the first run with an empty cache), then ``bgmm fit`` of N = 1,100 rows (same D and K, the
warm cache), then N = 1,100 again with another empty cache (cold, for the ratio). Each is a
fresh process; the command's ``--json`` gives the compile and sampling seconds. Target: the
warm compile of the new size at most 25% of the cold one.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import bgmm_command, child_env, log, median, save, show, table

SIZES = (1000, 1100)
KINDS = ("first_1000", "warm_1100", "cold_1100")
WARM_COMPILE_LIMIT = 0.25  # warm compile / cold compile


def run(opts, results: dict) -> dict:
    """Run part 7 and print its table; ``results["part7"]``.

    Returns
    -------
    dict
        ``repeats``, ``runs`` (per repeat, a record per kind of run), per kind the medians
        of ``compile_seconds``, ``sampling_seconds`` and ``wall_seconds``, and the median
        ratio warm / cold compile.
    """
    from bgmm.tutorial import tutorial_data

    repeats = max(1, min(opts.repeats, 5))
    extra = ["--draws", "200", "--warmup", "200"] if opts.quick else []
    out: dict = {"repeats": repeats, "runs": [], "extra_args": extra}
    results["part7"] = out
    with tempfile.TemporaryDirectory() as tmp:
        data = tutorial_data(max(SIZES))
        paths = {}
        for n in SIZES:
            paths[n] = Path(tmp) / f"n{n}.csv"
            np.savetxt(paths[n], data[:n], delimiter=",")
        for i in range(repeats):
            log(f"part 7: bgmm fit at 1,000 then 1,100 rows, repeat {i}")
            seed = ["--seed", str(i), *extra]
            runs = {
                "first_1000": fit(paths[1000], f"{tmp}/cache{i}", f"{tmp}/o{i}a", seed),
                "warm_1100": fit(paths[1100], f"{tmp}/cache{i}", f"{tmp}/o{i}b", seed),
                "cold_1100": fit(paths[1100], f"{tmp}/empty{i}", f"{tmp}/o{i}c", seed),
            }
            out["runs"].append(runs)
            save(opts.json, results)
    for kind in KINDS:
        good = [r[kind] for r in out["runs"] if r[kind]["returncode"] == 0]
        out[kind] = {
            key: median(r[key] for r in good)
            for key in ("compile_seconds", "sampling_seconds", "wall_seconds")
        }
    ratios = [
        r["warm_1100"]["compile_seconds"] / r["cold_1100"]["compile_seconds"]
        for r in out["runs"]
        if r["warm_1100"]["returncode"] == 0 and r["cold_1100"]["returncode"] == 0
    ]
    out["warm_over_cold_compile"] = median(ratios)
    out["warm_over_cold_compile_each"] = ratios
    show_table(out)
    return out


def fit(data: Path, cache_dir: str, out_dir: str, extra: list[str]) -> dict:
    """One ``bgmm fit`` process: wall seconds, exit status and ``--json`` timings."""
    command = [*bgmm_command(), "fit", str(data), "--json", "--quiet", "--no-plots"]
    start = time.perf_counter()
    proc = subprocess.run(
        [*command, "--out", out_dir, *extra],
        env=child_env(cache_dir),
        capture_output=True,
        text=True,
    )
    record = {"wall_seconds": time.perf_counter() - start, "returncode": proc.returncode}
    if proc.returncode == 0:
        fitted = json.loads(proc.stdout)
        for key in ("compile_seconds", "sampling_seconds", "total_seconds"):
            record[key] = fitted.get(key)
    else:
        record["error"] = proc.stderr[-2000:]
    return record


def show_table(out: dict) -> None:
    """Print the medians per kind of run and the target."""
    keys = ("wall_seconds", "compile_seconds", "sampling_seconds")
    rows = [[kind, *(out[kind][key] for key in keys)] for kind in KINDS]
    ratio = out["warm_over_cold_compile"]
    met = ratio is not None and ratio <= WARM_COMPILE_LIMIT
    rows.append(["warm / cold compile at 1,100", None, ratio, f"<= {WARM_COMPILE_LIMIT:g}: {met}"])
    title = f"Part 7: a warm cache and new data of a nearby size (medians of {out['repeats']})"
    show(table(title, ["run", "wall s", "compile s", "sampling s"], rows))
