"""The commands: ``demo``, ``fit``, ``select``, ``resume``, ``summary`` and ``predict``,
each from parsed arguments to an exit code."""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bgmm.cli.options import config_from
from bgmm.cli.running import (
    SMALL_DATA_VALUES,
    checked_output,
    finish,
    import_output_libraries_in_background,
    prepare_out,
    process_seconds,
    progress_wanted,
    sample,
    use_cache,
    write_outputs,
)
from bgmm.data.columns import resolve_features
from bgmm.errors import UserError
from bgmm.outputs import write_bytes

__all__ = ["COMMANDS"]


def demo(args) -> int:
    import bgmm
    from bgmm.api import BayesianGMM
    from bgmm.tutorial import tutorial_data, tutorial_start

    import_output_libraries_in_background(plots=not args.no_plots)
    model = BayesianGMM.from_config(config_from(args))
    use_cache(args)
    out = prepare_out(args, model, tutorial_data().shape, protect=())
    startup_seconds = process_seconds()
    result = sample(
        out,
        args,
        lambda **checkpointing: (
            model.fit(
                tutorial_data(),
                initial=bgmm.Params(*tutorial_start()),
                progress=progress_wanted(args),
                **checkpointing,
            ).result_
        ),
    )
    return _publish_demo(result, args, out, startup_seconds)


def _publish_demo(result, args, out, startup_seconds: float) -> int:
    from bgmm.checks import chol_precision_normal_check

    # The check runs in XLA, with the GIL released, while the outputs are written in Python.
    with ThreadPoolExecutor(max_workers=1) as pool:
        check_running = pool.submit(chol_precision_normal_check, seed=result.settings["seed"])
        written = write_outputs(result, args, (0, 1), out)
        check = check_running.result()
    record = result.to_dict() | {"startup_seconds": startup_seconds}
    record["mvn_check"] = check.to_dict()
    finish(result, record, written, args, preamble=check.report())
    return 0


def fit(args) -> int:
    from bgmm.api import BayesianGMM
    from bgmm.cli.cluster import fit_on_processes, join_cluster

    config = config_from(args)  # options checked before reading data
    if join_cluster(args):
        config = config.replace(split_rows=True)
    model = BayesianGMM.from_config(config)
    if config.split_rows:
        import signal

        import jax

        from bgmm.cli.signals import interrupt_on_signal

        if jax.process_count() > 1:
            return fit_on_processes(args, model)
        # No checkpoint (its state is on every device), so a signal ends the run at once,
        # once --out is in hand to remove.
        with interrupt_on_signal((signal.SIGINT, signal.SIGTERM)) as latch:
            data, names, source, features, out = _read_data(args, model)
            startup_seconds = process_seconds()
            try:
                latch.arm()
                result = _fit_command_run(model, args, data, names, source)()
                if latch.interrupted():  # its KeyboardInterrupt was lost (see the latch)
                    raise KeyboardInterrupt
            except BaseException:
                out.discard(keep_checkpoint=False)
                raise
    else:
        data, names, source, features, out = _read_data(args, model)
        startup_seconds = process_seconds()
        result = sample(out, args, _fit_command_run(model, args, data, names, source))
    written = write_outputs(result, args, features, out, data=data)
    finish(result, result.to_dict() | {"startup_seconds": startup_seconds}, written, args)
    return 0


def _fit_command_run(model, args, data, names, source):
    """``run(**checkpointing) -> FitResult``: the fit of ``bgmm fit``."""

    def run(**checkpointing):
        return model.fit(
            data,
            feature_names=names,
            progress=progress_wanted(args),
            source=source,
            **checkpointing,
        ).result_

    return run


def select(args) -> int:
    """``bgmm select DATA``: fit the grid of K (and structures), choose by PSIS-LOO, write
    the choice and the chosen model's outputs."""
    from bgmm.api import BayesianGMM
    from bgmm.config import defaults
    from bgmm.report import to_json
    from bgmm.selection import check_grid, parse_components
    from bgmm.selection import select as select_models

    ks = parse_components(args.components)
    types = [t.strip() for t in args.covariance_types.split(",")]
    config = config_from(args)  # the grid's options, checked before reading data
    options = {
        name: getattr(config, name)
        for name in defaults()
        if name not in ("n_components", "covariance_type")
    }
    check_grid(ks, types, options)
    largest = BayesianGMM.from_config(config.replace(n_components=ks[-1]))
    data, names, source, features, out = _read_data(args, largest)
    startup_seconds = process_seconds()
    try:
        selection = select_models(
            data,
            ks,
            types,
            feature_names=names,
            progress=progress_wanted(args),
            source=source,
            sparse=args.sparse,
            **options,
        )
    except BaseException:
        out.discard(keep_checkpoint=False)
        raise
    result = selection.model.result_
    extra = {
        "selection.json": lambda path: write_bytes(path, to_json(selection.to_dict()).encode())
    }
    if not args.no_plots:
        from bgmm.plots import plot_selection

        extra["selection.png"] = lambda path: plot_selection(selection, path)
    written = write_outputs(result, args, features, out, data=data, extra=extra)
    record = result.to_dict() | {"startup_seconds": startup_seconds}
    record["selection"] = selection.to_dict()
    finish(result, record, written, args, preamble=selection.report())
    return 0


def _read_data(args, model):
    """DATA read and checked for ``model`` (the largest, for select), the plotted features
    resolved and --out prepared, before anything compiles: (data, names, source,
    features, out)."""
    from bgmm.data import STDIN_NAME, load_table

    data, names = load_table(args.data)
    source = STDIN_NAME if args.data == "-" else args.data
    if data.size <= SMALL_DATA_VALUES:
        import_output_libraries_in_background(plots=not args.no_plots)
    names = names or [f"x{j}" for j in range(data.shape[1])]
    features = resolve_features(args.features, names)
    check_data(data, names, source, model)
    use_cache(args)
    out = prepare_out(args, model, data.shape, protect=() if args.data == "-" else (args.data,))
    return data, names, source, features, out


def check_data(data, names: list[str], source: str, model, whole: bool = True) -> None:
    """Everything about the data that would stop or mislead the fit, before --out is made.

    The fit checks these again; here they come before any directory is created or anything
    compiled. Warnings (a feature dominated by a few extreme values) are one ``warning:``
    line each on stderr. Of a process's block of the rows (``whole`` False) only what one
    block can tell: its columns and values.
    """
    import warnings

    from bgmm import data as checks

    checks.check_num_features(data.shape[1], source)
    checks.check_value_range(data, source, names)
    if not whole:
        return
    checks.check_num_components(data, model.n_components, source)
    if model.config.standardizes:  # no constant column
        checks.Standardizer.fit(data, source=source)
    if model.config.priors == "default":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", checks.DataWarning)  # printed below, once
            messages = checks.check_extreme_values(data, names)
        for message in messages:
            print(f"warning: {source}: {message}", file=sys.stderr)


def resume(args) -> int:
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
    import_output_libraries_in_background(plots=not run_args.no_plots)
    names = list(checkpoint.fit["feature_names"])
    features = resolve_features(run_args.features, names)
    use_cache(run_args)
    out = checked_output(run_args.out, allow_checkpoint=True)
    startup_seconds = process_seconds()
    result = sample(
        out,
        run_args,
        lambda **checkpointing: api.resume(
            out.path,
            data,
            progress=progress_wanted(args),
            should_stop=checkpointing["should_stop"],
            keep_checkpoint=True,
        ),
        resuming=True,
    )
    if command == "demo":
        return _publish_demo(result, run_args, out, startup_seconds)
    written = write_outputs(result, run_args, features, out, data=data)
    finish(result, result.to_dict() | {"startup_seconds": startup_seconds}, written, run_args)
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


def summary(args) -> int:
    from bgmm.report import format_summary, to_json
    from bgmm.results import summarize

    path = Path(args.path)
    idata = _read_result(path)
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
        record["covariance_type"] = attrs.get("covariance_type", "full")
        record.update(summary)
        for key in ("compile_seconds", "sampling_seconds", "total_seconds"):
            record[key] = attrs.get(key)
        print(to_json({k: _plain(v) for k, v in record.items()}))
    else:
        shown = ("sampler", "target", "adaptation", "num_chains", "num_warmup", "num_draws")
        settings = {k: attrs[k] for k in shown if k in attrs}
        if attrs.get("covariance_type", "full") != "full":
            settings["covariance_type"] = attrs["covariance_type"]
        print(format_summary(summary, settings))
    return 0


def predict(args) -> int:
    """``bgmm predict DIR NEWDATA``: the membership probabilities of new rows under a saved
    fit, as ``assignments.csv`` (on standard output, or in ``--out``)."""
    import sys

    from bgmm.assignments import membership_probabilities
    from bgmm.cli.running import assignments_csv
    from bgmm.data import STDIN_NAME, load_table
    from bgmm.plumbing.files import write_atomically

    result_path = Path(args.dir)
    if result_path.is_dir():
        result_path = result_path / "posterior.nc"
    out = Path(args.out) if args.out else None
    if out is not None:
        _check_predictions_path(out, result_path, args.data)
    idata = _read_result(result_path)
    fitted_names = [str(name) for name in idata.posterior["feature"].values]
    data, names = load_table(args.data)
    source = STDIN_NAME if args.data == "-" else args.data
    data = _fitted_columns(data, names, fitted_names, source)
    draws = (idata.posterior[v].values for v in ("weights", "means", "chol_precision"))
    table = assignments_csv(membership_probabilities(data, *draws).mean)
    if out is None:
        sys.stdout.buffer.write(table)
        sys.stdout.flush()
    else:
        write_atomically(out, table)
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _check_predictions_path(out: Path, result_path: Path, data: str) -> None:
    """``--out`` names a file to write outside the fit's directory (whose files are the
    fit's own) that is not the new data."""
    if out.is_dir():
        raise UserError(f"{out}: is a directory; --out names the CSV file to write")
    if not out.parent.is_dir():
        raise UserError(f"{out}: its directory {out.parent} does not exist")
    if result_path.parent.is_dir() and out.parent.samefile(result_path.parent):
        raise UserError(f"{out}: is in the fit's directory, which holds the fit's outputs only")
    if data != "-" and out.exists() and Path(data).exists() and out.samefile(data):
        raise UserError(f"{out}: is the new data file; choose another --out")


def _fitted_columns(data, names: list[str] | None, fitted: list[str], source: str):
    """The columns of ``data`` the fit used, in its order: by name when the new file's
    header has them all, else by position when the fit's data had no header."""
    if names is not None and set(fitted) <= set(names):
        return data[:, [names.index(name) for name in fitted]]
    unnamed_fit = fitted == [f"x{j}" for j in range(len(fitted))]
    if names is not None and not unnamed_fit:
        missing = [name for name in fitted if name not in names]
        raise UserError(
            f"{source}: no column named {missing[0]!r}; the fit used the columns "
            f"{', '.join(fitted)}"
        )
    if data.shape[1] != len(fitted):
        raise UserError(
            f"{source}: {data.shape[1]} columns, but the fit used {len(fitted)} features "
            f"({', '.join(fitted)})"
        )
    return data


def _read_result(path: Path):
    """The InferenceData in ``path``, a ``posterior.nc`` written by bgmm."""
    from bgmm.results import check_inference_data, load_inference_data

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
    return idata


def _np_errors() -> type[Exception]:
    import numpy as np

    return np.linalg.LinAlgError


def _plain(value):
    """numpy scalars from NetCDF attributes -> Python numbers for JSON."""
    return value.item() if hasattr(value, "item") else value


COMMANDS = {
    "demo": demo,
    "fit": fit,
    "resume": resume,
    "summary": summary,
    "predict": predict,
    "select": select,
}
