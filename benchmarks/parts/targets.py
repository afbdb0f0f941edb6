"""The issue's targets, and which of them a run met."""

from __future__ import annotations

from harness import GIB, power_of_ten

TARGETS = {
    "tfp_ratio": 10.0,  # bgmm min-ESS/s >= 10 x TFP's tutorial program
    "fast_over_gemms": 2.0,  # fast value+grad <= 2 x its two GEMMs (N=1e6, D=8, K=8)
    "demo_warm_seconds": 3.0,
    "demo_first_seconds": 10.0,
    "fit_peak_gib": 1.0,  # bgmm fit at N=1e6, D=8, K=8, float64
}

# The limit on the wall seconds of each kind of `bgmm demo` run (part 5).
DEMO_LIMITS = {
    "warm": TARGETS["demo_warm_seconds"],
    "first_with_cache": TARGETS["demo_first_seconds"],
    "cold_no_cache": TARGETS["demo_first_seconds"],
}


def summarise(results: dict) -> list[dict]:
    """Each target with the value measured in this run and whether it is met.

    Parameters
    ----------
    results : dict
        The run's results, with whichever parts ran.

    Returns
    -------
    list of dict
        ``{"target": description, "value": measured, "met": bool}``, for the parts that
        ran.
    """
    return [
        *_tfp_ratio(results.get("part2", {})),
        *_scale(results.get("part3", {})),
        *_demo(results.get("part5", {})),
    ]


def _tfp_ratio(part2: dict) -> list[dict]:
    return [
        {
            "target": f"min-ESS/s bgmm ({name}) / TFP tutorial >= 10",
            "value": r["sampling"],
            "met": r["sampling"] >= TARGETS["tfp_ratio"],
        }
        for name, r in part2.get("ratios", {}).items()
    ]


def _scale(part3: dict) -> list[dict]:
    out = []
    for r in part3.get("points", []):
        if "fast_over_gemms" in r:
            out.append(
                {
                    "target": "fast value+grad / two GEMMs <= 2 "
                    f"(N={power_of_ten(r['N'])}, D={r['D']}, K={r['K']}, {r['dtype']})",
                    "value": r["fast_over_gemms"],
                    "met": r["fast_over_gemms"] <= TARGETS["fast_over_gemms"],
                }
            )
    for m in part3.get("fit_memory", []):
        if m["dtype"] == "float64" and m["returncode"] == 0 and m["N"] == part3["N"]:
            gib = m["max_rss_bytes"] / GIB
            out.append(
                {
                    "target": "bgmm fit peak memory < 1 GiB "
                    f"(N={power_of_ten(m['N'])}, D={m['D']}, K={m['K']}, float64, "
                    f"{m['warmup']}+{m['draws']})",
                    "value": gib,
                    "met": gib < TARGETS["fit_peak_gib"],
                }
            )
    return out


def _demo(part5: dict) -> list[dict]:
    if part5.get("warm", {}).get("wall_seconds") is None:
        return []
    out = []
    for kind in ("warm", "first_with_cache", "cold_no_cache"):
        if kind not in part5:
            continue
        limit, value = DEMO_LIMITS[kind], part5[kind]["wall_seconds"]
        out.append(
            {
                "target": f"bgmm demo {kind} < {limit:g} s",
                "value": value,
                "met": value is not None and value < limit,
            }
        )
    return out
