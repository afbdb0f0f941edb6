"""Part 9: the rows split over devices and processes (issue 11's scaling model).

Per configuration, fresh processes run ``benchmarks/split_rows_driver.py``: the sampler's
value and gradient (vectorised over 4 chains, float64, D = 4, K = 3, the large-N workload)
with the rows split over 1, 2 and 4 devices of one process (CPU cores forced as devices)
and over 2 processes on JAX's distributed runtime (gloo, one device each), at N = 10^5 and
10^6; and the latency of a psum of one scalar over those devices. docs/scaling.md fits its
model to these figures.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import HERE, child_env, log, save, show, table

DRIVER = HERE / "split_rows_driver.py"
LAYOUTS = (("devices", 1), ("devices", 2), ("devices", 4), ("processes", 2))
D, K, CHAINS = 4, 3, 4


def run(opts, results: dict) -> dict:
    """Run part 9 and print its table; ``results["part9"]``: one record per run."""
    sizes = (10_000,) if opts.quick else (100_000, 1_000_000)
    repeats = 5 if opts.quick else 20
    out: dict = {"runs": []}
    results["part9"] = out
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for kind, count in LAYOUTS:
                log(f"part 9: N = {n:,}, {count} {kind}")
                record = measure(kind, count, n, repeats, Path(tmp) / f"{kind}{count}_{n}.json")
                out["runs"].append(record)
                save(opts.json, results)
    show_table(out)
    return out


def measure(kind: str, count: int, n: int, repeats: int, path: Path) -> dict:
    """One configuration in fresh processes: the driver's record, or its error."""
    args = [str(DRIVER), str(path), str(n), str(D), str(K), str(CHAINS), str(repeats)]
    env = child_env() | {"JAX_PLATFORMS": "cpu"}
    if kind == "devices":
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count}"
        commands = [args]
    else:
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
        port = _free_port()
        commands = [[*args, str(i), str(count), str(port)] for i in range(count)]
    started = [
        subprocess.Popen([sys.executable, *c], env=env, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    errors = [p.communicate(timeout=1800)[1] for p in started]
    if any(p.returncode for p in started):
        return {"kind": kind, "count": count, "n": n, "error": "\n".join(errors)[-2000:]}
    return {"kind": kind, "count": count} | json.loads(path.read_text())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def show_table(out: dict) -> None:
    """Seconds per value and gradient, and per psum, for each N and layout."""
    rows = []
    for r in out["runs"]:
        layout = f"{r['count']} {r['kind']}"
        if "error" in r:
            rows.append([f"{r['n']:,}", layout, "failed", None, None])
            continue
        rows.append(
            [
                f"{r['n']:,}",
                layout,
                1e3 * r["value_and_grad_seconds"],
                1e3 * r["psum_seconds"],
                r["feature_bytes_per_device"] / 2**20,
            ]
        )
    headers = ["N", "layout", "value+grad ms", "psum ms", "features MiB/device"]
    show(table("Part 9: rows split over devices and processes (4 chains)", headers, rows))
