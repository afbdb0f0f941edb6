"""End-to-end tests of the ``bgmm`` command line, run as a real subprocess.

Happy paths use tiny runs (the statistical quality of the sampler is tested elsewhere);
every bad input must give one ``error:`` line on stderr, exit code 2, nothing on stdout
and no output written.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CLI = [sys.executable, "-m", "bgmm.cli"]
SHORT = ["--chains", "2", "--warmup", "100", "--draws", "100", "--quiet"]
TIMEOUT = 300
ORDERED_OUTPUTS = ("posterior.nc", "locations.png", "trace.png")
OUTPUT_FILES = set(ORDERED_OUTPUTS)
# bgmm fit also writes each row's cluster.
FIT_OUTPUTS = (
    "posterior.nc",
    "assignments.csv",
    "partition.csv",
    "locations.png",
    "trace.png",
    "assignments.png",
    "similarity.png",
)
REQUIRED_KEYS = (
    "sampler",
    "target",
    "num_chains",
    "num_draws",
    "acceptance_rate",
    "weights_mean",
    "means_mean",
    "chol_precision_mean",
    "covariance_mean",
    "rhat_max",
    "ess_bulk_min",
    "divergences",
    "compile_seconds",
    "sampling_seconds",
    "total_seconds",
)
CLUSTER_CENTRES = np.array([[100.0, 0.0], [110.0, 5.0]])
FLOAT = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr


def assert_usage_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, nothing on stdout, one ``error:`` line on stderr containing ``fragments``."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}\nstderr:\n{proc.stderr}"
    assert proc.stdout == "", proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error:"), line
    assert line[len("error:") :].strip(), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def run_json(cwd: Path, *args: str) -> dict:
    proc = run_cli(cwd, *args, "--json")
    assert_ok(proc)
    return json.loads(proc.stdout)  # the whole of stdout is one JSON object


def cluster_data(n: int = 150, seed: int = 0) -> np.ndarray:
    """Two tight, well separated clusters far from the origin, shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    data = CLUSTER_CENTRES[labels] + 0.5 * rng.standard_normal((n, 2))
    return data[rng.permutation(n)]


def write_csv(path: Path, data: np.ndarray, header: str | None = "a,b") -> Path:
    lines = [header] if header is not None else []
    lines += [",".join(repr(float(v)) for v in row) for row in data]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check_record_shapes(record: dict, k: int, d: int) -> None:
    for key in REQUIRED_KEYS:
        assert key in record, key
    assert np.shape(record["weights_mean"]) == (k,)
    assert np.shape(record["means_mean"]) == (k, d)
    assert np.shape(record["chol_precision_mean"]) == (k, d, d)
    assert np.shape(record["covariance_mean"]) == (k, d, d)
    assert np.sum(record["weights_mean"]) == pytest.approx(1.0)
    chol = np.asarray(record["chol_precision_mean"])
    np.testing.assert_array_equal(np.triu(chol, 1), 0.0)
    assert np.all(np.diagonal(chol, axis1=-2, axis2=-1) > 0)
    cov = np.asarray(record["covariance_mean"])
    np.testing.assert_allclose(cov, np.swapaxes(cov, -1, -2), rtol=1e-10, atol=1e-12)
    assert 0.0 <= record["acceptance_rate"] <= 1.0
    assert isinstance(record["divergences"], int) and record["divergences"] >= 0
    for key in ("compile_seconds", "sampling_seconds", "total_seconds"):
        assert record[key] >= 0.0


MANIFEST = ".bgmm-manifest.json"


def output_files(out: Path) -> set[str]:
    """The outputs in ``out``, checked against its manifest (which lists exactly them)."""
    names = {p.name for p in out.iterdir()}
    if MANIFEST in names:
        names.discard(MANIFEST)
        listed = json.loads((out / MANIFEST).read_text())["files"]
        assert set(listed) == names, (listed, names)
    return names


def no_scratch_left(where: Path) -> None:
    leftovers = [p.name for p in where.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, dict]:
    """``bgmm fit --json`` on the two-cluster CSV, with plots."""
    cwd = tmp_path_factory.mktemp("fitted")
    write_csv(cwd / "clusters.csv", cluster_data())
    record = run_json(cwd, "fit", "clusters.csv", "-k", "2", *SHORT, "--out", "out")
    return cwd / "out" / "posterior.nc", record


# ---------------------------------------------------------------------------
# Happy paths
# ---------------------------------------------------------------------------


def test_python_dash_m_runs_the_cli(tmp_path):
    proc = run_cli(tmp_path, "--version")
    assert_ok(proc)
    assert proc.stdout.startswith("bgmm ")


def test_demo_text_writes_files_to_default_out(tmp_path):
    proc = run_cli(tmp_path, "demo", *SHORT)
    assert_ok(proc)
    out = proc.stdout
    for text in ("acceptance_rate", "avg mix probs", "avg loc", "Cholesky-precision normal check"):
        assert text in out, text
    assert "true cov" in out and "sample cov" in out
    assert re.search(rf"acceptance_rate: {FLOAT}", out)
    demo_dir = tmp_path / "bgmm-demo"
    assert output_files(demo_dir) == OUTPUT_FILES
    for name in OUTPUT_FILES:
        assert (demo_dir / name).stat().st_size > 0
        assert f"wrote {Path('bgmm-demo') / name}" in out
    no_scratch_left(tmp_path)


def test_demo_json(tmp_path):
    record = run_json(tmp_path, "demo", *SHORT, "--no-plots", "--out", "demo-out")
    check_record_shapes(record, k=3, d=2)
    assert record["sampler"] == "hmc"
    assert record["target"] == "correct"
    assert record["num_chains"] == 2
    assert record["num_draws"] == 100
    assert record["num_warmup"] == 100
    assert record["outputs"] == [str(Path("demo-out") / "posterior.nc")]
    assert output_files(tmp_path / "demo-out") == {"posterior.nc"}


def test_demo_tutorial_json_uses_the_tutorial_configuration(tmp_path):
    record = run_json(
        tmp_path, "demo", "--target", "tutorial", "--draws", "200", "--quiet", "--no-plots"
    )
    check_record_shapes(record, k=3, d=2)
    assert record["target"] == "tutorial"
    assert record["num_chains"] == 1
    assert record["num_warmup"] == 500
    assert record["num_draws"] == 200
    assert output_files(tmp_path / "bgmm-demo") == {"posterior.nc"}


def test_fit_csv_with_header_names_features_and_no_plots(tmp_path):
    write_csv(tmp_path / "clusters.csv", cluster_data())
    proc = run_cli(tmp_path, "fit", "clusters.csv", "-k", "2", *SHORT, "--no-plots", "--out", "o")
    assert_ok(proc)
    for text in ("acceptance_rate", "avg mix probs", "avg loc", "means[0, a]", "means[1, b]"):
        assert text in proc.stdout, text
    assert "chol_precision[1, b, a]" in proc.stdout
    assert "x0" not in proc.stdout
    # --no-plots: only the posterior is written
    assert output_files(tmp_path / "o") == {"posterior.nc", "assignments.csv", "partition.csv"}
    assert f"wrote {Path('o') / 'posterior.nc'}" in proc.stdout
    assert ".png" not in proc.stdout
    no_scratch_left(tmp_path)


def test_fit_npy(tmp_path):
    np.save(tmp_path / "clusters.npy", cluster_data())
    record = run_json(
        tmp_path, "fit", "clusters.npy", "-k", "2", *SHORT, "--no-plots", "--out", "fit-out"
    )
    check_record_shapes(record, k=2, d=2)
    assert record["num_chains"] == 2
    assert record["num_draws"] == 100
    names = {p["name"] for p in record["parameters"]}
    assert {"means[0, x0]", "means[1, x1]"} <= names
    assert output_files(tmp_path / "fit-out") == {
        "posterior.nc",
        "assignments.csv",
        "partition.csv",
    }


def test_fit_json_reports_data_units(fitted, record_moments, separated_cluster_posterior):
    path, record = fitted
    check_record_shapes(record, k=2, d=2)
    assert record["sampler"] == "hmc"
    assert record["target"] == "correct"
    assert record["priors"] == "default"
    assert record["num_chains"] == 2
    assert record["num_draws"] == 100
    # Means pooled over both chains: needs the labels to agree between chains, which bgmm's
    # per-chain test says (diagnostics.detect_component_disagreement: |z| > 5 on 4 numbers
    # per chain, a false flag about once in 1e5 runs) ...
    assert record["chains_disagreeing_components"] == [], record["warnings"]
    # ... and the exact posterior means of these well-separated clusters' locations and
    # weights (conftest.separated_cluster_posterior) in data units: |mean - truth| / MCSE
    # < 4.5 with the record's ArviZ MCSEs, P(false failure) < 5e-5 over the 6 numbers.
    # Standardised units are off by |z| > 1000.
    means = np.asarray(record["means_mean"])
    order = np.argsort(means[:, 0])
    truths = separated_cluster_posterior(cluster_data(), CLUSTER_CENTRES)
    for var, truth in zip(("means", "weights"), truths, strict=True):
        mean, _, mcse = record_moments(record, var)
        z = (mean[order] - truth) / mcse[order]
        assert np.all(np.abs(z) < 4.5), f"{var}: z = {np.round(z, 2)}"
    cov = np.asarray(record["covariance_mean"])[order]
    chol = np.asarray(record["chol_precision_mean"])[order]
    for k in range(2):
        # Each cluster has covariance 0.25 I in data units. Not a z-test: the default
        # Wishart prior pulls a tight cluster's variances up (towards the whole data set's;
        # here by a factor 1.3 to 2.3, more than their posterior sd), so only the order of
        # magnitude is checked: without the back-transform (standardised units) or with it
        # applied twice they land outside (0.15, 4). The same for the correlation (truth 0).
        variances = np.diag(cov[k])
        assert np.all((variances > 0.15) & (variances < 4.0)), cov[k]
        assert abs(cov[k, 0, 1]) < 0.5 * np.sqrt(variances.prod())
        # chol_precision_mean is in the same (data) units as covariance_mean. Not a z-test:
        # inv(E[L] E[L]') and E[(L L')^-1] are different functionals of the posterior (a
        # Jensen gap, not Monte Carlo noise, separates them); the tolerance bounds that gap.
        implied = np.linalg.inv(chol[k] @ chol[k].T)
        np.testing.assert_allclose(implied, cov[k], rtol=0.15, atol=0.05)
    assert record["outputs"] == [str(Path("out") / name) for name in FIT_OUTPUTS]
    assert output_files(path.parent) == set(FIT_OUTPUTS)


@pytest.fixture(scope="module")
def summaries(fitted) -> tuple[str, dict]:
    """``bgmm summary`` of the fitted posterior.nc, as text and as JSON."""
    path, _ = fitted
    cwd = path.parent.parent
    text = run_cli(cwd, "summary", "out/posterior.nc")
    assert_ok(text)
    return text.stdout, run_json(cwd, "summary", "out/posterior.nc")


def test_summary_text_and_json_agree_with_fit(fitted, summaries):
    _, record = fitted
    text, summary = summaries
    for fragment in ("acceptance_rate", "avg mix probs", "avg loc", "means[0, a]", "means[1, b]"):
        assert fragment in text, fragment
    shown = re.search(r"avg mix probs: \[([^\]]*)\]", text)
    assert shown, text
    weights_shown = [float(v) for v in re.findall(FLOAT, shown.group(1))]
    np.testing.assert_allclose(weights_shown, record["weights_mean"], atol=6e-5)

    check_record_shapes(summary, k=2, d=2)
    for key in ("weights_mean", "means_mean", "chol_precision_mean", "covariance_mean"):
        np.testing.assert_allclose(summary[key], record[key], rtol=1e-12, atol=1e-12)
    for key in ("num_chains", "num_draws", "divergences"):
        assert summary[key] == record[key], key
    for key in ("acceptance_rate", "rhat_max", "ess_bulk_min", "total_seconds"):
        assert summary[key] == pytest.approx(record[key], rel=1e-12), key


def test_summary_keeps_run_settings(fitted, summaries):
    _, record = fitted
    text, summary = summaries
    for key in ("sampler", "target", "num_warmup", "priors", "dtype"):
        assert summary[key] == record[key], key
    assert "sampler=hmc" in text and "num_chains=2" in text


# ---------------------------------------------------------------------------
# summary: bad files
# ---------------------------------------------------------------------------


def test_summary_missing_file(tmp_path):
    proc = run_cli(tmp_path, "summary", "missing.nc")
    assert_usage_error(proc, "missing.nc", "no such file")


def test_summary_of_a_directory(tmp_path):
    (tmp_path / "out").mkdir()
    proc = run_cli(tmp_path, "summary", "out")
    assert_usage_error(proc, "out", "directory")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"a,b\n1,2\n", id="csv-text"),
        pytest.param(b"", id="empty"),
    ],
)
def test_summary_not_netcdf(tmp_path, content):
    (tmp_path / "posterior.nc").write_bytes(content)
    proc = run_cli(tmp_path, "summary", "posterior.nc")
    assert_usage_error(proc, "posterior.nc")


# ---------------------------------------------------------------------------
# fit: bad data files
# ---------------------------------------------------------------------------

# (id, file name, content, -k, fragments the message must contain besides the file name)
BAD_FILES = [
    ("csv-empty", "data.csv", b"", "2", ["empty"]),
    ("csv-header-no-rows", "data.csv", b"a,b\n", "2", ["no data rows", "line 1"]),
    ("csv-ragged-long", "data.csv", b"a,b\n1,2\n3,4,5\n6,7\n", "2", ["line 3", "3 columns"]),
    ("csv-non-numeric", "data.csv", b"a,b\n1,2\n3,abc\n5,6\n", "2", ["line 3", "column 2", "abc"]),
    ("csv-blank-cell", "data.csv", b"a,b\n1,2\n,4\n5,6\n", "2", ["line 3", "column 1", "missing"]),
    ("csv-NA", "data.csv", b"a,b\n1,2\n3,4\nNA,6\n", "2", ["line 4", "column 1", "NA"]),
    ("csv-NaN", "data.csv", b"a,b\n1,2\n3,NaN\n5,6\n", "2", ["line 3", "column 2", "NaN"]),
    ("csv-inf", "data.csv", b"a,b\n1,inf\n3,4\n", "2", ["line 2", "column 2", "not finite"]),
    ("csv-minus-inf-no-header", "data.csv", b"1,2\n3,4\n5,-inf\n", "2", ["line 3", "column 2"]),
    ("csv-not-utf8", "data.csv", b"a,b\n1,2\n\xff\xfe,3\n", "2", ["line 3", "UTF-8"]),
    ("csv-fewer-rows-than-k", "data.csv", b"a,b\n1,2\n3,4\n", "3", ["2 rows", "3 components"]),
    ("npy-empty-file", "data.npy", b"", "2", ["empty"]),
    ("npy-not-npy", "data.npy", b"a,b\n1,2\n", "2", ["not a valid .npy"]),
]


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _with(value: float, row: int, col: int) -> np.ndarray:
    data = np.arange(12.0).reshape(6, 2)
    data[row, col] = value
    return data


BAD_FILES += [
    ("npy-nan", "data.npy", _npy_bytes(_with(np.nan, 2, 1)), "2", ["row 3", "column 2"]),
    ("npy-inf", "data.npy", _npy_bytes(_with(np.inf, 1, 0)), "2", ["row 2", "column 1"]),
    ("npy-fewer-rows-than-k", "data.npy", _npy_bytes(np.ones((2, 2))), "3", ["2 rows"]),
]


@pytest.mark.parametrize(
    ("name", "content", "k", "fragments"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_FILES],
)
def test_fit_bad_data_file(tmp_path, name, content, k, fragments):
    (tmp_path / name).write_bytes(content)
    before = sorted(os.listdir(tmp_path))
    proc = run_cli(tmp_path, "fit", name, "-k", k, *SHORT, "--out", "out/sub")
    assert_usage_error(proc, name, *fragments)
    assert not (tmp_path / "out").exists()
    assert sorted(os.listdir(tmp_path)) == before


def test_fit_missing_file(tmp_path):
    proc = run_cli(tmp_path, "fit", "missing.csv", "-k", "2", "--out", "out")
    assert_usage_error(proc, "missing.csv", "no such file")
    assert not (tmp_path / "out").exists()


def test_fit_directory_instead_of_file(tmp_path):
    (tmp_path / "data.csv").mkdir()
    proc = run_cli(tmp_path, "fit", "data.csv", "-k", "2", "--out", "out")
    assert_usage_error(proc, "data.csv", "directory")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file"
)
def test_fit_unreadable_file(tmp_path):
    path = write_csv(tmp_path / "data.csv", cluster_data())
    path.chmod(0)
    try:
        proc = run_cli(tmp_path, "fit", "data.csv", "-k", "2", "--out", "out")
    finally:
        path.chmod(0o644)
    assert_usage_error(proc, "data.csv", "permission denied")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Bad options
# ---------------------------------------------------------------------------

BAD_OPTIONS = [
    ("unknown-option", ["fit", "data.csv", "--bogus"], ["--bogus"]),
    ("k-zero", ["fit", "data.csv", "-k", "0"], ["-k/--components:", "got 0"]),
    ("k-float", ["fit", "data.csv", "-k", "2.5"], ["-k", "'2.5'"]),
    ("k-text", ["fit", "data.csv", "-k", "abc"], ["-k", "'abc'"]),
    ("chains-zero", ["fit", "data.csv", "-k", "2", "--chains", "0"], ["--chains:", "got 0"]),
    (
        "target-accept-one",
        ["fit", "data.csv", "-k", "2", "--target-accept", "1"],
        ["--target-accept:", "(0, 1)", "got 1.0"],
    ),
    (
        "target-accept-text",
        ["fit", "data.csv", "-k", "2", "--target-accept", "high"],
        ["--target-accept", "'high'"],
    ),
    (
        "features-unknown-name",
        ["fit", "data.csv", "-k", "2", "--features", "a,zz"],
        ["--features", "zz"],
    ),
    (
        "tutorial-priors-k2",
        ["fit", "data.csv", "-k", "2", "--priors", "tutorial"],
        ["tutorial priors", "3 components"],
    ),
    ("fit-without-data", ["fit", "-k", "2"], ["required", "data"]),
    ("demo-unknown-option", ["demo", "--bogus"], ["--bogus"]),
    ("demo-chains-zero", ["demo", "--chains", "0"], ["--chains:", "got 0"]),
]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [pytest.param(case[1], case[2], id=case[0]) for case in BAD_OPTIONS],
)
def test_bad_option(tmp_path, args, fragments):
    write_csv(tmp_path / "data.csv", cluster_data(20))
    proc = run_cli(tmp_path, *args, "--quiet", "--out", "out/sub")
    assert_usage_error(proc, *fragments)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "bgmm-fit").exists()
    assert not (tmp_path / "bgmm-demo").exists()
    assert sorted(os.listdir(tmp_path)) == ["data.csv"]


# ---------------------------------------------------------------------------
# --out that is not a directory, and existing outputs left alone
# ---------------------------------------------------------------------------


def test_out_is_an_existing_file(tmp_path):
    write_csv(tmp_path / "data.csv", cluster_data(20))
    target = tmp_path / "taken"
    target.write_bytes(b"keep me")
    proc = run_cli(tmp_path, "fit", "data.csv", "-k", "2", *SHORT, "--out", "taken")
    assert_usage_error(proc, "taken", "not a directory")
    assert target.read_bytes() == b"keep me"


def test_out_below_an_existing_file(tmp_path):
    write_csv(tmp_path / "data.csv", cluster_data(20))
    before = (tmp_path / "data.csv").read_bytes()
    proc = run_cli(tmp_path, "fit", "data.csv", "-k", "2", *SHORT, "--out", "data.csv/sub")
    assert_usage_error(proc, "data.csv/sub", "not a directory")
    assert (tmp_path / "data.csv").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["data.csv"]


EXISTING_OUT_FAILURES = [
    ("bad-csv", ["fit", "bad.csv", "-k", "2"]),
    ("k-zero", ["fit", "data.csv", "-k", "0"]),
    ("unknown-option", ["fit", "data.csv", "-k", "2", "--bogus"]),
    ("unknown-feature", ["fit", "data.csv", "-k", "2", "--features", "a,zz"]),
    ("demo-bad-chains", ["demo", "--chains", "0"]),
]


@pytest.mark.parametrize(
    "args", [pytest.param(case[1], id=case[0]) for case in EXISTING_OUT_FAILURES]
)
def test_failing_run_leaves_existing_outputs_alone(tmp_path, args):
    write_csv(tmp_path / "data.csv", cluster_data(20))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,oops\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    previous = {
        "posterior.nc": np.random.default_rng(1).bytes(4096),
        "locations.png": b"old figure",
        "trace.png": b"old trace",
    }
    for name, content in previous.items():
        (out / name).write_bytes(content)
    stamps = {name: (out / name).stat().st_mtime_ns for name in previous}
    proc = run_cli(tmp_path, *args, *SHORT, "--out", "out")
    assert_usage_error(proc)
    assert output_files(out) == set(previous)
    for name, content in previous.items():
        assert (out / name).read_bytes() == content, name
        assert (out / name).stat().st_mtime_ns == stamps[name], name
    no_scratch_left(tmp_path)


# ---------------------------------------------------------------------------
# Inputs read once: standard input, FIFOs, process substitution
# ---------------------------------------------------------------------------


def test_fit_from_standard_input(tmp_path):
    text = (write_csv(tmp_path / "clusters.csv", cluster_data())).read_text()
    proc = subprocess.run(
        [*CLI, "fit", "-", "-k", "2", *SHORT, "--no-plots", "--out", "o", "--json"],
        cwd=tmp_path,
        input=text,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert_ok(proc)
    record = json.loads(proc.stdout)
    assert {"means[0, a]", "means[1, b]"} <= {p["name"] for p in record["parameters"]}
    assert output_files(tmp_path / "o") == {"posterior.nc", "assignments.csv", "partition.csv"}


def test_fit_errors_from_standard_input_name_it(tmp_path):
    proc = subprocess.run(
        [*CLI, "fit", "-", "-k", "2", "--out", "o"],
        cwd=tmp_path,
        input="a,b\n1,2\n3,x\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert_usage_error(proc, "<stdin>: line 3, column 2 ('b'): 'x' is not a number")
    assert not (tmp_path / "o").exists()


def test_fifo_is_read_once(tmp_path):
    """A FIFO's bytes can be read only once: the header must come from the same read."""
    write_csv(tmp_path / "clusters.csv", cluster_data(20))
    os.mkfifo(tmp_path / "pipe")
    feeder = subprocess.Popen(
        ["sh", "-c", "cat clusters.csv > pipe"], cwd=tmp_path, stderr=subprocess.DEVNULL
    )
    try:
        proc = run_cli(tmp_path, "fit", "pipe", "-k", "2", "--features", "a,zz", "--out", "o")
    finally:
        feeder.kill()
        feeder.wait()
    # The error is about the feature names: the data and the header came through.
    assert_usage_error(proc, "--features", "'zz'", "have a, b")
    assert not (tmp_path / "o").exists()


def test_process_substitution_keeps_the_header(tmp_path):
    write_csv(tmp_path / "clusters.csv", cluster_data(20))
    command = f"{sys.executable} -m bgmm.cli fit <(cat clusters.csv) -k 30 --features b,a --out o"
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert_usage_error(proc, "/dev/fd/", "20 rows but 30 components")
    assert not (tmp_path / "o").exists()


def test_process_seconds_count_from_the_start_of_the_process():
    """The reported process time includes the interpreter's start and `import bgmm`."""
    code = "import time; time.sleep(0.5); import bgmm.cli.running as c; print(c.process_seconds())"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert 0.5 <= float(done.stdout) <= wall + 0.02
