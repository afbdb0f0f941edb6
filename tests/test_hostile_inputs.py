"""A battery of malformed files and flags: every one is refused the same way.

Each case must give exit code 2, nothing on stdout, exactly one line on stderr starting
with ``error:`` (and naming what is wrong), no traceback, and leave the directory exactly as
it was: no ``--out`` created, no file changed. Most run in this process through
``bgmm.cli.main`` (fast: no interpreter start, no JAX import); a few also run as real
``python -m bgmm.cli`` processes to check the whole path, exit code included.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import bgmm
import bgmm.cli

GOOD_ROWS = "\n".join(f"{i % 7 * 1.5 + 0.25 * i},{(i * 37) % 11 - 3.5}" for i in range(20))
GOOD = f"a,b\n{GOOD_ROWS}\n".encode()


@dataclass
class Case:
    id: str
    argv: list[str]
    fragments: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    # The message starts with this file name, and names it once.
    file: str | None = None


def fit(path: str, *options: str) -> list[str]:
    return ["fit", path, "-k", "2", "--quiet", *options, "--out", "out/sub"]


def csv_case(case_id: str, content: bytes, fragments: list[str], *options: str) -> Case:
    return Case(
        case_id, fit("data.csv", *options), fragments, {"data.csv": content}, file="data.csv"
    )


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_case(case_id: str, content: bytes, fragments: list[str]) -> Case:
    return Case(case_id, fit("data.npy"), fragments, {"data.npy": content}, file="data.npy")


def option_case(case_id: str, options: list[str], fragments: list[str]) -> Case:
    argv = ["fit", "good.csv", "-k", "2", "--quiet", *options, "--out", "out/sub"]
    return Case(case_id, argv, fragments, {"good.csv": GOOD})


def npy_with_header(shape: tuple[int, ...], payload: bytes) -> bytes:
    """A .npy file whose header claims ``shape`` (float64) followed by ``payload``."""
    buffer = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + payload


def netcdf(**groups) -> bytes:
    """A NetCDF file with the given groups, each a dict of name -> (dims, values)."""
    import xarray as xr

    from bgmm.results import inference_data_bytes

    class Fake:  # what inference_data_bytes reads of an InferenceData
        def __init__(self, datasets):
            self.datasets = datasets

        def groups(self):
            return list(self.datasets)

        def __getitem__(self, name):
            return self.datasets[name]

    datasets = {
        name: xr.Dataset({var: (dims, values) for var, (dims, values) in variables.items()})
        for name, variables in groups.items()
    }
    return inference_data_bytes(Fake(datasets))


C, S, K, D = 2, 4, 2, 2
POSTERIOR = {
    "weights": (("chain", "draw", "component"), np.full((C, S, K), 0.5)),
    "means": (("chain", "draw", "component", "feature"), np.zeros((C, S, K, D))),
    "chol_precision": (
        ("chain", "draw", "component", "feature", "feature_"),
        np.tile(np.eye(D), (C, S, K, 1, 1)),
    ),
    "covariance": (
        ("chain", "draw", "component", "feature", "feature_"),
        np.tile(np.eye(D), (C, S, K, 1, 1)),
    ),
}
STATS = {"diverging": (("chain", "draw"), np.zeros((C, S), dtype=bool))}


def summary_case(case_id: str, content: bytes, fragments: list[str]) -> Case:
    return Case(
        case_id,
        ["summary", "posterior.nc"],
        ["posterior.nc", *fragments],
        {"posterior.nc": content},
    )


def _fifo_without_data(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.csv")

    def open_and_close():  # a writer that writes nothing: the reader sees end of file
        with open(tmp_path / "pipe.csv", "wb"):
            pass

    threading.Thread(target=open_and_close, daemon=True).start()


def _socket_file(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # short relative name: socket paths are limited to ~100 bytes
    try:
        sock.bind("data.sock")
    finally:
        os.chdir(cwd)
    sock.close()


def _checkpoint(tmp_path: Path) -> None:
    (tmp_path / "taken" / ".bgmm-checkpoint").mkdir(parents=True)
    (tmp_path / "taken" / ".bgmm-checkpoint" / "checkpoint.json").write_text("{}")


rng = np.random.default_rng(7)
WIDE = ",".join(f"x{j}" for j in range(1001)) + "\n" + ",".join(["1"] * 1001) + "\n"

CASES = [
    # --- encodings ----------------------------------------------------------------------
    csv_case("utf16-bom", "a,b\n1,2\n3,4\n".encode("utf-16"), ["UTF-16", "UTF-8"]),
    csv_case("utf16-no-bom", "a,b\n1,2\n3,4\n".encode("utf-16-le"), ["line 1", "NUL byte"]),
    csv_case("utf32", "a,b\n1,2\n".encode("utf-32"), ["UTF-32"]),
    csv_case("latin1", "température,b\n1,2\n3,4\n".encode("latin-1"), ["line 1", "UTF-8"]),
    csv_case("bom-mid-file", "\ufeffa,b\n1,2\n\ufeff3,4\n".encode(), ["line 3", "not a number"]),
    csv_case("nul-bytes", b"a,b\n1,2\x00\n3,4\n", ["line 2", "NUL byte"]),
    csv_case("binary-garbage", rng.bytes(4096), ["data.csv:"]),
    csv_case("gzip-csv", gzip.compress(b"a,b\n1,2\n3,4\n"), ["data.csv:"]),
    # --- separators ---------------------------------------------------------------------
    csv_case("mixed-separators", b"a,b;c\n1,2;3\n4;5,6\n", ["line 2", "not a number"]),
    csv_case("ragged", b"a,b\n1,2\n3\n5,6\n", ["line 3", "1 column", "expected 2"]),
    csv_case("trailing-separator", b"a,b\n1,2,\n3,4,\n", ["line 2", "3 columns"]),
    csv_case("tab-and-comma", b"a\tb\n1,2\t3\n4\t5\n", ["line 2", "'1,2'"]),
    csv_case("decimal-comma", b"a;b\n1,5;2\n3;4\n", ["line 2", "use '.'"]),
    csv_case("unclosed-quote", b'a,b\n1,"2\n3,4\n', ["line 2", "quoted"]),
    # --- values ---------------------------------------------------------------------------
    csv_case("huge-1e309", b"a,b\n1,2\n1e309,3\n4,5\n", ["line 3", "not finite"]),
    csv_case("huge-expression", b"a,b\n1,2\n1e308*10,3\n4,5\n", ["line 3", "not a number"]),
    csv_case("huge-finite", b"a,b\n1,2\n1e200,3\n4,5\n", ["column 1 ('a')", "as large as"]),
    csv_case("tiny-underflow", b"a,b\n1e-400,2\n1e-401,3\n1e-402,5\n", ["column 1", "constant"]),
    csv_case("tiny-spread", b"a,b\n1e-120,2\n2e-120,3\n3e-120,5\n", ["column 1", "standard dev"]),
    csv_case("nan", b"a,b\n1,2\nNaN,3\n4,5\n", ["line 3", "missing"]),
    csv_case("inf", b"a,b\n1,2\n3,inf\n4,5\n", ["line 3", "not finite"]),
    csv_case("minus-infinity", b"a,b\n1,2\n3,-Infinity\n4,5\n", ["line 3", "not finite"]),
    csv_case("empty-cell", b"a,b\n1,2\n,3\n4,5\n", ["line 3", "column 1", "missing"]),
    csv_case("blank-cell", b"a,b\n1,2\n3,  \n4,5\n", ["line 3", "column 2", "missing"]),
    csv_case("NA", b"a,b\n1,2\nNA,3\n4,5\n", ["line 3", "'NA'"]),
    csv_case("quoted-non-number", b'a,b\n1,2\n"1,5",3\n4,5\n', ["line 3", "'1,5'"]),
    csv_case("underscore", b"a,b\n1,2\n1_000,3\n4,5\n", ["line 3", "'1_000'", "'_'"]),
    csv_case("underscore-first-row", b"1_000,2\n3,4\n5,6\n", ["line 1", "'1_000'"]),
    csv_case("hex", b"a,b\n1,2\n0x10,3\n4,5\n", ["line 3", "'0x10'"]),
    csv_case(
        "arabic-digits", "a,b\n1,2\n\u0661\u0662\u0663,3\n4,5\n".encode(), ["line 3", "ASCII"]
    ),
    csv_case("fullwidth-digits", "a,b\n1,2\n\uff11\uff12,3\n4,5\n".encode(), ["line 3", "ASCII"]),
    csv_case("incomplete-exponent", b"a,b\n1,2\n1e,3\n4,5\n", ["line 3", "'1e'"]),
    csv_case("complex", b"a,b\n1,2\n1+2j,3\n4,5\n", ["line 3", "'1+2j'"]),
    csv_case("nan-payload", b"a,b\n1,2\nnan(1),3\n4,5\n", ["line 3", "'nan(1)'"]),
    # --- shapes ---------------------------------------------------------------------------
    csv_case("empty-file", b"", ["empty"]),
    csv_case("whitespace-only", b"  \n\t\n", ["empty"]),
    csv_case("header-only", b"a,b\n", ["no data rows"]),
    csv_case("blank-line-inside", b"a,b\n1,2\n\n3,4\n", ["line 3", "blank"]),
    csv_case("one-row", b"a,b\n1,2\n", ["constant"], "-k", "1"),
    csv_case("wide-1001-columns", WIDE.encode(), ["1001 columns", "at most 1000"]),
    csv_case(
        "more-components-than-rows", b"a,b\n1,2\n3,4\n5,7\n", ["3 rows", "5 components"], "-k", "5"
    ),
    csv_case("constant-column", b"a,b\n1,2\n1,3\n1,5\n", ["column 1", "constant"]),
    # --- special files --------------------------------------------------------------------
    Case(
        "directory",
        fit("data.csv"),
        ["data.csv", "directory"],
        file="data.csv",
        setup=lambda p: (p / "data.csv").mkdir(),
    ),
    Case("dev-null", fit("/dev/null"), ["/dev/null", "empty"], file="/dev/null"),
    Case("dev-zero", fit("/dev/zero"), ["/dev/zero", "NUL byte"], file="/dev/zero"),
    Case(
        "fifo-without-data",
        fit("pipe.csv"),
        ["pipe.csv", "empty"],
        setup=_fifo_without_data,
        file="pipe.csv",
    ),
    Case("missing-file", fit("missing.csv"), ["missing.csv", "no such file"], file="missing.csv"),
    Case(
        "unreadable-proc-mem",
        fit("/proc/self/mem"),
        ["/proc/self/mem", "cannot read"],
        file="/proc/self/mem",
    ),
    Case(
        "socket",
        fit("data.sock"),
        ["data.sock", "cannot read"],
        setup=_socket_file,
        file="data.sock",
    ),
    # --- bad .npy -------------------------------------------------------------------------
    npy_case("npy-object", npy(np.array([1, "a"], dtype=object), True), ["Python objects"]),
    npy_case("npy-3d", npy(np.zeros((3, 2, 2))), ["shape (3, 2, 2)"]),
    npy_case("npy-complex", npy(np.ones((4, 2), dtype=complex)), ["complex"]),
    npy_case("npy-structured", npy(np.zeros(4, dtype=[("x", "f8"), ("y", "f8")])), ["dtype"]),
    npy_case("npy-truncated", npy(np.ones((100, 3)))[:500], ["truncated"]),
    npy_case(
        "npy-header-claims-1e12-rows",
        npy_with_header((10**12, 2), b"\0" * 64),
        ["truncated", "(1000000000000, 2)"],
    ),
    npy_case("npy-bool", npy(np.ones((4, 2), dtype=bool)), ["booleans"]),
    npy_case("npy-strings", npy(np.array([["1", "2"], ["3", "4"]])), ["dtype"]),
    npy_case("npy-datetime", npy(np.zeros((4, 2), dtype="datetime64[s]")), ["dtype"]),
    npy_case("npy-no-rows", npy(np.zeros((0, 2))), ["no rows"]),
    npy_case("npy-scalar", npy(np.float64(1.0)), ["shape ()"]),
    npy_case("npy-nan", npy(np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 4.0]])), ["row 2"]),
    npy_case("npy-1001-columns", npy(np.ones((2, 1001))), ["1001 columns"]),
    npy_case("npy-not-npy", b"a,b\n1,2\n", ["not a valid .npy"]),
    Case(
        "npz",
        fit("data.npz"),
        ["data.npz", ".npz"],
        {"data.npz": b"PK\x03\x04zip"},
        file="data.npz",
    ),
    # --- bad options ----------------------------------------------------------------------
    option_case("k-zero", ["-k", "0"], ["-k/--components:", "got 0"]),
    option_case("k-negative", ["-k", "-3"], ["-k/--components:", "got -3"]),
    option_case("chains-zero", ["--chains", "0"], ["--chains:", "got 0"]),
    option_case("chains-huge", ["--chains", "10000000000"], ["--chains:", "got 10000000000"]),
    option_case("draws-one", ["--draws", "1"], ["--draws:", "got 1", "from 2"]),
    option_case(
        "draws-memory",
        ["--chains", "100000", "--draws", "100000000"],
        ["--draws:", "memory"],
    ),
    option_case("warmup-negative", ["--warmup", "-1"], ["--warmup:", "got -1"]),
    option_case("seed-negative", ["--seed", "-1"], ["--seed:", "got -1"]),
    option_case("seed-too-large", ["--seed", str(2**63)], ["--seed", str(2**63)]),
    option_case("seed-huge", ["--seed", "99999999999999999999999"], ["--seed"]),
    option_case("seed-float", ["--seed", "1.5"], ["--seed", "'1.5'"]),
    option_case("target-accept-one", ["--target-accept", "1"], ["--target-accept:", "got 1.0"]),
    option_case("target-accept-nan", ["--target-accept", "nan"], ["--target-accept:", "got nan"]),
    option_case("features-one-name", ["--features", "a"], ["--features", "'a'"]),
    option_case("features-same-twice", ["--features", "a,a"], ["--features", "different"]),
    option_case("features-out-of-range", ["--features", "5,0"], ["--features", "out of range"]),
    option_case("features-unknown", ["--features", "a,zz"], ["--features", "'zz'"]),
    option_case("unknown-flag", ["--bogus"], ["--bogus"]),
    option_case("leapfrog-zero", ["--leapfrog-steps", "0"], ["--leapfrog-steps"]),
    option_case("start-candidates-zero", ["--start-candidates", "0"], ["--start-candidates"]),
    option_case("sampler-unknown", ["--sampler", "mh"], ["--sampler", "'mh'"]),
    option_case("dtype-float16", ["--dtype", "float16"], ["--dtype", "'float16'"]),
    option_case("tutorial-priors-k2", ["--priors", "tutorial"], ["tutorial priors", "3"]),
    option_case("gibbs-tutorial-target", ["--sampler", "gibbs", "--target", "tutorial"], ["Gibbs"]),
    option_case(
        "nuts-tutorial-adaptation",
        ["--sampler", "nuts", "--adaptation", "tutorial"],
        ["tutorial's step-size rule"],
    ),
    Case("no-command", [], ["missing command"]),
    Case("unknown-command", ["fitt"], ["invalid choice"]),
    Case("fit-without-data", ["fit", "-k", "2"], ["required", "data"]),
    Case("demo-draws-one", ["demo", "--draws", "1", "--out", "out/sub"], ["--draws"]),
    Case(
        "demo-tutorial-nuts",
        ["demo", "--target", "tutorial", "--sampler", "nuts", "--out", "out/sub"],
        ["tutorial", "nuts"],
    ),
    # --- bad --out ------------------------------------------------------------------------
    Case(
        "out-is-a-file",
        ["fit", "good.csv", "-k", "2", "--out", "taken"],
        ["--out taken", "not a directory"],
        {"good.csv": GOOD, "taken": b"keep"},
    ),
    Case(
        "out-below-a-file",
        ["fit", "good.csv", "-k", "2", "--out", "good.csv/sub"],
        ["--out good.csv/sub", "not a directory"],
        {"good.csv": GOOD},
    ),
    Case(
        "out-is-cwd",
        ["fit", "good.csv", "-k", "2", "--out", "."],
        ["--out .", "current directory"],
        {"good.csv": GOOD},
    ),
    Case(
        "out-is-root",
        ["fit", "good.csv", "-k", "2", "--out", "/"],
        ["--out /", "root"],
        {"good.csv": GOOD},
    ),
    Case(
        "out-holds-foreign-files",
        ["fit", "good.csv", "-k", "2", "--out", "taken"],
        ["--out taken", "'notes.txt'", "--force"],
        {"good.csv": GOOD, "taken/notes.txt": b"mine"},
    ),
    Case(
        "out-holds-the-input-forced",
        ["fit", "taken/good.csv", "-k", "2", "--out", "taken", "--force"],
        ["--out taken", "contains the input"],
        {"taken/good.csv": GOOD},
    ),
    Case(
        "out-holds-interrupted-run",
        ["demo", "--out", "taken"],
        ["taken holds an interrupted run", "bgmm resume taken"],
        setup=_checkpoint,
    ),
    # --- bgmm summary ---------------------------------------------------------------------
    summary_case("summary-csv", b"a,b\n1,2\n", ["not a readable NetCDF"]),
    summary_case("summary-empty", b"", ["not a readable NetCDF"]),
    summary_case(
        "summary-no-sample-stats",
        netcdf(posterior=POSTERIOR),
        ["not a bgmm result", "'sample_stats'"],
    ),
    summary_case("summary-no-posterior", netcdf(sample_stats=STATS), ["'posterior'"]),
    summary_case(
        "summary-no-means",
        netcdf(posterior={k: v for k, v in POSTERIOR.items() if k != "means"}, sample_stats=STATS),
        ["'means'"],
    ),
    summary_case(
        "summary-weights-wrong-dims",
        netcdf(
            posterior=POSTERIOR | {"weights": (("chain", "draw"), np.ones((C, S)))},
            sample_stats=STATS,
        ),
        ["'weights'", "dimensions"],
    ),
    summary_case(
        "summary-one-draw",
        netcdf(
            posterior={k: (d, v[:, :1]) for k, (d, v) in POSTERIOR.items()},
            sample_stats={"diverging": (("chain", "draw"), np.zeros((C, 1)))},
        ),
        ["2 draws"],
    ),
    summary_case(
        "summary-stats-wrong-shape",
        netcdf(
            posterior=POSTERIOR, sample_stats={"diverging": (("draw",), np.zeros(S, dtype=bool))}
        ),
        ["'diverging'"],
    ),
    summary_case(
        "summary-text-variable",
        netcdf(
            posterior=POSTERIOR | {"means": (POSTERIOR["means"][0], np.full((C, S, K, D), "x"))},
            sample_stats=STATS,
        ),
        ["'means'", "not numbers"],
    ),
    Case(
        "summary-directory",
        ["summary", "somewhere"],
        ["somewhere", "directory"],
        setup=lambda p: (p / "somewhere").mkdir(),
    ),
    Case("summary-missing", ["summary", "missing.nc"], ["missing.nc", "no such file"]),
]

# The cases that also run as real processes (the whole path: interpreter, exit code).
SUBPROCESS = (
    "utf16-bom",
    "dev-zero",
    "fifo-without-data",
    "seed-negative",
    "summary-no-sample-stats",
    "out-holds-interrupted-run",
)


def test_the_battery_is_large_and_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 40
    assert set(SUBPROCESS) <= set(ids)


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: its type and, for regular files, a digest of the bytes."""
    state = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            mode = path.lstat().st_mode
            key = str(path.relative_to(root))
            if stat.S_ISREG(mode):
                state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                state[key] = stat.filemode(mode)
    return state


def prepare(case: Case, tmp_path: Path) -> None:
    for name, content in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    if case.setup:
        case.setup(tmp_path)


def check_refusal(code: int, out: str, err: str, case: Case) -> None:
    assert "Traceback" not in err, err
    assert code == 2, f"exit {code}\n{err}"
    assert out == "", out
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and lines[0][len("error: ") :].strip(), lines[0]
    for fragment in case.fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    if case.file:
        assert lines[0].startswith(f"error: {case.file}: "), lines[0]
        assert lines[0].count(case.file) == 1, lines[0]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_refused_in_process(case, tmp_path, monkeypatch, capsys, no_fit):
    prepare(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    code = bgmm.cli.main(case.argv)
    captured = capsys.readouterr()
    check_refusal(code, captured.out, captured.err, case)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES if c.id in SUBPROCESS])
def test_refused_as_a_process(case, tmp_path):
    prepare(case, tmp_path)
    before = snapshot(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "bgmm.cli", *case.argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    check_refusal(proc.returncode, proc.stdout, proc.stderr, case)
    assert snapshot(tmp_path) == before


def test_seed_range_is_what_jax_and_numpy_accept():
    """The largest seed the CLI takes works for both random number generators."""
    import jax

    from bgmm.config import MAX_SEED

    assert MAX_SEED == 2**63 - 1
    jax.random.key(MAX_SEED)
    np.random.default_rng(MAX_SEED)
    with pytest.raises(OverflowError):
        jax.random.key(MAX_SEED + 1)
    with pytest.raises(ValueError):
        np.random.default_rng(-1)
