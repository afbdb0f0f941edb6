"""Tests for bgmm.data: loading, validation messages, standardisation."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import bgmm.plumbing.memory
from bgmm import data as data_module
from bgmm.data import DataError, Standardizer, check_num_components, delimited, load_data, tables
from bgmm.errors import UserError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(DataError) as info:
        load_data(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    return message


# ---------------------------------------------------------------------------
# CSV: good inputs
# ---------------------------------------------------------------------------


def test_csv_with_header(tmp_path):
    path = write(tmp_path, "data.csv", "x,y\n1,2\n3.5,-4e-1\n")
    out = load_data(path)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1.0, 2.0], [3.5, -0.4]])


def test_csv_without_header(tmp_path):
    path = write(tmp_path, "data.csv", "1,2\n3,4\n5,6\n")
    np.testing.assert_array_equal(load_data(str(path)), [[1, 2], [3, 4], [5, 6]])


def test_csv_single_column(tmp_path):
    path = write(tmp_path, "data.txt", "value\n1\n2\n")
    out = load_data(path)
    assert out.shape == (2, 1)
    np.testing.assert_array_equal(out[:, 0], [1, 2])


def test_tab_separated_with_spaces(tmp_path):
    path = write(tmp_path, "data.tsv", "a\tb\tc\n 1\t2 \t 3 \n4\t5\t6\n")
    np.testing.assert_array_equal(load_data(path), [[1, 2, 3], [4, 5, 6]])


def test_semicolon_separated(tmp_path):
    path = write(tmp_path, "data.csv", "a;b\n1;2\n3;4\n")
    np.testing.assert_array_equal(load_data(path), [[1, 2], [3, 4]])


def test_quoted_cells(tmp_path):
    path = write(tmp_path, "data.csv", '"x, first","y"\n"1.5", "2"\n3,"4"\n')
    np.testing.assert_array_equal(load_data(path), [[1.5, 2], [3, 4]])


def test_trailing_blank_lines_crlf_and_bom(tmp_path):
    path = write(tmp_path, "data.csv", "\ufeffx,y\r\n1,2\r\n3,4\r\n\r\n  \r\n,\r\n\n")
    np.testing.assert_array_equal(load_data(path), [[1, 2], [3, 4]])


def test_duplicate_header_names_are_fine(tmp_path):
    path = write(tmp_path, "data.csv", "x,x\n1,2\n")
    np.testing.assert_array_equal(load_data(path), [[1, 2]])


def test_fast_and_careful_paths_agree(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 3))
    path = tmp_path / "data.csv"
    np.savetxt(path, values, delimiter=",", fmt="%.17g", header="a,b,c", comments="")
    fast = load_data(path)
    careful = delimited._parse_cell_by_cell(path.read_text(), ",", str(path))
    np.testing.assert_array_equal(fast, values)
    np.testing.assert_array_equal(careful, values)


# ---------------------------------------------------------------------------
# CSV and file: bad inputs
# ---------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    assert load_error(path) == f"{path}: no such file"


def test_directory(tmp_path):
    message = load_error(tmp_path)
    assert "directory" in message


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path, "data.csv", "1,2\n")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # running as root: simulate the failure

            def deny(*args, **kwargs):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(tables, "open", deny, raising=False)
        message = load_error(path)
    finally:
        path.chmod(0o644)
    assert "permission denied" in message


def test_not_utf8(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"x,y\n1,2\n\xff\xfe,3\n")
    message = load_error(path)
    assert "line 3" in message
    assert "not valid UTF-8" in message


@pytest.mark.parametrize("text", ["", "\n\n", "  \t \n"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, "data.csv", text)
    assert load_error(path) == f"{path}: file is empty"


def test_header_without_data(tmp_path):
    path = write(tmp_path, "data.csv", "x,y\n\n")
    assert load_error(path) == f"{path}: no data rows (only a header, on line 1)"


def test_ragged_rows(tmp_path):
    path = write(tmp_path, "data.csv", "x,y\n1,2\n3,4\n5,6,7\n")
    assert load_error(path) == f"{path}: line 4 has 3 columns, expected 2 (as in line 1)"


def test_ragged_rows_short(tmp_path):
    path = write(tmp_path, "data.csv", "1,2\n3\n")
    assert load_error(path) == f"{path}: line 2 has 1 column, expected 2 (as in line 1)"


def test_header_longer_than_data(tmp_path):
    path = write(tmp_path, "data.csv", "x,y,z\n1,2\n3,4\n")
    assert load_error(path) == f"{path}: line 2 has 2 columns, expected 3 (as in line 1)"


def test_non_numeric_cell(tmp_path):
    path = write(tmp_path, "data.csv", "x,y\n1,2\n3,4\n5,abc\n")
    assert load_error(path) == f"{path}: line 4, column 2 ('y'): 'abc' is not a number"


def test_non_numeric_cell_without_header(tmp_path):
    path = write(tmp_path, "data.csv", "1,2\n3,4\n1.2.3,4\n")
    assert load_error(path) == f"{path}: line 3, column 1: '1.2.3' is not a number"


def test_decimal_comma_hint(tmp_path):
    path = write(tmp_path, "data.csv", "x;y\n1,5;2\n")
    message = load_error(path)
    assert message.startswith(f"{path}: line 2, column 1 ('x'): '1,5' is not a number")
    assert "decimal point" in message


@pytest.mark.parametrize("token", ["", " ", "NA", "NaN", "nan", "null", "N/A", "-nan"])
def test_missing_value(tmp_path, token):
    path = write(tmp_path, "data.csv", f"x,y\n1,2\n3,4\n5,6\n{token},7\n")
    message = load_error(path)
    expected = f"{path}: line 5, column 1 ('x'): missing value {token.strip()!r}"
    assert message == expected


def test_missing_value_in_first_row_is_not_a_header(tmp_path):
    path = write(tmp_path, "data.csv", "1,NA\n2,3\n")
    assert load_error(path) == f"{path}: line 1, column 2: missing value 'NA'"


@pytest.mark.parametrize("token", ["inf", "-inf", "Infinity", "1e999"])
def test_infinite_value(tmp_path, token):
    path = write(tmp_path, "data.csv", f"1,2\n3,{token}\n")
    assert load_error(path) == f"{path}: line 2, column 2: value {token!r} is not finite"


def test_non_finite_found_by_careful_pass(tmp_path):
    # Old Mac line endings ('\r') defeat the fast path; the careful pass must agree.
    path = write(tmp_path, "data.csv", "x,y\r1,2\r3,-inf\r")
    assert load_error(path) == f"{path}: line 3, column 2 ('y'): value '-inf' is not finite"
    path = write(tmp_path, "data.csv", "x,y\r1,2\r3,4\r")
    np.testing.assert_array_equal(load_data(path), [[1, 2], [3, 4]])


def test_infinite_value_with_header(tmp_path):
    path = write(tmp_path, "data.csv", "x,y\n1,2\n-1e400,3\n")
    assert load_error(path) == f"{path}: line 3, column 1 ('x'): value '-1e400' is not finite"


@pytest.mark.parametrize("blank", ["", "   ", ",", " , "])
def test_blank_line_in_middle(tmp_path, blank):
    path = write(tmp_path, "data.csv", f"x,y\n1,2\n{blank}\n3,4\n")
    message = load_error(path)
    assert message.startswith(f"{path}: line 3 is blank")


def test_leading_blank_line(tmp_path):
    path = write(tmp_path, "data.csv", "\n1,2\n")
    assert load_error(path).startswith(f"{path}: line 1 is blank")


def test_unclosed_quote(tmp_path):
    path = write(tmp_path, "data.csv", 'x,y\n"1,2\n3,4\n')
    message = load_error(path)
    assert "line 2" in message
    assert "quoted" in message


def test_message_is_one_line(tmp_path):
    path = write(tmp_path, "data.csv", 'x,"y\nz"\n1,"a\nb"\n')
    message = load_error(path)
    assert "line 3, column 2" in message


def test_npz_rejected(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, a=np.ones(3))
    assert ".npz" in load_error(path)


# ---------------------------------------------------------------------------
# .npy
# ---------------------------------------------------------------------------


def test_npy_1d(tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, np.array([1, 2, 3], dtype=np.int32))
    out = load_data(path)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1], [2], [3]])


def test_npy_2d(tmp_path):
    path = tmp_path / "data.npy"
    values = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(path, values)
    out = load_data(path)
    assert out.shape == (4, 3)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, values)


def test_npy_detected_by_content(tmp_path):
    path = tmp_path / "data.bin"
    with path.open("wb") as f:
        np.save(f, np.ones((2, 2)))
    np.testing.assert_array_equal(load_data(path), np.ones((2, 2)))


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        (np.array([True, False]), "booleans"),
        (np.array(["a", "b"]), "dtype"),
        (np.array([1 + 2j]), "dtype"),
        (np.zeros((2, 2, 2)), "shape (2, 2, 2)"),
        (np.float64(1.0), "shape ()"),
        (np.zeros((0, 3)), "no rows"),
        (np.zeros(0), "no rows"),
        (np.zeros((3, 0)), "no columns"),
    ],
)
def test_npy_rejected(tmp_path, values, fragment):
    path = tmp_path / "data.npy"
    np.save(path, values)
    assert fragment in load_error(path)


def test_npy_object_array(tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, np.array([1, "a"], dtype=object), allow_pickle=True)
    assert "objects" in load_error(path)


def test_npy_corrupt(tmp_path):
    path = tmp_path / "data.npy"
    path.write_bytes(b"not an array")
    assert "not a valid .npy file" in load_error(path)


def test_npy_truncated(tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, np.ones((100, 3)))
    path.write_bytes(path.read_bytes()[:500])
    assert "not a valid .npy file" in load_error(path)


def test_npy_empty_file(tmp_path):
    path = tmp_path / "data.npy"
    path.write_bytes(b"")
    assert load_error(path) == f"{path}: file is empty"


def test_npy_nan(tmp_path):
    path = tmp_path / "data.npy"
    values = np.ones((4, 3))
    values[2, 1] = np.nan
    np.save(path, values)
    assert load_error(path) == f"{path}: row 3, column 2: missing value (NaN)"


def test_npy_inf(tmp_path):
    path = tmp_path / "data.npy"
    values = np.ones((4, 3))
    values[3, 0] = -np.inf
    np.save(path, values)
    assert load_error(path) == f"{path}: row 4, column 1: value -inf is not finite"


# ---------------------------------------------------------------------------
# Standardizer
# ---------------------------------------------------------------------------


@pytest.fixture
def raw_data():
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(500, 3)) @ np.array([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0, 3.0, 7.0]])
    return mix + np.array([10.0, -5.0, 1000.0])


def test_standardizer_fit_and_transform(raw_data):
    std = Standardizer.fit(raw_data)
    assert std.center.shape == std.scale.shape == (3,)
    z = std.transform(raw_data)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-12)


def test_standardizer_back_transforms(raw_data):
    std = Standardizer.fit(raw_data)
    z = std.transform(raw_data)
    mean_z = z.mean(axis=0)[None, :]  # (K=1, D)
    cov_z = np.cov(z, rowvar=False)[None]  # (K=1, D, D)
    np.testing.assert_allclose(std.means_to_data(mean_z)[0], raw_data.mean(axis=0))
    np.testing.assert_allclose(std.covariance_to_data(cov_z)[0], np.cov(raw_data, rowvar=False))

    prec_z = np.linalg.inv(cov_z)
    prec_y = std.precision_to_data(prec_z)
    np.testing.assert_allclose(prec_y[0], np.linalg.inv(np.cov(raw_data, rowvar=False)))

    chol_z = np.linalg.cholesky(prec_z)
    chol_y = std.chol_precision_to_data(chol_z)
    np.testing.assert_array_equal(np.triu(chol_y[0], 1), 0)
    assert np.all(np.diagonal(chol_y, axis1=-2, axis2=-1) > 0)
    np.testing.assert_allclose(chol_y @ np.swapaxes(chol_y, -1, -2), prec_y)
    np.testing.assert_allclose(
        np.linalg.inv(chol_y @ np.swapaxes(chol_y, -1, -2)), std.covariance_to_data(cov_z)
    )


def test_standardizer_batched_shapes():
    std = Standardizer(center=np.array([1.0, 2.0]), scale=np.array([2.0, 4.0]))
    means = np.zeros((5, 3, 2))
    assert std.means_to_data(means).shape == (5, 3, 2)
    np.testing.assert_array_equal(std.means_to_data(means)[4, 2], [1.0, 2.0])
    eye = np.broadcast_to(np.eye(2), (5, 3, 2, 2))
    np.testing.assert_array_equal(std.covariance_to_data(eye)[1, 1], np.diag([4.0, 16.0]))
    np.testing.assert_array_equal(std.precision_to_data(eye)[1, 1], np.diag([0.25, 1 / 16]))
    np.testing.assert_array_equal(std.chol_precision_to_data(eye)[0, 0], np.diag([0.5, 0.25]))
    with pytest.raises(ValueError, match="shape"):
        std.means_to_data(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="shape"):
        std.covariance_to_data(np.zeros((3, 2, 3)))


def test_standardizer_constant_column():
    values = np.column_stack([np.arange(5.0), np.full(5, 0.1)])
    with pytest.raises(DataError) as info:
        Standardizer.fit(values, source="data.csv")
    message = str(info.value)
    assert message.startswith("data.csv: column 2 is constant")


# ---------------------------------------------------------------------------
# check_num_components
# ---------------------------------------------------------------------------


def test_check_num_components_ok():
    check_num_components(np.zeros((3, 2)), 3, "data.csv")
    check_num_components(np.zeros((3, 2)), 1, "data.csv")


def test_check_num_components_too_few_rows():
    with pytest.raises(DataError) as info:
        check_num_components(np.zeros((2, 2)), 3, "data.csv")
    assert str(info.value) == (
        "data.csv: 2 rows but 3 components; need at least one row per component"
    )
    assert info.value.option is None


def test_check_num_components_singular_row():
    with pytest.raises(DataError, match=r"data\.csv: 1 row but 2 components"):
        check_num_components(np.zeros((1, 2)), 2, "data.csv")


@pytest.mark.parametrize("k", [0, -1])
def test_check_num_components_not_positive(k):
    with pytest.raises(DataError) as info:
        check_num_components(np.zeros((5, 2)), k, "data.csv")
    assert str(info.value).startswith("data.csv: ")
    assert "at least 1" in str(info.value)
    assert info.value.option is None


# ---------------------------------------------------------------------------
# Numbers: plain decimals only
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "hint"),
    [
        ("1_000", "'_'"),
        ("\u0661\u0662", "ASCII"),
        ("\uff11\uff12", "ASCII"),
        ("0x10", None),
        ("1e", None),
        ("nan(1)", None),
        ("1+2j", None),
    ],
)
def test_python_only_numbers_are_rejected(tmp_path, cell, hint):
    cases = [(f"x,y\n1,2\n{cell},3\n", 3)]
    if hint:  # Python's float() takes it: in a first row it is a bad number, not a header
        cases.append((f"{cell},2\n3,4\n", 1))
    for text, line in cases:
        path = write(tmp_path, "data.csv", text)
        message = load_error(path)
        assert f"line {line}, column 1" in message and repr(cell) in message, message
        assert "is not a number" in message
        if hint:
            assert hint in message


def test_plain_decimal_spellings_are_accepted_by_both_paths(tmp_path):
    cells = ["1", "-2", "+3", "4.", ".5", "-.5e1", "6E+2", "7e-3", " 8 ", "0"]
    values = [1, -2, 3, 4, 0.5, -5, 600, 0.007, 8, 0]
    text = "x\n" + "\n".join(cells) + "\n"
    path = write(tmp_path, "data.csv", text)
    np.testing.assert_array_equal(load_data(path)[:, 0], values)
    careful = delimited._parse_cell_by_cell(text, ",", "data.csv")
    np.testing.assert_array_equal(careful[:, 0], values)


# ---------------------------------------------------------------------------
# Reading once: FIFOs, standard input, encodings, sizes
# ---------------------------------------------------------------------------


def test_load_table_header_with_old_mac_line_endings(tmp_path):
    path = write(tmp_path, "data.csv", "x,y\r1,2\r3,4\r")
    data, names = data_module.load_table(path)
    assert names == ["x", "y"]
    np.testing.assert_array_equal(data, [[1, 2], [3, 4]])


def test_fifo_is_read_once_with_its_header(tmp_path):
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as f:
            f.write(b"x,y\n1,2\n3,4\n")

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    data, names = data_module.load_table(fifo)
    feeder.join(timeout=10)
    assert names == ["x", "y"]
    np.testing.assert_array_equal(data, [[1, 2], [3, 4]])


def test_standard_input(monkeypatch):
    import io
    import sys
    import types

    stdin = types.SimpleNamespace(buffer=io.BytesIO(b"x,y\n1,2\n3,abc\n"))
    monkeypatch.setattr(sys, "stdin", stdin)
    with pytest.raises(DataError, match=r"^<stdin>: line 3, column 2 \('y'\): 'abc'"):
        data_module.load_table("-")
    stdin.buffer = io.BytesIO(b"x,y\n1,2\n3,4\n")
    data, names = data_module.load_table("-")
    assert names == ["x", "y"] and data.shape == (2, 2)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("x,y\n1,2\n".encode("utf-16"), "UTF-16 text (byte-order mark FF FE)"),
        ("x,y\n1,2\n".encode("utf-16-be"), "line 1: NUL byte"),
        ("x,y\n1,2\n".encode("utf-32"), "UTF-32 text"),
        (b"x,y\n1,2\n3,4\x00\n", "line 3: NUL byte"),
    ],
)
def test_utf16_and_binary_text(tmp_path, content, fragment):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    message = load_error(path)
    assert fragment in message
    assert message.count(str(path)) == 1


def test_endless_binary_stream_is_refused_from_its_first_chunk():
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"^/dev/zero: line 1: NUL byte"):
        load_data("/dev/zero")
    assert time.perf_counter() - start < 5


def test_input_larger_than_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "max_input_bytes", lambda: 1000)
    path = write(tmp_path, "data.csv", "x\n" + "1\n" * 2000)
    assert "larger than 0.0 MiB" in load_error(path)


def test_max_input_bytes_is_a_quarter_of_memory():
    total = data_module.physical_memory_bytes()
    if total is None:
        pytest.skip("the system does not say how much memory it has")
    assert data_module.max_input_bytes() == max(total // 4, 2**20)


def test_max_input_bytes_follows_the_memory_module(monkeypatch):
    monkeypatch.setattr(bgmm.plumbing.memory, "physical_memory_bytes", lambda: 2**32)
    assert data_module.max_input_bytes() == 2**30
    monkeypatch.setattr(bgmm.plumbing.memory, "physical_memory_bytes", lambda: None)
    assert data_module.max_input_bytes() == 8 * 2**30


# ---------------------------------------------------------------------------
# Sizes: features, header claims, memory
# ---------------------------------------------------------------------------


def test_too_many_csv_columns(tmp_path):
    d = data_module.MAX_FEATURES + 1
    path = write(tmp_path, "data.csv", ",".join(["1"] * d) + "\n" + ",".join(["2"] * d) + "\n")
    message = load_error(path)
    assert f"{d} columns" in message and f"at most {data_module.MAX_FEATURES}" in message


def test_max_features_columns_load(tmp_path):
    d = data_module.MAX_FEATURES
    path = tmp_path / "data.npy"
    np.save(path, np.ones((2, d)))
    assert load_data(path).shape == (2, d)
    data_module.check_num_features(d, "x")
    with pytest.raises(DataError, match="at most"):
        data_module.check_num_features(d + 1, "x")


def test_npy_header_claiming_more_than_the_file_holds(tmp_path):
    import io

    buffer = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12, 3)}
    np.lib.format.write_array_header_1_0(buffer, header)
    path = tmp_path / "data.npy"
    path.write_bytes(buffer.getvalue() + b"\0" * 80)
    message = load_error(path)
    assert "truncated" in message and "(1000000000000, 3)" in message


def test_npy_wide_header_refused_before_reading(tmp_path):
    import io

    buffer = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (1, 10**6)}
    np.lib.format.write_array_header_1_0(buffer, header)
    path = tmp_path / "data.npy"
    path.write_bytes(buffer.getvalue())  # no data at all: the width is refused first
    assert "1000000 columns" in load_error(path)


def test_check_value_range():
    ok = np.array([[1.0, 1e99], [2.0, -1e99]])
    data_module.check_value_range(ok, "d.csv")
    with pytest.raises(DataError, match=r"^d\.csv: column 2 \('b'\): values as large as 2e\+100"):
        data_module.check_value_range(np.array([[1.0, 1.0], [2.0, 2e100]]), "d.csv", ["a", "b"])
    with pytest.raises(DataError, match=r"column 1: standard deviation"):
        data_module.check_value_range(np.array([[1e-110], [3e-110]]), "d.csv")
    data_module.check_value_range(np.zeros((3, 1)), "d.csv")  # constant: Standardizer's job


def test_check_draws_memory(monkeypatch):
    assert data_module.draws_memory_bytes(4, 1000, 3, 2) == 8 * 4000 * 3 * (8 * 4 + 4 + 4)
    monkeypatch.setattr(bgmm.plumbing.memory, "physical_memory_bytes", lambda: 2**30)
    data_module.check_draws_memory(4, 1000, 3, 2)
    with pytest.raises(UserError, match=r"4 chains x 1000 draws .* D=100 .* memory") as info:
        data_module.check_draws_memory(4, 1000, 3, 100)
    assert isinstance(info.value, ValueError) and info.value.option == "num_draws"
    monkeypatch.setattr(bgmm.plumbing.memory, "physical_memory_bytes", lambda: None)
    data_module.check_draws_memory(4, 1000, 3, 100)  # unknown: no check


# ---------------------------------------------------------------------------
# Features dominated by a few extreme values
# ---------------------------------------------------------------------------


def test_extreme_value_flagged_with_warning():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((500, 3))
    data[41, 2] = 1e12
    with pytest.warns(data_module.DataWarning, match="column 3 \\('z'\\)"):
        messages = data_module.check_extreme_values(data, ["x", "y", "z"])
    assert len(messages) == 1
    assert messages[0].startswith("column 3 ('z'): 4 rows of 500 hold 99.80% of its variance")
    assert "row 42: 1e+12" in messages[0]


def test_extreme_values_criterion_boundaries():
    # N = 200: m = 1 row. Two far rows share the variance: not flagged (a small cluster).
    base = np.random.default_rng(1).standard_normal((200, 1))
    two = base.copy()
    two[:2, 0] = 1e6
    assert data_module.check_extreme_values(two) == []
    # One far row holds > 99%: flagged.
    one = base.copy()
    one[5, 0] = 1e6
    with pytest.warns(data_module.DataWarning):
        assert len(data_module.check_extreme_values(one)) == 1
    # Constant and tiny inputs: nothing to say.
    assert data_module.check_extreme_values(np.ones((10, 2))) == []
    assert data_module.check_extreme_values(np.ones((1, 2))) == []
    for seed in range(20):  # heavy but honest tails are not flagged
        t3 = np.random.default_rng(seed).standard_t(3, (1000, 1))
        assert data_module.check_extreme_values(t3) == []
