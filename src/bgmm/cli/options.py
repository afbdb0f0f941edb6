"""The command line's parser: its flags, their help, and the run configuration they make.

The run's options are :class:`bgmm.config.RunConfig`'s fields, turned into flags here; the
others (``--out``, ``--features``, ...) are the command line's own.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from bgmm.checkpoint import DEFAULT_CHECKPOINT_INTERVAL
from bgmm.cli.cluster import add_cluster_options
from bgmm.errors import UserError

__all__ = ["build_parser", "config_from", "message_of"]


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
    grid = ("n_components", "covariance_type") if command == "select" else ()
    tutorial = demo_config("tutorial") if command == "demo" else None
    for name, option in options().items():
        if option.flag is None or (command == "demo" and not option.demo) or name in grid:
            continue
        default = getattr(shown, name)
        text = option.help.replace("%", "%%")  # argparse formats help with %
        if default is not None and option.parse is not bool:
            text += f" (default {default}"
            if tutorial is not None and name != "target" and getattr(tutorial, name) != default:
                text += f"; --target tutorial: {getattr(tutorial, name)}"
            text += ")"
        flags = [option.short, option.flag] if option.short else [option.flag]
        if option.parse is bool:  # --flag / --no-flag; neither: the config's default
            parser.add_argument(
                *flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            parser.add_argument(
                *flags,
                dest=name,
                type=option.parse,
                choices=option.choices,
                default=None,
                help=text,
                metavar=option.metavar or _METAVARS.get(option.parse),
            )


_METAVARS = {int: "N", float: "X"}
# Options of the command line's own (not run options) that a UserError may name.
_OWN_FLAGS = {"features": "--features", "checkpoint_interval": "--checkpoint-every"}


def config_from(args):
    """The :class:`bgmm.config.RunConfig` the command line asks for."""
    from bgmm.config import RunConfig, demo_config, options

    given = {
        name: getattr(args, name) for name in options() if getattr(args, name, None) is not None
    }
    if args.command == "demo":
        return demo_config(**given)
    return RunConfig(**given)


def message_of(error: UserError) -> str:
    """The error's one line, naming its option by the flag that sets it."""
    from bgmm.config import options

    if error.option in _OWN_FLAGS:
        return f"{_OWN_FLAGS[error.option]}: {error.message}"
    option = options().get(error.option or "")
    if option is None or option.flag is None:
        return str(error)
    flags = f"{option.short}/{option.flag}" if option.short else option.flag
    return f"{flags}: {error.message}"


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
        default=DEFAULT_CHECKPOINT_INTERVAL,
        metavar="SECONDS",
        help="write the run's checkpoint in --out at most this often (default "
        f"{DEFAULT_CHECKPOINT_INTERVAL:g}; 0: after every compiled chunk of steps)",
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
    add_cluster_options(fit)

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

    _add_select_command(sub)
    _add_predict_command(sub)
    return parser


def _add_select_command(sub) -> None:
    select = sub.add_parser(
        "select",
        help="choose the number of components (and covariance structure) by PSIS-LOO",
        description="Fit every K (and covariance structure) of the grid with the same "
        "options, rank them by PSIS-LOO elpd, choose the simplest model within 2 standard "
        "errors of the best, print the table and write selection.json, selection.png and "
        "the chosen model's outputs into --out.",
    )
    select.add_argument("data", help="as for bgmm fit")
    select.add_argument(
        "-k",
        "--k",
        "--components",
        dest="components",
        default="1-8",
        metavar="K",
        help="the K to try: a range or list like 1-8 or 2,3,5 (default 1-8)",
    )
    select.add_argument(
        "--covariance",
        dest="covariance_types",
        default="full",
        metavar="TYPES",
        help="covariance structures to try, comma-separated (default full)",
    )
    select.add_argument(
        "--sparse",
        action="store_true",
        help="also fit an overfitted mixture with the largest K and a sparse Dirichlet prior "
        "(concentration 0.01) and report its posterior of the number of occupied components",
    )
    _add_run_options(select, "select", "bgmm-select")


def _add_predict_command(sub) -> None:
    predict = sub.add_parser(
        "predict",
        help="cluster new rows with a saved fit",
        description="Membership probabilities of new rows under a saved fit's posterior, "
        "written as assignments.csv is: cluster, probability, p_0 ... p_{K-1}, one row per "
        "input row in input order.",
    )
    predict.add_argument("dir", metavar="DIR", help="a fit's --out directory (or its posterior.nc)")
    predict.add_argument(
        "data",
        metavar="NEWDATA",
        help="CSV or .npy file of new rows (- for standard input); a header selects the "
        "fit's columns by name",
    )
    predict.add_argument("--out", help="CSV file to write (default: standard output)")
