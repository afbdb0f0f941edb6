"""Part 11: a default ``bgmm fit`` at N = 10^6, D = 8, K = 8 (the issue's scale target).

Per seed, a fresh ``bgmm fit DATA -k 8 --seed S`` process with nothing else set, under
``workload.py rss``: wall seconds (imports, start search, compile, sampling, outputs), the
fit's own timings, peak RSS, and whether it converged (R-hat <= 1.01 and bulk ESS >= 400
on every reported parameter). The data are part 3's (``synthetic``: K separated centres).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from harness import GIB, WORKLOAD, bgmm_command, child_env, log, run_child, save, show, table

from parts.scale import data_file

KEYS = (
    "compile_seconds",
    "sampling_seconds",
    "num_draws",
    "ess_bulk_min",
    "rhat_max",
    "converged",
    "target_ess",
    "warmup_rows",
    "path_length_steps",
)


def run(opts, results: dict) -> dict:
    """Run part 11 and print its table; ``results["part11"]``."""
    n, d, k = (100_000, 4, 3) if opts.quick else (1_000_000, 8, 8)
    seeds = range(1 if opts.quick else max(1, min(opts.repeats, 3)))
    out: dict = {"N": n, "D": d, "K": k, "runs": []}
    results["part11"] = out
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = data_file(n, d, k, tmp)
        for seed in seeds:
            log(f"part 11: bgmm fit N = {n}, D = {d}, K = {k}, defaults, seed {seed}")
            out["runs"].append(default_fit(data, k, seed, tmp))
            save(opts.json, results)
    show_table(out)
    return out


def default_fit(data: Path, k: int, seed: int, tmp: Path) -> dict:
    """One ``bgmm fit`` process with the default options, its peak RSS and its record."""
    command = [*bgmm_command(), "fit", str(data), "-k", str(k), "--seed", str(seed)]
    command += ["--json", "--quiet", "--no-plots", "--out", str(tmp / f"fit-{seed}")]
    record_path = tmp / "rss.json"
    run_child([WORKLOAD, "rss", record_path, "--", *command], child_env())
    measured = json.loads(record_path.read_text())
    record = {
        "seed": seed,
        "returncode": measured["returncode"],
        "wall_seconds": measured["wall_seconds"],
        "max_rss_bytes": measured["max_rss_bytes"],
    }
    if measured["returncode"] != 0:
        record["error"] = measured.get("stderr", "")[-2000:]
        return record
    fitted = json.loads(measured["stdout"])
    record |= {key: fitted.get(key) for key in KEYS}
    record["warnings"] = fitted.get("warnings", [])
    return record


def show_table(out: dict) -> None:
    """Every run: wall seconds, sampling seconds, draws, ESS, R-hat, peak RSS."""
    rows = [
        [
            r["seed"],
            r["wall_seconds"],
            r.get("sampling_seconds"),
            r.get("num_draws"),
            r.get("ess_bulk_min"),
            r.get("rhat_max"),
            r["max_rss_bytes"] / GIB,
        ]
        for r in out["runs"]
    ]
    title = f"Part 11: default bgmm fit, N = {out['N']:,}, D = {out['D']}, K = {out['K']}"
    headers = ["seed", "wall s", "sampling s", "draws", "min bulk ESS", "R-hat max"]
    show(table(title, [*headers, "peak GiB"], rows))
