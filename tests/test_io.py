"""Tests of the parameter, data and gradient files, and of their messages.

The message text is part of the contract: each bad input is matched on the
array's name, the expected and the actual shape or value.
"""

import itertools
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manual_bp import Layer, init
from manual_bp._io import (
    InputError,
    check_data,
    load_data,
    load_params,
    save_grads,
    save_params,
)


@pytest.fixture
def params():
    return init((5, 4, 3, 1), jax.random.key(0), dtype=jnp.float64)


def _raw_params(sizes=(3, 2, 1)):
    """W1, b1, ... as numpy float64 arrays, valid for widths `sizes`."""
    arrays = {}
    for l, (n_prev, n) in enumerate(itertools.pairwise(sizes), 1):
        arrays[f"W{l}"] = np.full((n, n_prev), 0.5)
        arrays[f"b{l}"] = np.zeros((n, 1))
    return arrays


def _write_csv(tmp_path, text, name="D.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# save_params / load_params


def test_params_round_trip_keeps_values_shapes_and_dtype(tmp_path, params):
    path = tmp_path / "P.npz"
    save_params(path, params)
    loaded = load_params(path)
    assert len(loaded) == 3
    for got, want in zip(loaded, params, strict=True):
        assert isinstance(got, Layer)
        for g, w in zip(got, want, strict=True):
            assert isinstance(g, jax.Array)
            assert g.shape == w.shape and g.dtype == jnp.float64
            np.testing.assert_array_equal(g, w)


def test_save_params_writes_keys_in_document_order(tmp_path, params):
    path = tmp_path / "P.npz"
    save_params(path, params)
    with np.load(path) as archive:
        assert archive.files == ["W1", "b1", "W2", "b2", "W3", "b3"]
        assert archive["W2"].shape == (3, 4) and archive["b2"].shape == (3, 1)


def test_save_params_accepts_dict_layers(tmp_path):
    layers = [{"W": np.ones((2, 3)), "b": np.zeros((2, 1))}]
    save_params(tmp_path / "P.npz", layers)
    (loaded,) = load_params(tmp_path / "P.npz")
    np.testing.assert_array_equal(loaded.W, np.ones((2, 3)))


def test_load_params_casts_to_dtype(tmp_path, params):
    path = tmp_path / "P.npz"
    save_params(path, params)
    loaded = load_params(path, dtype="float32")
    assert all(a.dtype == jnp.float32 for layer in loaded for a in layer)


def test_load_params_casts_integers_when_dtype_given(tmp_path):
    path = tmp_path / "P.npz"
    np.savez(path, W1=np.ones((2, 3), dtype=np.int64), b1=np.zeros((2, 1), np.int64))
    (layer,) = load_params(path, dtype=np.float64)
    assert layer.W.dtype == jnp.float64


def test_load_params_refuses_integers_without_dtype(tmp_path):
    path = tmp_path / "P.npz"
    np.savez(path, W1=np.ones((2, 3), dtype=np.int64), b1=np.zeros((2, 1)))
    with pytest.raises(
        InputError,
        match=r"P\.npz: layer 1: W\[1\] has dtype int64, expected float32 or float64",
    ):
        load_params(path)


def test_load_params_missing_file_names_path_and_reason(tmp_path):
    with pytest.raises(InputError, match=r"nope\.npz: cannot read: No such file"):
        load_params(tmp_path / "nope.npz")


def test_load_params_not_an_archive(tmp_path):
    path = tmp_path / "P.npz"
    path.write_text("W1 = [[1, 2]]\n")
    with pytest.raises(InputError, match=r"P\.npz: cannot read: not an \.npz archive"):
        load_params(path)


def test_load_params_empty_file(tmp_path):
    path = tmp_path / "P.npz"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"P\.npz: cannot read: the file is empty"):
        load_params(path)


def test_load_params_single_npy_array(tmp_path):
    path = tmp_path / "P.npy"
    np.save(path, np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"single array of shape \(2, 3\), expected"):
        load_params(path)


def test_load_params_reports_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "P.npz"
    arrays = _raw_params((3, 2, 1))
    del arrays["b2"]
    np.savez(path, **arrays, c1=np.zeros(1), W9=np.zeros((1, 1)))
    with pytest.raises(InputError) as info:
        load_params(path)
    assert str(info.value) == (
        f"{path}: missing b2; unexpected keys: c1, W9 "
        "(expected W1, b1, W2, b2 for L = 2 layers)"
    )


def test_load_params_one_layer_in_the_singular(tmp_path):
    path = tmp_path / "P.npz"
    np.savez(path, W1=np.zeros((1, 2)))
    with pytest.raises(InputError) as info:
        load_params(path)
    assert str(info.value) == f"{path}: missing b1 (expected W1, b1 for L = 1 layer)"


def test_load_params_no_layer_keys(tmp_path):
    path = tmp_path / "P.npz"
    np.savez(path, weights=np.zeros((2, 2)))
    with pytest.raises(
        InputError, match=r"missing W1, b1; unexpected keys: weights \(expected W1, b1"
    ):
        load_params(path)


def test_load_params_refuses_pickled_object_array(tmp_path):
    path = tmp_path / "P.npz"
    arrays = _raw_params((3, 2, 1))
    arrays["W2"] = np.array([[object(), 1.0]], dtype=object)
    np.savez(path, **arrays)  # writing object arrays pickles them
    with pytest.raises(
        InputError, match=r"P\.npz: W\[2\] cannot be read .*pickled object arrays"
    ):
        load_params(path)


def test_load_params_reports_nan_with_its_index(tmp_path):
    path = tmp_path / "P.npz"
    arrays = _raw_params((4, 3, 1))
    arrays["W2"] = np.zeros((1, 3))
    arrays["W2"][0, 2] = np.nan
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=r"P\.npz: W\[2\] has a NaN at \(0, 2\)$"):
        load_params(path)


def test_load_params_reports_inf_sign_and_count(tmp_path):
    path = tmp_path / "P.npz"
    arrays = _raw_params((3, 2, 1))
    arrays["b1"][:] = -np.inf
    np.savez(path, **arrays)
    with pytest.raises(
        InputError, match=r"P\.npz: b\[1\] has a -inf at \(0, 0\) \(1 more non-finite\)"
    ):
        load_params(path)


def test_load_params_refuses_flat_bias(tmp_path):
    path = tmp_path / "P.npz"
    arrays = _raw_params((3, 2, 1))
    arrays["b1"] = np.zeros(2)
    np.savez(path, **arrays)
    with pytest.raises(
        InputError,
        match=r"P\.npz: layer 1: b\[1\] has shape \(2,\), expected \(n\[1\], 1\) "
        r"= \(2, 1\); a flat bias .*b\.reshape\(-1, 1\)",
    ):
        load_params(path)


def test_load_params_prefixes_every_check_shapes_line(tmp_path):
    path = tmp_path / "P.npz"
    arrays = _raw_params((4, 3, 1))
    arrays["W2"] = np.zeros((1, 5))
    arrays["b2"] = np.zeros((2, 1))
    np.savez(path, **arrays)
    with pytest.raises(InputError) as info:
        load_params(path)
    lines = str(info.value).splitlines()
    assert lines == [
        f"{path}: layer 2: W[2] has shape (1, 5), expected (n[2], n[1]) = (1, 3), "
        "n[1] = 3 being the rows of W[1]",
        f"{path}: layer 2: b[2] has shape (2, 1), expected (n[2], 1) = (1, 1)",
    ]


# load_data: npz


def _write_npz_data(tmp_path, **arrays):
    path = tmp_path / "D.npz"
    np.savez(path, **arrays)
    return path


def test_load_data_npz_round_trip(tmp_path):
    X = np.arange(6.0).reshape(3, 2)
    Y = np.array([[0.0, 1.0]])
    X_got, Y_got = load_data(_write_npz_data(tmp_path, X=X, Y=Y))
    assert isinstance(X_got, jax.Array) and X_got.dtype == jnp.float64
    np.testing.assert_array_equal(X_got, X)
    np.testing.assert_array_equal(Y_got, Y)


def test_load_data_npz_casts_to_dtype(tmp_path):
    path = _write_npz_data(tmp_path, X=np.ones((3, 2)), Y=np.array([[0, 1]]))
    X, Y = load_data(path, dtype="float32")
    assert X.dtype == jnp.float32 and Y.dtype == jnp.float32


def test_load_data_npz_missing_y(tmp_path):
    path = _write_npz_data(tmp_path, X=np.ones((3, 2)))
    with pytest.raises(
        InputError, match=r"D\.npz: missing Y \(expected exactly X, Y\)"
    ):
        load_data(path)


def test_load_data_npz_extra_key(tmp_path):
    path = _write_npz_data(tmp_path, X=np.ones((3, 2)), Y=np.ones((1, 2)), Z=np.ones(1))
    with pytest.raises(InputError, match=r"D\.npz: unexpected keys: Z \(expected"):
        load_data(path)


def test_load_data_npz_refuses_pickled_object_array(tmp_path):
    Y = np.array([[0, "one"]], dtype=object)
    path = _write_npz_data(tmp_path, X=np.ones((3, 2)), Y=Y)
    with pytest.raises(InputError, match=r"D\.npz: Y cannot be read .*pickled"):
        load_data(path)


def test_load_data_npz_y_as_column(tmp_path):
    path = _write_npz_data(tmp_path, X=np.ones((3, 4)), Y=np.zeros((4, 1)))
    with pytest.raises(
        InputError,
        match=r"D\.npz: Y has shape \(4, 1\), expected \(n\[L\], m\) = \(1, 4\): "
        r"examples go in columns; pass Y\.T",
    ):
        load_data(path)


def test_load_data_npz_y_flat(tmp_path):
    path = _write_npz_data(tmp_path, X=np.ones((3, 4)), Y=np.zeros(4))
    with pytest.raises(
        InputError,
        match=r"D\.npz: Y has shape \(4,\), expected \(n\[L\], m\) = \(1, 4\): "
        r"examples go in columns; pass Y\.reshape\(1, -1\)",
    ):
        load_data(path)


def test_load_data_npz_different_m(tmp_path):
    path = _write_npz_data(tmp_path, X=np.ones((3, 4)), Y=np.zeros((1, 5)))
    with pytest.raises(
        InputError,
        match=r"D\.npz: X has shape \(3, 4\) and Y has shape \(1, 5\): .*"
        r"m = 4 in X but 5 in Y",
    ):
        load_data(path)


def test_load_data_npz_label_outside_unit_interval(tmp_path):
    path = _write_npz_data(tmp_path, X=np.ones((3, 3)), Y=np.array([[0, 1.5, 2]]))
    with pytest.raises(
        InputError,
        match=r"D\.npz: Y has 1\.5 at \(0, 1\), expected a label in \[0, 1\] "
        r"\(1 more outside\)",
    ):
        load_data(path)


def test_load_data_npz_nan_in_x(tmp_path):
    X = np.ones((3, 2))
    X[2, 1] = np.nan
    path = _write_npz_data(tmp_path, X=X, Y=np.zeros((1, 2)))
    with pytest.raises(InputError, match=r"D\.npz: X has a NaN at \(2, 1\)$"):
        load_data(path)


def test_load_data_npz_inf_in_y(tmp_path):
    path = _write_npz_data(tmp_path, X=np.ones((3, 2)), Y=np.array([[0, np.inf]]))
    with pytest.raises(InputError, match=r"D\.npz: Y has an inf at \(0, 1\)$"):
        load_data(path)


def test_load_data_npz_zero_examples(tmp_path):
    path = _write_npz_data(tmp_path, X=np.ones((3, 0)), Y=np.zeros((1, 0)))
    with pytest.raises(
        InputError, match=r"D\.npz: X has m = 0 examples: shape \(3, 0\), expected"
    ):
        load_data(path)


def test_load_data_unknown_extension(tmp_path):
    path = tmp_path / "D.txt"
    path.write_text("1,0\n")
    with pytest.raises(
        InputError, match=r"D\.txt: unknown extension '\.txt'; expected \.npz .* \.csv"
    ):
        load_data(path)


# load_data: csv


def test_load_data_csv_without_header_is_transposed(tmp_path):
    path = _write_csv(tmp_path, "1,2,3,0\n4,5,6,1\n")
    X, Y = load_data(path)
    assert X.shape == (3, 2) and Y.shape == (1, 2)
    np.testing.assert_array_equal(X[:, 0], [1, 2, 3])  # row 1's features
    np.testing.assert_array_equal(X[:, 1], [4, 5, 6])  # row 2's features
    np.testing.assert_array_equal(Y, [[0, 1]])


def test_load_data_csv_with_header(tmp_path):
    path = _write_csv(tmp_path, "x1,x2,label\n0.5,-1,1\n2,3e-1,0\n")
    X, Y = load_data(path)
    np.testing.assert_array_equal(X, [[0.5, 2.0], [-1.0, 0.3]])
    np.testing.assert_array_equal(Y, [[1.0, 0.0]])


def test_load_data_csv_skips_blank_lines(tmp_path):
    path = _write_csv(tmp_path, "\nx,y\n\n1,0\n  \n2,1\n\n")
    X, Y = load_data(path)
    np.testing.assert_array_equal(X, [[1.0, 2.0]])
    np.testing.assert_array_equal(Y, [[0.0, 1.0]])


def test_load_data_csv_ragged_row_names_its_line(tmp_path):
    path = _write_csv(tmp_path, "x1,x2,y\n1,2,0\n\n3,1\n")
    with pytest.raises(
        InputError,
        match=r"D\.csv: line 4 has 2 cells, expected 3 like line 2, the first data row",
    ):
        load_data(path)


def test_load_data_csv_non_numeric_cell_names_line_and_column(tmp_path):
    path = _write_csv(tmp_path, "1,2,0\n3,abc,1\n")
    with pytest.raises(
        InputError, match=r"D\.csv: line 2, column 2: 'abc' is not a number"
    ):
        load_data(path)


def test_load_data_csv_reports_every_bad_line(tmp_path):
    path = _write_csv(tmp_path, "1,2,0\n3,,1\n4,5\n")
    with pytest.raises(InputError) as info:
        load_data(path)
    assert str(info.value).splitlines() == [
        f"{path}: line 2, column 2: '' is not a number",
        f"{path}: line 3 has 2 cells, expected 3 like line 1, the first data row",
    ]


def test_load_data_csv_counts_one_cell_in_the_singular(tmp_path):
    # A one-cell row after three-cell rows, and a one-cell header over them.
    path = _write_csv(tmp_path, "1,2,0\n3,4,1\n5\n")
    with pytest.raises(InputError) as info:
        load_data(path)
    assert str(info.value) == (
        f"{path}: line 3 has 1 cell, expected 3 like line 1, the first data row"
    )
    path = _write_csv(tmp_path, "label\n1,2,0\n", name="H.csv")
    with pytest.raises(InputError) as info:
        load_data(path)
    assert str(info.value) == (
        f"{path}: line 1 (header) has 1 cell, expected 3 like line 2, the first "
        "data row"
    )


def test_load_data_csv_nan_cell_names_line_and_column(tmp_path):
    path = _write_csv(tmp_path, "1,2,0\n3,nan,1\n")
    with pytest.raises(
        InputError, match=r"D\.csv: line 2, column 2: 'nan' is not a finite number"
    ):
        load_data(path)


def test_load_data_csv_mixed_first_line_is_an_error(tmp_path):
    path = _write_csv(tmp_path, "x1,2,y\n1,2,0\n")
    with pytest.raises(
        InputError, match=r"D\.csv: line 1 mixes numbers \('2'\) with text"
    ):
        load_data(path)


def test_load_data_csv_header_width_must_match(tmp_path):
    path = _write_csv(tmp_path, "x1,y\n1,2,0\n")
    with pytest.raises(
        InputError, match=r"D\.csv: line 1 \(header\) has 2 cells, expected 3 like"
    ):
        load_data(path)


def test_load_data_csv_single_column_is_an_error(tmp_path):
    path = _write_csv(tmp_path, "1\n0\n")
    with pytest.raises(InputError, match=r"D\.csv: line 1 has 1 cell, expected at"):
        load_data(path)


def test_load_data_csv_label_outside_unit_interval(tmp_path):
    path = _write_csv(tmp_path, "1,2,0\n3,4,2\n")
    with pytest.raises(
        InputError, match=r"D\.csv: Y has 2\.0 at \(0, 1\), expected a label in"
    ):
        load_data(path)


def test_load_data_csv_header_only_has_zero_examples(tmp_path):
    path = _write_csv(tmp_path, "x1,x2,y\n")
    with pytest.raises(
        InputError, match=r"D\.csv: X has m = 0 examples: shape \(2, 0\)"
    ):
        load_data(path)


# check_data


def test_check_data_accepts_valid_data():
    check_data(jnp.ones((3, 2)), jnp.array([[0.0, 1.0]]))


def test_check_data_reports_every_problem():
    X = np.ones((3, 2))
    X[0, 0] = np.inf
    with pytest.raises(InputError) as info:
        check_data(X, np.array([[np.nan, -1.0]]), source="D.npz")
    assert str(info.value).splitlines() == [
        "D.npz: X has an inf at (0, 0)",
        "D.npz: Y has a NaN at (0, 0)",
        "D.npz: Y has -1.0 at (0, 1), expected a label in [0, 1]",
    ]


def test_check_data_x_not_a_matrix():
    with pytest.raises(
        InputError,
        match=re.escape("data: X has shape (3,), expected (n[0], m): one example"),
    ):
        check_data(np.ones(3), np.ones((1, 3)))


def test_check_data_refuses_non_numeric_dtype():
    with pytest.raises(
        InputError, match=r"data: Y has dtype <U1, expected a real numeric dtype"
    ):
        check_data(np.ones((2, 2)), np.array([["a", "b"]]))


@pytest.mark.parametrize(
    ("name", "kind"),
    [(".", "a directory"), ("sub/", "a directory"), ("fifo", "a FIFO")],
)
def test_save_params_refuses_a_path_that_is_not_a_regular_file(
    tmp_path, params, monkeypatch, name, kind
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputError) as caught:
        save_params(name, params)
    assert str(caught.value) == f"{name}: exists and is not a regular file ({kind})"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "sub"]
    assert list((tmp_path / "sub").iterdir()) == []
    assert (tmp_path / "fifo").is_fifo()


def test_save_params_writes_through_a_symbolic_link(tmp_path, params):
    link = tmp_path / "link.npz"
    link.symlink_to("target.npz")  # dangling until written
    save_params(link, params)
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "target.npz"]
    np.testing.assert_array_equal(
        load_params(tmp_path / "target.npz")[2].W, params[2].W
    )


def test_save_params_refuses_non_finite_entries_as_load_params_words_them(
    tmp_path, params
):
    W2 = params[1].W.at[2, 1].set(jnp.nan).at[0, 3].set(jnp.inf)
    b3 = params[2].b.at[0, 0].set(-jnp.inf)
    bad = (params[0], Layer(W2, params[1].b), Layer(params[2].W, b3))
    path = tmp_path / "P.npz"
    path.write_bytes(b"an earlier file")
    with pytest.raises(InputError) as caught:
        save_params(path, bad)
    # Row-major order: (0, 3) comes before (2, 1), so the inf is first; one
    # more non-finite entry in W[2]; then b[3]'s -inf. load_params says the
    # same of such a file ("has a NaN at (0, 1)" in the loader's test).
    assert str(caught.value) == (
        f"{path}: W[2] has an inf at (0, 3) (1 more non-finite)\n"
        f"{path}: b[3] has a -inf at (0, 0)"
    )
    assert path.read_bytes() == b"an earlier file"
    assert [p.name for p in tmp_path.iterdir()] == ["P.npz"]


# save_grads


def test_save_grads_writes_exactly_the_given_path(tmp_path, params):
    path = tmp_path / "G.out"
    save_grads(path, params)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["G.out"]
    with np.load(path) as archive:
        assert archive.files == ["dW1", "db1", "dW2", "db2", "dW3", "db3"]
        np.testing.assert_array_equal(archive["dW2"], params[1].W)


def test_save_grads_replaces_an_existing_file(tmp_path, params):
    path = tmp_path / "G.npz"
    path.write_text("old")
    save_grads(path, params)
    with np.load(path) as archive:
        assert archive["db3"].shape == (1, 1)


def test_save_grads_failing_write_leaves_nothing(tmp_path, params):
    path = tmp_path / "missing" / "G.npz"
    with pytest.raises(InputError, match=r"G\.npz: cannot write: No such file"):
        save_grads(path, params)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_save_grads_failure_mid_write_removes_the_temporary_file(
    tmp_path, params, monkeypatch
):
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(InputError, match=r"G\.npz: cannot write: No space left"):
        save_grads(tmp_path / "G.npz", params)
    assert list(tmp_path.iterdir()) == []
