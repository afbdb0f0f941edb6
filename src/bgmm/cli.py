"""The command line: ``bgmm demo``, ``bgmm fit``, ``bgmm resume``, ``bgmm summary``.

Every user error (bad input, a bad option, an unusable ``--out``) is one line on stderr
starting with ``error:``, exit code 2, found before anything is compiled or sampled, and no
output file or directory created or overwritten. A failure to write the outputs at the end
(a full disk, an I/O error) is one ``error:`` line naming the file, exit code 1, and leaves
``--out`` as it was (:mod:`bgmm.outputs`).

A run keeps a checkpoint in ``--out`` while it samples (:mod:`bgmm.checkpoint`). Ctrl-C
(SIGINT) or SIGTERM stops it after the chunk in progress with the checkpoint written: exit
code 130 and a line saying how to go on; ``bgmm resume DIR`` finishes a stopped or killed
run with the draws it would have given had it never stopped.
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

from bgmm.errors import UserError
from bgmm.outputs import OutputError

CLI_IMPORTED = time.perf_counter()  # after `import bgmm`, which bgmm.cli's package runs first

EXIT_USAGE = 2
EXIT_OUTPUT = 1  # the run worked but its outputs could not be written
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
# Up to this many data values (8 MB in float64) fit imports its output libraries early.
SMALL_DATA_VALUES = 10**6


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(message)


def _features(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected two features like 0,1 or x,y; got {text!r}")
    return parts[0], parts[1]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _add_config_options(parser: argparse.ArgumentParser, command: str) -> None:
    """The run configuration's options as flags: help, choices and types from
    :class:`bgmm.config.RunConfig`, the defaults of ``command`` in the help.

    Every flag defaults to None, "not given": the config then takes its own default, so
    the defaults live there only. The values are checked by the config, which names the
    field; :func:`_message` names its flag.
    """
    from bgmm.config import RunConfig, demo_config, options

    shown = demo_config("correct") if command == "demo" else RunConfig()
    tutorial = demo_config("tutorial") if command == "demo" else None
    for name, option in options().items():
        if option.flag is None or (command == "demo" and not option.demo):
            continue
        default = getattr(shown, name)
        text = option.help
        if default is not None and option.parse is not bool:
            text += f" (default {default}"
            if tutorial is not None and name != "target" and getattr(tutorial, name) != default:
                text += f"; --target tutorial: {getattr(tutorial, name)}"
            text += ")"
        flags = [option.short, option.flag] if option.short else [option.flag]
        if option.parse is bool:
            parser.add_argument(*flags, dest=name, action="store_true", default=None, help=text)
        else:
            parser.add_argument(
                *flags,
                dest=name,
                type=option.parse,
                choices=option.choices,
                default=None,
                help=text,
                metavar=_METAVARS.get(option.parse),
            )


_METAVARS = {int: "N", float: "X"}


def _config(args):
    """The :class:`bgmm.config.RunConfig` the command line asks for."""
    from bgmm.config import RunConfig, demo_config, options

    given = {
        name: getattr(args, name)
        for name in options()
        if getattr(args, name, None) is not None and name != "target"
    }
    if args.command == "demo":
        return demo_config(args.target or "correct", **given)
    return RunConfig(target=args.target or "correct", **given)


def _message(error: UserError) -> str:
    """The error's one line, naming its option by the flag that sets it."""
    from bgmm.config import options

    option = options().get(error.option or "")
    if option is None or option.flag is None:
        return str(error)
    return f"{option.flag}: {error.message}"


def _add_reporting_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_run_options(parser: argparse.ArgumentParser, command: str, out_default: str) -> None:
    _add_config_options(parser, command)
    parser.add_argument(
        "--out",
        default=out_default,
        help=f"output directory (default ./{out_default}); afterwards it holds exactly this "
        "run's files",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="use --out even if it holds files bgmm did not write (they are replaced) or an "
        "interrupted run (discarded)",
    )
    parser.add_argument(
        "--features",
        type=_features,
        default=("0", "1"),
        help="two features to plot for D > 2, by index or name (default 0,1)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument(
        "--checkpoint-every",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="write the run's checkpoint in --out at most this often (default 30; 0: after "
        "every compiled chunk of steps)",
    )
    _add_reporting_options(parser)
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

    demo = sub.add_parser(
        "demo",
        help="the TFP tutorial's data, priors and sampler",
        description="The TFP tutorial's data, priors and start. --target tutorial: the "
        "tutorial's exact density and HMC configuration; --target correct (default): the "
        "model as written, with the Wishart Jacobian, and bgmm's sampler defaults.",
    )
    _add_run_options(demo, "demo", "bgmm-demo")

    fit = sub.add_parser("fit", help="sample the posterior for your data (CSV or .npy)")
    fit.add_argument(
        "data",
        help="CSV (header row optional) or .npy file, one row per observation; - for "
        "standard input",
    )
    _add_run_options(fit, "fit", "bgmm-fit")

    resume = sub.add_parser(
        "resume", help="finish a run that was stopped (Ctrl-C) or killed, from its checkpoint"
    )
    resume.add_argument("dir", metavar="DIR", help="the stopped run's --out directory")
    resume.add_argument(
        "--data",
        help="the run's data file, if it moved or was read from standard input (it must "
        "hold the same values)",
    )
    _add_reporting_options(resume)

    summary = sub.add_parser("summary", help="summarise a saved posterior.nc")
    summary.add_argument("path", help="a posterior.nc written by bgmm")
    summary.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def run() -> NoReturn:
    """The ``bgmm`` console command: :func:`main` in a process that ends with it.

    The command owns its process, so it exposes each CPU core as a JAX device (chains
    then run one per core), which a library import must not do.
    """
    import bgmm

    bgmm.use_cpu_cores()

    # What is imported now lives until exit: the garbage collector need not scan it at
    # every collection (JAX's tracing triggers many) nor once more at exit. Measured on a
    # warm `bgmm demo`: 0.35 s less in the run and 0.4 s less at exit.
    gc.freeze()
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run one ``bgmm`` command in this process.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``bgmm`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 done; 2 a user error (bad input, option or ``--out``: one ``error:``
        line on stderr, found before any compiling or sampling, nothing written); 1 the
        outputs could not be written at the end (a full disk, an I/O error: one ``error:``
        line naming the file, ``--out`` left as it was); 130 interrupted (SIGINT or
        SIGTERM: the checkpoint in ``--out`` is written and ``bgmm resume`` finishes the
        run).
    """
    with warnings.catch_warnings():
        warnings.showwarning = _print_warning
        return _main(argv)


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one ``warning:`` line on stderr (no source line, no location)."""
    text = str(message).removeprefix("bgmm: ").replace("\n", " ")
    print(f"warning: {text}", file=sys.stderr)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from importlib.metadata import version

            print(f"bgmm {version('bgmm')}")
            return 0
        if args.command is None:
            raise UserError("missing command: demo, fit, resume or summary (see bgmm --help)")
        commands = {"demo": _demo, "fit": _fit, "resume": _resume, "summary": _summary}
        return commands[args.command](args)
    except UserError as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OutputError as exc:  # from publishing: the outputs could not be written
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    except KeyboardInterrupt as exc:
        from bgmm.checkpoint import Interrupted

        if isinstance(exc, Interrupted):
            print(
                f"interrupted: {exc.steps_done} of {exc.steps_total} chain steps done; "
                f"resume with: bgmm resume {shlex.quote(str(exc.directory))}",
                file=sys.stderr,
            )
        else:
            print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


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


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _use_cache(args) -> None:
    if not args.no_cache:
        from bgmm.cache import enable_compilation_cache

        enable_compilation_cache()


def _demo(args) -> int:
    import bgmm
    from bgmm.api import BayesianGMM
    from bgmm.tutorial import tutorial_data, tutorial_start

    _import_output_libraries_in_background(plots=not args.no_plots)
    model = BayesianGMM.from_config(_config(args))
    _use_cache(args)
    out = _prepare_out(args, model, tutorial_data().shape, protect=())
    startup_seconds = _process_seconds()
    result = _sample(
        out,
        args,
        lambda **checkpointing: model.fit(
            tutorial_data(),
            initial=bgmm.Params(*tutorial_start()),
            progress=_progress(args),
            **checkpointing,
        ),
    )
    return _publish_demo(result, args, out, startup_seconds)


def _publish_demo(result, args, out, startup_seconds: float) -> int:
    from bgmm.checks import chol_precision_normal_check

    # The check runs in XLA, with the GIL released, while the outputs are written in Python.
    with ThreadPoolExecutor(max_workers=1) as pool:
        check_running = pool.submit(chol_precision_normal_check, seed=result.settings["seed"])
        written = _write_outputs(result, args, (0, 1), out)
        check = check_running.result()
    record = result.to_dict() | {"startup_seconds": startup_seconds}
    record["mvn_check"] = check.to_dict()
    _finish(result, record, written, args, preamble=check.report())
    return 0


def _fit(args) -> int:
    from bgmm.api import BayesianGMM
    from bgmm.data import STDIN_NAME, load_table

    model = BayesianGMM.from_config(_config(args))  # options checked before reading data
    data, names = load_table(args.data)
    source = STDIN_NAME if args.data == "-" else args.data
    if data.size <= SMALL_DATA_VALUES:
        _import_output_libraries_in_background(plots=not args.no_plots)
    names = names or [f"x{j}" for j in range(data.shape[1])]
    features = _resolve_features(args.features, names)
    _check_data(data, names, source, model)
    _use_cache(args)
    out = _prepare_out(args, model, data.shape, protect=() if args.data == "-" else (args.data,))
    startup_seconds = _process_seconds()
    result = _sample(
        out,
        args,
        lambda **checkpointing: model.fit(
            data, feature_names=names, progress=_progress(args), source=source, **checkpointing
        ),
    )
    written = _write_outputs(result, args, features, out)
    _finish(result, result.to_dict() | {"startup_seconds": startup_seconds}, written, args)
    return 0


def _check_data(data, names: list[str], source: str, model) -> None:
    """Everything about the data that would stop or mislead the fit, before --out is made.

    The fit checks these again; here they come before any directory is created or anything
    compiled. Warnings (a feature dominated by a few extreme values) are one ``warning:``
    line each on stderr.
    """
    import warnings

    from bgmm import data as checks

    checks.check_num_components(data, model.n_components, source)
    checks.check_num_features(data.shape[1], source)
    checks.check_value_range(data, source, names)
    if model.config.standardizes:  # no constant column
        checks.Standardizer.fit(data, source=source)
    if model.config.priors == "default":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", checks.DataWarning)  # printed below, once
            messages = checks.check_extreme_values(data, names)
        for message in messages:
            print(f"warning: {source}: {message}", file=sys.stderr)


def _prepare_out(args, model, data_shape: tuple[int, int], protect):
    """Check --out (room, writable, bgmm's own) and create it: before any compiling."""
    from bgmm.data import check_draws_memory
    from bgmm.outputs import estimate_output_bytes

    num_chains = model.num_chains
    num_draws = model.num_draws
    num_rows, num_features = data_shape
    check_draws_memory(num_chains, num_draws, model.n_components, num_features)
    expected = estimate_output_bytes(
        num_chains,
        num_draws,
        model.n_components,
        num_features,
        num_rows,
        num_plots=0 if args.no_plots else 2,
    )
    return _checked_output(args.out, force=args.force, expected_bytes=expected, protect=protect)


def _sample(out, args, run, *, resuming: bool = False):
    """``run(**checkpointing)`` with its checkpoint kept in --out, stopped by SIGINT/SIGTERM.

    The first signal asks the run to stop after its chunk: the checkpoint is written and
    :class:`bgmm.checkpoint.Interrupted` comes out (a second signal quits at once). The
    checkpoint outlives the run (``keep_checkpoint``) until the outputs replace it, so that
    a failure to write them can be resumed too. On failure, what preparing --out created
    is undone, except a checkpoint that ``bgmm resume`` can finish.
    """
    from bgmm.checkpoint import stop_on_signal

    def notice(signum: int) -> None:
        print(
            f"\n{signal.Signals(signum).name}: stopping after the current chunk to write a "
            "checkpoint (again to quit at once)",
            file=sys.stderr,
        )

    checkpointing = {"should_stop": None, "keep_checkpoint": True}
    if not resuming:
        checkpointing |= {
            "checkpoint_dir": out.path,
            "checkpoint_interval": args.checkpoint_every,
            "extra": _resume_record(args),
        }
    with stop_on_signal((signal.SIGINT, signal.SIGTERM), notice=notice) as should_stop:
        checkpointing["should_stop"] = should_stop
        try:
            return run(**checkpointing)
        except UserError:
            out.discard(keep_checkpoint=resuming)
            raise
        except BaseException:
            out.discard(keep_checkpoint=True)
            raise


def _resume_record(args) -> dict:
    """What ``bgmm resume`` needs to finish the run as this command would have: the
    command, the data file (absolute) and the options that shape the outputs."""
    options = {
        name: value
        for name, value in vars(args).items()
        if name not in ("json", "quiet", "out", "force", "version", "command", "data")
    }
    record = {"command": args.command, "options": options}
    if args.command == "fit" and args.data != "-":
        record["data_path"] = os.path.abspath(args.data)
    return record


def _resume(args) -> int:
    """``bgmm resume DIR``: finish the run whose checkpoint is in DIR, then write its
    outputs there as the command that started it would have."""
    from bgmm import api
    from bgmm.checkpoint import has_checkpoint, read_checkpoint

    if not Path(args.dir).is_dir():
        raise UserError(f"{args.dir}: no such directory")
    if not has_checkpoint(args.dir):
        raise UserError(f"{args.dir}: holds no checkpoint to resume")
    checkpoint = read_checkpoint(args.dir)
    record = checkpoint.extra
    command = record.get("command")
    if command not in ("demo", "fit") or not isinstance(record.get("options"), dict):
        raise UserError(
            f"{args.dir}: the checkpoint was not written by `bgmm demo` or `bgmm fit`; "
            "resume it from Python (bgmm.api.resume)"
        )
    run_args = argparse.Namespace(**record["options"])
    run_args.command, run_args.out, run_args.force = command, args.dir, False
    run_args.json, run_args.quiet = args.json, args.quiet
    run_args.features = tuple(run_args.features)
    data = _resume_data(args, record)
    _import_output_libraries_in_background(plots=not run_args.no_plots)
    names = list(checkpoint.fit["feature_names"])
    features = _resolve_features(run_args.features, names)
    _use_cache(run_args)
    out = _checked_output(run_args.out, allow_checkpoint=True)
    startup_seconds = _process_seconds()
    result = _sample(
        out,
        run_args,
        lambda **checkpointing: api.resume(
            out.path,
            data,
            progress=_progress(args),
            should_stop=checkpointing["should_stop"],
            keep_checkpoint=True,
        ),
        resuming=True,
    )
    if command == "demo":
        return _publish_demo(result, run_args, out, startup_seconds)
    written = _write_outputs(result, run_args, features, out)
    _finish(result, result.to_dict() | {"startup_seconds": startup_seconds}, written, run_args)
    return 0


def _resume_data(args, record: dict):
    """The data of the run to resume: the tutorial's, ``--data``, or the file it read."""
    from bgmm.data import load_table

    if record["command"] == "demo":
        from bgmm.tutorial import tutorial_data

        return tutorial_data()
    path = args.data or record.get("data_path")
    if path is None:
        raise UserError(
            f"{args.dir}: the run read its data from standard input; give the same data "
            "with --data FILE"
        )
    try:
        data, _ = load_table(path)
    except UserError as exc:
        hint = "" if args.data else " (give its new place with --data FILE)"
        raise UserError(f"{exc}{hint}") from None
    return data


def _checked_output(out: str, **options):
    from bgmm.outputs import prepare_output

    try:
        return prepare_output(out, **options)
    except OutputError as exc:
        raise UserError(str(exc)) from None


def _summary(args) -> int:
    from bgmm.results import (
        check_inference_data,
        format_summary,
        load_inference_data,
        summarize,
        to_json,
    )

    path = Path(args.path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a posterior.nc file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        idata = load_inference_data(path)
    except Exception as exc:  # netCDF/HDF5 raise many types for a file that is not theirs
        raise UserError(f"{path}: not a readable NetCDF file ({type(exc).__name__})") from None
    try:
        check_inference_data(idata)
    except ValueError as exc:
        raise UserError(f"{path}: not a bgmm result ({exc})") from None
    try:
        summary = summarize(idata)
    except (ValueError, TypeError, KeyError, IndexError, _np_errors()) as exc:
        # A file shaped like bgmm's whose contents still break the summary (hand-made or
        # damaged): say so in one line rather than with a traceback.
        raise UserError(
            f"{path}: cannot summarise it ({type(exc).__name__}: {exc})".replace("\n", " ")
        ) from None
    posterior = idata.posterior
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


def _np_errors() -> type[Exception]:
    import numpy as np

    return np.linalg.LinAlgError


def _plain(value):
    """numpy scalars from NetCDF attributes -> Python numbers for JSON."""
    return value.item() if hasattr(value, "item") else value


def _resolve_features(features: tuple[str, str], names: list[str]) -> tuple[int, int]:
    """Feature indices for the plots, checked before any sampling."""
    if len(names) == 1:
        return 0, 0  # one feature: the plots show 1-D densities and ignore the choice
    indices = []
    for feature in features:
        if feature.lstrip("-").isdigit():
            index = int(feature)
            if not 0 <= index < len(names):
                raise UserError(f"--features: index {index} out of range 0..{len(names) - 1}")
        elif feature in names:
            index = names.index(feature)
        else:
            raise UserError(f"--features: no feature named {feature!r} (have {', '.join(names)})")
        indices.append(index)
    if indices[0] == indices[1]:
        raise UserError("--features: pick two different features")
    return indices[0], indices[1]


def _write_outputs(result, args, features: tuple[int, int], out) -> list[Path]:
    """Write every output into a staging folder beside --out, then swap it in whole.

    The NetCDF file is made in memory and written with plain file I/O
    (:func:`bgmm.results.inference_data_bytes`): a full disk is then an ``OSError``, which
    :meth:`bgmm.outputs.OutputDir.publish` reports in one line, rather than a crash inside
    libhdf5.
    """
    from bgmm.outputs import write_bytes
    from bgmm.results import inference_data_bytes

    writers = {"posterior.nc": lambda path: write_bytes(path, inference_data_bytes(result.idata))}
    if not args.no_plots:
        from bgmm import plots

        writers["locations.png"] = lambda path: plots.plot_location_kde(
            result.idata, path, features
        )
        writers["trace.png"] = lambda path: plots.plot_trace(result.idata, path, features=features)
    try:
        names = out.publish(writers)
    except BaseException:
        # --out as it was before the run: a directory made for it goes unless a checkpoint
        # in it can still be resumed once the disk has room.
        out.discard(keep_checkpoint=True)
        raise
    return [Path(args.out) / name for name in names]


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
