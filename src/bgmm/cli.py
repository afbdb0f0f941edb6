"""The command line: ``bgmm demo``, ``bgmm fit``, ``bgmm summary``.

Every user error is one line on stderr starting with ``error:``, exit code 2, and no
output file created or overwritten.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

CLI_IMPORTED = time.perf_counter()  # after `import bgmm`, which bgmm.cli's package runs first

EXIT_USAGE = 2
# Up to this many data values (8 MB in float64) fit imports its output libraries early.
SMALL_DATA_VALUES = 10**6


class UsageError(Exception):
    """A user error: printed as one ``error:`` line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _features(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected two features like 0,1 or x,y; got {text!r}")
    return parts[0], parts[1]


def _add_run_options(parser: argparse.ArgumentParser, out_default: str) -> None:
    parser.add_argument(
        "--sampler",
        choices=("hmc", "nuts", "gibbs"),
        default="hmc",
        help="MCMC kernel (default hmc); gibbs only for --target correct",
    )
    parser.add_argument("--chains", type=_positive_int, help="number of chains")
    parser.add_argument("--draws", type=_positive_int, help="kept draws per chain")
    parser.add_argument("--warmup", type=_count, help="warm-up (burn-in) steps per chain")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="floating point precision",
    )
    parser.add_argument(
        "--chain-method",
        choices=("auto", "sequential", "vectorized", "parallel"),
        default="auto",
        help="auto (default): one chain per CPU core at a time, vmapped on a GPU",
    )
    parser.add_argument(
        "--out", default=out_default, help=f"output directory (default ./{out_default})"
    )
    parser.add_argument(
        "--features",
        type=_features,
        default=("0", "1"),
        help="two features to plot for D > 2, by index or name (default 0,1)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument(
        "--relabel",
        choices=("auto", "none", "pivot", "stephens"),
        default="auto",
        help="undo label switching (auto: pivot when the priors are exchangeable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="do not reuse compiled programs from earlier runs (cache: $BGMM_CACHE_DIR or "
        "~/.cache/bgmm/jax)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bgmm",
        description="Posterior draws for Bayesian Gaussian mixtures with HMC.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = sub.add_parser("demo", help="the TFP tutorial's data, priors and sampler")
    demo.add_argument(
        "--target",
        choices=("correct", "tutorial"),
        default="correct",
        help="'tutorial': the tutorial's exact density and configuration; "
        "'correct' (default): the model as written, with the Wishart Jacobian",
    )
    _add_run_options(demo, "bgmm-demo")

    fit = sub.add_parser("fit", help="sample the posterior for your data (CSV or .npy)")
    fit.add_argument("data", help="CSV (header row optional) or .npy file, one row per observation")
    fit.add_argument("-k", "--components", type=_positive_int, default=3, help="K (default 3)")
    fit.add_argument(
        "--priors",
        choices=("default", "tutorial"),
        default="default",
        help="'default': exchangeable priors on standardised data; 'tutorial': the tutorial's",
    )
    fit.add_argument("--target", choices=("correct", "tutorial"), default="correct")
    fit.add_argument(
        "--start-candidates",
        type=_positive_int,
        default=10,
        help="best-of-M start search: k-means++ clusterings tried per chain (default 10)",
    )
    fit.add_argument(
        "--leapfrog-steps",
        type=_positive_int,
        default=16,
        help="mean leapfrog steps per HMC transition (default 16)",
    )
    fit.add_argument(
        "--target-accept",
        type=_probability,
        help="acceptance rate the step size is adapted to (default 0.65 HMC, 0.8 NUTS)",
    )
    fit.add_argument(
        "--adaptation",
        choices=("window", "tutorial"),
        default="window",
        help="warm-up: windowed step size + mass matrix (default) or the tutorial's rule",
    )
    _add_run_options(fit, "bgmm-fit")

    summary = sub.add_parser("summary", help="summarise a saved posterior.nc")
    summary.add_argument("path", help="a posterior.nc written by bgmm")
    summary.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def run() -> NoReturn:
    """The ``bgmm`` console command: :func:`main` in a process that ends with it."""
    import bgmm  # noqa: F401

    # What is imported now lives until exit: the garbage collector need not scan it at
    # every collection (JAX's tracing triggers many) nor once more at exit. Measured on a
    # warm `bgmm demo`: 0.35 s less in the run and 0.4 s less at exit.
    gc.freeze()
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from importlib.metadata import version

            print(f"bgmm {version('bgmm')}")
            return 0
        if args.command is None:
            raise UsageError("missing command: demo, fit or summary (see bgmm --help)")
        return {"demo": _demo, "fit": _fit, "summary": _summary}[args.command](args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _import_output_libraries_in_background(plots: bool) -> None:
    """Import what relabelling and the outputs need (SciPy's optimize, ArviZ, xarray,
    h5netcdf, matplotlib) on a thread.

    Their imports take about 0.6 s, all in Python. The main thread imports JAX and then
    spends most of its time inside XLA (compiling, sampling) with the GIL released, so
    these imports overlap it (measured: 0.2 to 0.3 s off a warm ``bgmm demo``). Python's
    per-module import locks make a module imported from both threads load once. Only for
    small data: with large data the imports' 0.1 GiB would add to the sampler's peak memory,
    and they are a small part of a long run.
    """

    def load() -> None:
        try:
            import arviz  # noqa: F401
            import h5netcdf  # noqa: F401
            import scipy.optimize  # noqa: F401  (relabelling)
            import xarray  # noqa: F401

            if plots:
                import matplotlib.backends.backend_agg
                import matplotlib.figure  # noqa: F401
        except Exception:  # the main thread's own import reports it
            pass

    threading.Thread(target=load, name="bgmm-imports", daemon=True).start()


def _user_errors():
    from bgmm.data import DataError

    return (DataError, ValueError)


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _use_cache(args) -> None:
    if not args.no_cache:
        from bgmm.cache import enable_compilation_cache

        enable_compilation_cache()


def _demo(args) -> int:
    import bgmm

    _import_output_libraries_in_background(plots=not args.no_plots)
    _use_cache(args)
    from bgmm.checks import chol_precision_normal_check

    _check_out(Path(args.out))
    startup_seconds = _process_seconds()
    result = _run_safely(
        lambda: bgmm.demo(
            args.target,
            num_chains=args.chains,
            num_warmup=args.warmup,
            num_draws=args.draws,
            seed=args.seed,
            dtype=args.dtype,
            chain_method=args.chain_method,
            sampler=args.sampler,
            relabel=args.relabel,
            progress=_progress(args),
        )
    )
    # The check runs in XLA, with the GIL released, while the outputs are written in Python.
    with ThreadPoolExecutor(max_workers=1) as pool:
        check_running = pool.submit(chol_precision_normal_check, seed=args.seed)
        written = _write_outputs(result, args, (0, 1))
        check = check_running.result()
    record = result.to_dict() | {"startup_seconds": startup_seconds}
    record["mvn_check"] = check.to_dict()
    _finish(result, record, written, args, preamble=check.report())
    return 0


def _fit(args) -> int:
    import bgmm
    from bgmm.data import load_table

    try:
        data, names = load_table(args.data)
    except _user_errors() as exc:
        raise UsageError(str(exc)) from None
    if data.size <= SMALL_DATA_VALUES:
        _import_output_libraries_in_background(plots=not args.no_plots)
    names = names or [f"x{j}" for j in range(data.shape[1])]
    features = _resolve_features(args.features, names)
    _use_cache(args)
    _check_out(Path(args.out))
    startup_seconds = _process_seconds()
    result = _run_safely(
        lambda: bgmm.BayesianGMM(
            args.components,
            priors=args.priors,
            target=args.target,
            num_chains=args.chains if args.chains is not None else 4,
            num_warmup=args.warmup if args.warmup is not None else 1000,
            num_draws=args.draws if args.draws is not None else 1000,
            sampler=args.sampler,
            relabel=args.relabel,
            start_candidates=args.start_candidates,
            num_leapfrog_steps=args.leapfrog_steps,
            adaptation=args.adaptation,
            target_accept=args.target_accept,
            chain_method=args.chain_method,
            dtype=args.dtype,
            seed=args.seed,
        ).fit(data, feature_names=names, progress=_progress(args), source=args.data)
    )
    written = _write_outputs(result, args, features)
    _finish(result, result.to_dict() | {"startup_seconds": startup_seconds}, written, args)
    return 0


def _summary(args) -> int:
    from bgmm.results import format_summary, load_inference_data, summarize, to_json

    path = Path(args.path)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a posterior.nc file")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        idata = load_inference_data(path)
        posterior = idata.posterior
        for var in ("weights", "means", "chol_precision", "covariance"):
            if var not in posterior:
                raise UsageError(f"{path}: not a bgmm result (no '{var}' in the posterior group)")
    except UsageError:
        raise
    except Exception as exc:  # netCDF/HDF5 raise many types for a file that is not theirs
        raise UsageError(f"{path}: not a readable NetCDF file ({type(exc).__name__})") from None
    summary = summarize(idata)
    attrs = dict(posterior.attrs)
    if args.json:
        record = {k: attrs.get(k) for k in ("sampler", "target", "num_warmup", "priors", "dtype")}
        record.update(summary)
        for key in ("compile_seconds", "sampling_seconds", "total_seconds"):
            record[key] = attrs.get(key)
        print(to_json({k: _plain(v) for k, v in record.items()}))
    else:
        shown = ("sampler", "target", "adaptation", "num_chains", "num_warmup", "num_draws")
        print(format_summary(summary, {k: attrs[k] for k in shown if k in attrs}))
    return 0


def _plain(value):
    """numpy scalars from NetCDF attributes -> Python numbers for JSON."""
    return value.item() if hasattr(value, "item") else value


def _run_safely(run):
    try:
        return run()
    except _user_errors() as exc:
        raise UsageError(str(exc)) from None


def _resolve_features(features: tuple[str, str], names: list[str]) -> tuple[int, int]:
    """Feature indices for the plots, checked before any sampling."""
    if len(names) == 1:
        return 0, 0  # one feature: the plots show 1-D densities and ignore the choice
    indices = []
    for feature in features:
        if feature.lstrip("-").isdigit():
            index = int(feature)
            if not 0 <= index < len(names):
                raise UsageError(f"--features: index {index} out of range 0..{len(names) - 1}")
        elif feature in names:
            index = names.index(feature)
        else:
            raise UsageError(f"--features: no feature named {feature!r} (have {', '.join(names)})")
        indices.append(index)
    if indices[0] == indices[1]:
        raise UsageError("--features: pick two different features")
    return indices[0], indices[1]


def _check_out(out: Path) -> None:
    """Fail before sampling when --out (or a folder above it) exists but is not a folder."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                if path == out:
                    raise UsageError(f"{out}: exists and is not a directory")
                raise UsageError(f"{out}: cannot create it ({path} is not a directory)")
            return


def _write_outputs(result, args, features: tuple[int, int]) -> list[Path]:
    """Write every output into a scratch folder, then move the set into --out."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".bgmm-", dir=parent))
    except OSError as exc:
        raise UsageError(f"{out}: cannot create the output directory ({exc})") from None
    try:
        files = [result.save(scratch / "posterior.nc")]
        if not args.no_plots:
            from bgmm import plots

            files.append(plots.plot_location_kde(result.idata, scratch / "locations.png", features))
            files.append(plots.plot_trace(result.idata, scratch / "trace.png", features=features))
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for file in files:
            target = out / file.name
            os.replace(file, target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _process_seconds() -> float:
    """Seconds since this process started (to 10 ms on Linux; elsewhere since the CLI's
    module was imported, which leaves out the interpreter's start and ``import bgmm``)."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22
            return float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - CLI_IMPORTED


def _finish(result, record, written, args, preamble: str | None = None) -> None:
    from bgmm.results import to_json

    record["outputs"] = [str(p) for p in written]
    record["process_seconds"] = _process_seconds()
    if args.json:
        print(to_json(record))
        return
    if preamble:
        print(preamble)
        print()
    print(result.report())
    print()
    t = result.timing
    print(
        f"compile {t['compile_seconds']:.2f} s, sampling {t['sampling_seconds']:.2f} s, "
        f"fit {t['total_seconds']:.2f} s"
    )
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    run()
