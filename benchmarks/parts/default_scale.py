"""Part 11: ``bgmm fit`` at N = 10^6, D = 8, K = 8 run until converged (the scale target).

Per seed, a fresh ``bgmm fit DATA -k 8 --seed S --target-ess 400`` process, every other
option at its default (so the run ends once R-hat <= 1.01 and bulk ESS >= 400 everywhere,
the bar the target sets; 1,000 fixed draws would take hours on 2 cores), under
``workload.py rss`` and a time limit (``LIMIT_SECONDS``): wall seconds (imports, start
search, compile, sampling, outputs), the fit's own timings, peak RSS, and for a run the
limit stopped, the chain steps its last checkpoint had done (``--checkpoint-every 60``).
The data are part 3's (``synthetic``: K separated centres).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from harness import GIB, WORKLOAD, bgmm_command, child_env, log, run_child, save, show, table

from parts.scale import data_file

LIMIT_SECONDS = 3600

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
    """One ``bgmm fit`` process to a target ESS of 400, its peak RSS and its record."""
    command = ["timeout", str(LIMIT_SECONDS), *bgmm_command(), "fit", str(data), "-k", str(k)]
    command += ["--seed", str(seed), "--target-ess", "400", "--json", "--no-plots"]
    out_dir = tmp / f"fit-{seed}"
    command += ["--checkpoint-every", "60", "--out", str(out_dir)]
    record_path = tmp / "rss.json"
    run_child([WORKLOAD, "rss", record_path, "--", *command], child_env(), LIMIT_SECONDS + 120)
    measured = json.loads(record_path.read_text())
    record = {
        "seed": seed,
        "returncode": measured["returncode"],
        "wall_seconds": measured["wall_seconds"],
        "max_rss_bytes": measured["max_rss_bytes"],
    }
    if measured["returncode"] != 0:
        record["error"] = measured.get("stderr", "")[-2000:]
        checkpoint = out_dir / ".bgmm-checkpoint" / "checkpoint.json"
        if checkpoint.exists():
            body = json.loads(checkpoint.read_text())
            record |= body["progress"]  # steps_done, steps_total
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
    title = f"Part 11: bgmm fit --target-ess 400, N = {out['N']:,}, D = {out['D']}, K = {out['K']}"
    headers = ["seed", "wall s", "sampling s", "draws", "min bulk ESS", "R-hat max"]
    show(table(title, [*headers, "peak GiB"], rows))
