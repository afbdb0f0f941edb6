"""Part 2: the TFP tutorial's own program (``tfp_tutorial.py``) on the same data, same run.

Needs the ``bench`` extra (TensorFlow, TFP); skipped without it. The ratios bgmm / TFP use
the part 1 results of the same run.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import tempfile
from pathlib import Path

from harness import TFP_TUTORIAL, child_env, log, run_child, show, table

from parts.targets import TARGETS

# The tutorial's HMC takes 5 leapfrog steps per transition.
TFP_LEAPFROG_STEPS = 5


def run(opts, results: dict) -> dict:
    """Run part 2 and print its tables; ``results["part2"]``.

    Parameters
    ----------
    opts : argparse.Namespace
        ``quick`` and ``repeats`` (timed calls after the compiling one).
    results : dict
        The run's results; ``results["part1"]`` gives the bgmm side of the ratios.

    Returns
    -------
    dict
        ``tfp`` (the program's record), ``tfp_printout`` and ``ratios`` (per part 1
        configuration), or ``skipped`` with the reason.
    """
    out: dict = {}
    missing = missing_packages()
    if missing:
        out["skipped"] = missing
    else:
        out.update(run_program(opts))
    results["part2"] = out
    if "skipped" in out:
        show(f"Part 2: skipped: {out['skipped']}")
        return out
    show_program(out["tfp"])
    out["ratios"] = ratios(results.get("part1", {}).get("configs", {}), out["tfp"])
    show_ratios(out["ratios"])
    return out


def missing_packages() -> str | None:
    """Why the TFP program cannot run here, or None when it can."""
    try:
        md.version("tensorflow")
        md.version("tfp-nightly")
    except md.PackageNotFoundError:
        try:
            md.version("tensorflow-probability")
        except md.PackageNotFoundError:
            return "tensorflow / tfp-nightly not installed (pip install '.[bench]')"
    return None


def run_program(opts) -> dict:
    """The TFP program in its own process: ``tfp`` and ``tfp_printout``, or ``skipped``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tfp.json"
        args = [TFP_TUTORIAL, "--json", path, "--repeats", max(opts.repeats, 1)]
        if opts.quick:
            args += ["--draws", "200", "--burnin", "200"]
        log("part 2: TFP tutorial program")
        code, stdout, stderr = run_child(args, child_env())
        if code != 0:
            return {"skipped": f"the TFP program failed (exit {code}): {stderr.strip()[-2000:]}"}
        return {"tfp": json.loads(path.read_text()), "tfp_printout": stdout}


def ratios(configs: dict, tfp: dict) -> dict:
    """bgmm / TFP per part 1 configuration.

    Returns
    -------
    dict
        ``name: {"sampling": min-ESS/s ratio, "end_to_end": the same counting compilation,
        "per_leapfrog_speed": TFP's seconds per leapfrog step over bgmm's (or None)}``.
    """
    out = {}
    tfp_steps = (tfp["num_burnin"] + tfp["num_draws"]) * TFP_LEAPFROG_STEPS
    for name, s in configs.items():
        if "ess_per_second" not in s:
            continue
        r = {
            "sampling": s["ess_per_second"] / tfp["ess_per_second"],
            "end_to_end": s["ess_per_second_end_to_end"] / tfp["ess_per_second_end_to_end"],
            "per_leapfrog_speed": None,
        }
        if s.get("seconds_per_leapfrog"):
            r["per_leapfrog_speed"] = (
                tfp["sampling_seconds"] / tfp_steps / s["seconds_per_leapfrog"]
            )
        out[name] = r
    return out


def show_program(tfp: dict) -> None:
    """Print the TFP program's timings and diagnostics."""
    title = (
        "Part 2: the TFP tutorial's program, XLA-compiled, same data "
        f"(TF {tfp['tensorflow_version']}, TFP {tfp['tfp_version']}; "
        f"1 chain, {tfp['num_burnin']}+{tfp['num_draws']}; "
        f"median of {tfp['repeats']} seeds)"
    )
    headers = ["program", "compile s", "sampling s", "min ESS", "ESS/s", "ESS/s e2e"]
    headers += ["R-hat max", "accept"]
    keys = ("compile_seconds", "sampling_seconds", "ess_bulk_min", "ess_per_second")
    keys += ("ess_per_second_end_to_end", "rhat_max", "acceptance_rate")
    show(table(title, headers, [["tfp-tutorial", *(tfp[key] for key in keys)]]))


def show_ratios(ratios: dict) -> None:
    """Print the ratios bgmm / TFP and whether each meets the target."""
    if not ratios:
        show("(no part 1 results in this run: no ratios)")
        return
    target = TARGETS["tfp_ratio"]
    rows = [
        [name, r["sampling"], r["end_to_end"], r["per_leapfrog_speed"], r["sampling"] >= target]
        for name, r in ratios.items()
    ]
    show(
        table(
            "Part 2: bgmm / TFP (min-ESS per second; target >= 10x)",
            ["sampler", "ratio sampling", "ratio e2e", "leapfrog speed", "target met"],
            rows,
        )
    )
