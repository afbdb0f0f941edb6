"""Tests for bgmm.data: loading, validation messages, standardisation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bgmm import data as data_module
from bgmm.data import DataError, Standardizer, check_num_components, load_data


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
    careful = data_module._careful_parse(path.read_text(), ",", str(path))
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

            monkeypatch.setattr(data_module, "open", deny, raising=False)
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


def test_check_num_components_singular_row():
    with pytest.raises(DataError, match=r"data\.csv: 1 row but 2 components"):
        check_num_components(np.zeros((1, 2)), 2, "data.csv")


@pytest.mark.parametrize("k", [0, -1])
def test_check_num_components_not_positive(k):
    with pytest.raises(DataError) as info:
        check_num_components(np.zeros((5, 2)), k, "data.csv")
    assert str(info.value).startswith("data.csv: ")
    assert "at least 1" in str(info.value)
