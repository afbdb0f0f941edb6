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

import gc
import shlex
import sys
import warnings
from typing import NoReturn

from bgmm.cli.options import build_parser, message_of
from bgmm.errors import UserError
from bgmm.outputs import OutputError

__all__ = ["EXIT_INTERRUPTED", "EXIT_OUTPUT", "EXIT_USAGE", "build_parser", "main", "run"]

EXIT_USAGE = 2
EXIT_OUTPUT = 1  # the run worked but its outputs could not be written
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def run() -> NoReturn:
    """The ``bgmm`` console command: :func:`main` in a process that ends with it.

    The command owns its process, so it exposes each CPU core as a JAX device (chains
    then run one per core), which a library import must not do.
    """
    import bgmm

    bgmm.use_cpu_cores()

    # What is imported now lives until exit: the garbage collector need not scan it at
    # every collection (JAX's tracing triggers many) nor once more at exit (docs/design.md
    # section 12).
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
            raise UserError(
                "missing command: demo, fit, select, resume, summary or predict (see bgmm --help)"
            )
        from bgmm.cli.commands import COMMANDS

        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {message_of(exc)}", file=sys.stderr)
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
