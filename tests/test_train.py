"""Tests of training: `manual_bp._train`, `manual-bp train` and the data set.

The command runs in-process through a parser holding only the `train`
subcommand, with `manual-bp`'s error handling (InputError -> exit status 2,
the message on stderr), so these tests do not depend on cli.py. Messages
are matched by regex: the text is part of the contract.
"""

import argparse
import re
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manual_bp as mb
from manual_bp import _train
from manual_bp._cli_train import HISTORY_COLUMNS, PLOT_EXTRA, add_train_parser
from manual_bp._datasets import load_breast_cancer
from manual_bp._io import InputError

F64 = np.dtype(np.float64)


def run_train(argv: list[str]) -> int:
    """`manual-bp train ARGV` in-process; returns the exit status."""
    top = argparse.ArgumentParser(prog="manual-bp")
    add_train_parser(top.add_subparsers(dest="command", required=True))
    try:
        args = top.parse_args(["train", *argv])
        return args.run(args)
    except SystemExit as exit_:  # argparse's errors
        return exit_.code
    except InputError as err:
        print(f"manual-bp train: error: {err}", file=sys.stderr)
        return 2


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """12 examples of 3 features, the label 1 when x1 + x2 - x3 > 0."""
    X = np.random.default_rng(0).normal(size=(12, 3)).round(4)
    Y = (X @ np.array([1.0, 1.0, -1.0]) > 0).astype(int)
    path = tmp_path / "tiny.csv"
    rows = [",".join([*map(str, x), str(y)]) for x, y in zip(X, Y, strict=True)]
    path.write_text("x1,x2,x3,label\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def init_npz(tmp_path: Path) -> Path:
    """float64 parameters of widths 3, 4, 1 for the tiny data."""
    path = tmp_path / "init.npz"
    mb.save_params(path, mb.init((3, 4, 1), jax.random.key(1), "xavier", dtype=F64))
    return path


def full_batch(data: Path, *extra: str) -> list[str]:
    """Arguments of unshuffled, unstandardised full-batch float64 training."""
    return [
        "--data",
        str(data),
        "--batch-size",
        "full",
        "--val-fraction",
        "0",
        "--no-standardize",
        "--dtype",
        "float64",
        "--activation",
        "tanh",
        "--lr",
        "0.5",
        *extra,
    ]


def history_rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


# The library.


def test_train_lowers_the_cost(tiny_csv):
    X, Y = mb.load_data(tiny_csv, F64)
    params = mb.init((3, 4, 1), jax.random.key(0), "xavier", dtype=F64)
    result = _train.train(params, X, Y, epochs=20, learning_rate=0.5)
    before = mb.cost(params, X, Y, "tanh")
    assert len(result.history) == 20
    assert result.history[-1].train_cost < 0.5 * before
    assert result.history[-1].val_cost is None


def test_train_mini_batches_use_every_column_once(tiny_csv):
    # 12 columns in batches of 5: two of 5, then the 2 left over.
    X, Y = mb.load_data(tiny_csv, F64)
    params = mb.init((3, 1), jax.random.key(0), "xavier", dtype=F64)
    result = _train.train(params, X, Y, epochs=1, learning_rate=0.1, batch_size=5)
    order = np.asarray(
        jax.random.permutation(jax.random.fold_in(jax.random.key(0), 1), 12)
    )
    expected = params
    for cols in (order[:5], order[5:10], order[10:]):
        expected = mb.sgd_step(
            expected, mb.grad(expected, X[:, cols], Y[:, cols], "tanh"), 0.1
        )
    rtol, atol = mb.tolerance(F64)
    chex.assert_trees_all_close(result.params, expected, rtol=rtol, atol=atol)


def test_fold_gives_the_same_network_on_raw_features(tiny_csv):
    X, _ = mb.load_data(tiny_csv, F64)
    s = _train.standardization(X)
    params = mb.init((3, 4, 1), jax.random.key(0), "xavier", dtype=F64)
    Z_std, _ = mb.forward(params, _train.standardize(X, s), "tanh")
    Z_raw, _ = mb.forward(_train.fold(params, s), X, "tanh")
    # Folding divides by sigma and subtracts W[1] mu: a few more roundings
    # than the standardised route, hence 1000 times the table's tolerance.
    rtol, atol = mb.tolerance(F64)
    np.testing.assert_allclose(Z_raw[-1], Z_std[-1], rtol=1e3 * rtol, atol=1e3 * atol)
    back = _train.unfold(_train.fold(params, s), s)
    chex.assert_trees_all_close(back, params, rtol=1e3 * rtol, atol=1e3 * atol)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
        ({"learning_rate": -1.0}, r"learning rate must be a positive finite number"),
        ({"learning_rate": float("nan")}, r"learning rate must be a positive finite"),
        ({"batch_size": 0}, r"batch size must be an integer >= 1 or None, got 0"),
    ],
    ids=["epochs", "negative-lr", "nan-lr", "batch-size"],
)
def test_train_rejects_bad_settings(tiny_csv, settings, message):
    X, Y = mb.load_data(tiny_csv, F64)
    params = mb.init((3, 1), jax.random.key(0), dtype=F64)
    kwargs = {"epochs": 1, "learning_rate": 0.1, **settings}
    with pytest.raises(ValueError, match=message):
        _train.train(params, X, Y, **kwargs)


# The data set.


def test_load_breast_cancer_shapes_labels_and_class_counts():
    X, Y = load_breast_cancer()
    assert X.shape == (30, 569) and Y.shape == (1, 569)
    assert X.dtype == Y.dtype == jnp.float64
    assert set(np.unique(Y).tolist()) == {0.0, 1.0}
    # UCI's class distribution: 212 malignant (label 1 here), 357 benign (0).
    assert int(Y.sum()) == 212 and int((Y == 0).sum()) == 357
    # The first row of the UCI file: mean radius 17.99, diagnosis M.
    assert float(X[0, 0]) == 17.99 and float(Y[0, 0]) == 1.0


def _small_problem():
    params = mb.init((3, 2, 1), jax.random.key(0))
    X = np.random.default_rng(0).normal(size=(3, 10))
    return params, X, (X[:1] > 0).astype(np.float64)


@pytest.mark.parametrize(
    ("X_val", "Y_val", "message"),
    [
        # n[0] = 2 rows where the network takes 3: named as the validation set's.
        (
            np.ones((2, 4)),
            np.ones((1, 4)),
            "validation set: layer 1: W[1] has shape (2, 3), expected "
            "(n[1], n[0]) = (2, 2), n[0] = 2 being the rows of A[0] (X)",
        ),
        (
            np.ones((3, 4)),
            np.ones((4, 1)),
            "validation set: Y has shape (4, 1), expected (n[L], m) = (1, 4): "
            "examples go in columns; pass Y.T",
        ),
        (
            np.ones((3, 4)),
            None,
            "X_val and Y_val go together: pass both, or neither for no validation set",
        ),
    ],
    ids=["rows", "transposed-labels", "labels-missing"],
)
def test_train_names_the_validation_set_in_its_errors(X_val, Y_val, message):
    params, X, Y = _small_problem()
    with pytest.raises(ValueError) as err:
        mb.train(params, X, Y, epochs=1, learning_rate=0.1, X_val=X_val, Y_val=Y_val)
    assert str(err.value) == message


def test_train_refuses_an_empty_validation_set_rather_than_ignoring_it():
    params, X, Y = _small_problem()
    with pytest.raises(ValueError, match=r"^the validation set is empty: X_val has m"):
        mb.train(
            params, X, Y, epochs=1, learning_rate=0.1, X_val=X[:, :0], Y_val=Y[:, :0]
        )


def test_train_refuses_nan_data_before_training_not_as_divergence():
    params, X, Y = _small_problem()
    X[1, 2] = np.nan
    with pytest.raises(InputError, match=r"^training set: X has a NaN at \(1, 2\)"):
        mb.train(params, X, Y, epochs=1, learning_rate=0.1)


def test_load_breast_cancer_refuses_half_precision_like_the_rest():
    X, _ = load_breast_cancer(jnp.float32)
    assert X.dtype == jnp.float32
    with pytest.raises(ValueError, match=r"dtype float16 is not supported for X"):
        load_breast_cancer(np.float16)


# The command: results.


def test_cli_full_batch_equals_hand_applied_grad_and_sgd_steps(
    tiny_csv, init_npz, tmp_path
):
    out = tmp_path / "out.npz"
    argv = full_batch(tiny_csv, "--init", str(init_npz), "--epochs", "5")
    assert run_train([*argv, "--out", str(out)]) == 0
    X, Y = mb.load_data(tiny_csv, F64)
    params = mb.load_params(init_npz)
    for _ in range(5):
        params = mb.sgd_step(params, mb.grad(params, X, Y, "tanh"), 0.5)
    rtol, atol = mb.tolerance(F64)
    chex.assert_trees_all_close(mb.load_params(out), params, rtol=rtol, atol=atol)


def test_cli_resume_from_init_continues_exactly(tiny_csv, init_npz, tmp_path):
    first, second, straight = (tmp_path / f"{n}.npz" for n in ("a", "b", "c"))
    init = ["--init", str(init_npz)]
    assert (
        run_train([*full_batch(tiny_csv, *init), "--epochs", "3", "--out", str(first)])
        == 0
    )
    resume = ["--init", str(first), "--epochs", "4", "--out", str(second)]
    assert run_train(full_batch(tiny_csv, *resume)) == 0
    assert (
        run_train(
            [*full_batch(tiny_csv, *init), "--epochs", "7", "--out", str(straight)]
        )
        == 0
    )
    chex.assert_trees_all_equal(mb.load_params(second), mb.load_params(straight))


def test_cli_same_seed_same_result(tiny_csv, tmp_path):
    def trained(seed: str, name: str) -> tuple:
        out = tmp_path / name
        argv = ["--data", str(tiny_csv), "--batch-size", "4", "--standardize"]
        assert (
            run_train([*argv, "--seed", seed, "--epochs", "3", "--out", str(out)]) == 0
        )
        return mb.load_params(out)

    chex.assert_trees_all_equal(trained("7", "a.npz"), trained("7", "b.npz"))
    assert not np.array_equal(trained("7", "a.npz")[0].W, trained("8", "c.npz")[0].W)


def test_cli_default_reaches_95_percent_validation_accuracy(tmp_path, capsys):
    history = tmp_path / "history.csv"
    assert run_train(["--history", str(history)]) == 0
    last = dict(zip(HISTORY_COLUMNS, history_rows(history)[-1], strict=True))
    assert float(last["val_accuracy"]) >= 0.95
    out = capsys.readouterr().out
    assert re.search(r"validation cost \S+, accuracy (\d+\.\d+)% \(m = 114\)", out)
    assert re.search(r"\(m = 455\).*; \d+\.\d\d s$", out.splitlines()[0])


def test_cli_one_layer_logistic_regression_trains(tmp_path, capsys):
    out, history = tmp_path / "p.npz", tmp_path / "h.csv"
    argv = ["--layers", "", "--epochs", "10", "--out", str(out)]
    assert run_train([*argv, "--history", str(history)]) == 0
    assert set(np.load(out).files) == {"W1", "b1"}
    assert mb.load_params(out)[0].W.shape == (1, 30)
    assert float(history_rows(history)[-1][4]) >= 0.95


def test_cli_saved_params_load_in_grad(tiny_csv, tmp_path, capsys):
    from manual_bp.cli import main

    out = tmp_path / "p.npz"
    argv = ["--data", str(tiny_csv), "--standardize", "--epochs", "2"]
    assert run_train([*argv, "--out", str(out)]) == 0
    assert main(["grad", "--params", str(out), "--data", str(tiny_csv)]) == 0


def test_cli_history_has_its_columns_and_one_row_per_epoch(tiny_csv, tmp_path):
    history = tmp_path / "h.csv"
    argv = ["--data", str(tiny_csv), "--val-fraction", "0.25", "--epochs", "4"]
    assert run_train([*argv, "--history", str(history)]) == 0
    rows = history_rows(history)
    assert tuple(rows[0]) == HISTORY_COLUMNS
    assert [row[0] for row in rows[1:]] == ["1", "2", "3", "4"]
    assert all(cell for row in rows[1:] for cell in row)


def test_cli_history_validation_columns_empty_with_val_fraction_0(
    tiny_csv, tmp_path, capsys
):
    history = tmp_path / "h.csv"
    assert (
        run_train(full_batch(tiny_csv, "--epochs", "2", "--history", str(history))) == 0
    )
    for row in history_rows(history)[1:]:
        assert row[3:] == ["", ""] and all(row[:3])
    assert "validation" not in capsys.readouterr().out.splitlines()[0]


def test_cli_plot_is_a_png(tiny_csv, tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curves.png"
    assert (
        run_train(["--data", str(tiny_csv), "--epochs", "2", "--plot", str(plot)]) == 0
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot_format_that_fails_to_draw_is_refused_before_training(
    tiny_csv, tmp_path, monkeypatch, capsys
):
    # .pgf is one of matplotlib's formats but needs xelatex to draw text;
    # stand in for a machine without it by making that format's save fail.
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    save = Figure.savefig

    def savefig(self, fname, *args, format=None, **kwargs):
        if format == "pgf":
            raise RuntimeError("'xelatex' not found")
        return save(self, fname, *args, format=format, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the check")

    monkeypatch.setattr("manual_bp._cli_train.train", no_training)
    out, history, plot = tmp_path / "p.npz", tmp_path / "h.csv", tmp_path / "c.pgf"
    argv = ["--data", str(tiny_csv), "--out", str(out), "--history", str(history)]
    assert run_train([*argv, "--plot", str(plot)]) == 2
    err = capsys.readouterr().err
    assert (
        f"--plot {plot}: matplotlib cannot write .pgf on this machine "
        "(RuntimeError: 'xelatex' not found); use .png or .svg"
    ) in err
    assert list(tmp_path.iterdir()) == [tiny_csv]


def test_cli_writes_no_output_when_drawing_the_plot_fails(
    tiny_csv, tmp_path, monkeypatch
):
    # Drawing the curves after training fails: --out and --history, which
    # come first, must not have been written either.
    pytest.importorskip("matplotlib")

    def broken_plot(history, plot_format):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr("manual_bp._cli_train._plot", broken_plot)
    out, history, plot = tmp_path / "p.npz", tmp_path / "h.csv", tmp_path / "c.png"
    argv = ["--data", str(tiny_csv), "--epochs", "1", "--out", str(out)]
    with pytest.raises(RuntimeError, match="drawing failed"):
        run_train([*argv, "--history", str(history), "--plot", str(plot)])
    assert list(tmp_path.iterdir()) == [tiny_csv]


def test_cli_plot_without_matplotlib_says_how_to_install(
    tiny_csv, tmp_path, monkeypatch, capsys
):
    for module in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the check")

    monkeypatch.setattr("manual_bp._cli_train.train", no_training)
    out, plot = tmp_path / "p.npz", tmp_path / "c.png"
    argv = ["--data", str(tiny_csv), "--out", str(out), "--plot", str(plot)]
    assert run_train(argv) == 2
    err = capsys.readouterr().err
    assert f"--plot needs matplotlib, which is not installed: {PLOT_EXTRA}" in err
    assert list(tmp_path.iterdir()) == [tiny_csv]


# The command: bad input.


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "0"], r"argument --lr: expected a positive number, got '0'"),
        (["--lr", "-0.1"], r"argument --lr: expected a positive number, got '-0.1'"),
        (["--lr", "nan"], r"argument --lr: expected a positive number, got 'nan'"),
        (["--lr", "fast"], r"argument --lr: expected a positive number, got 'fast'"),
        (["--epochs", "0"], r"argument --epochs: expected an integer >= 1, got '0'"),
        (
            ["--batch-size", "0"],
            r"argument --batch-size: expected an integer >= 1 or 'full', got '0'",
        ),
        (["--layers", "16,0"], r"argument --layers: expected the hidden widths"),
        (["--val-fraction", "1"], r"argument --val-fraction: expected a number from 0"),
        (["--data", "iris"], r"--data 'iris': expected breast-cancer, or a \.csv"),
    ],
    ids=[
        "lr-0",
        "lr-negative",
        "lr-nan",
        "lr-text",
        "epochs-0",
        "batch-0",
        "layers",
        "val-fraction",
        "data",
    ],
)
def test_cli_rejects_bad_arguments(argv, message, capsys):
    assert run_train(argv) == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("flag", ["--out", "--history", "--plot"])
@pytest.mark.parametrize("bad", ["directory", "."])
def test_cli_refuses_an_output_that_is_a_directory_before_training(
    tiny_csv, tmp_path, monkeypatch, capsys, flag, bad
):
    def no_training(*args, **kwargs):
        raise AssertionError("training started before the check")

    monkeypatch.setattr("manual_bp._cli_train.train", no_training)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "directory").mkdir()
    good = {"--out": "p.npz", "--history": "h.csv", "--plot": "c.png"}
    outputs = [arg for f, path in good.items() for arg in (f, path)]
    outputs[outputs.index(flag) + 1] = bad
    assert run_train(["--data", str(tiny_csv), *outputs]) == 2
    assert capsys.readouterr().err == (
        f"manual-bp train: error: {flag} {bad}: exists and is not a regular "
        "file (a directory)\n"
    )
    # None of the good outputs was written either.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["directory", "tiny.csv"]


def test_cli_rejects_labels_other_than_0_and_1(tmp_path, capsys):
    data = tmp_path / "soft.csv"
    data.write_text("0.1,0.2,1\n0.3,0.4,0.5\n0.5,0.6,0\n")
    assert run_train(["--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert re.search(
        r"soft\.csv: Y has 0\.5 at \(0, 1\), expected a label 0 or 1: accuracy "
        r"counts hard labels",
        err,
    )


def test_cli_rejects_an_empty_training_split(tmp_path, capsys):
    data = tmp_path / "three.csv"
    data.write_text("0.1,1\n0.2,0\n0.3,1\n")
    assert run_train(["--data", str(data), "--val-fraction", "0.9"]) == 2
    assert re.search(
        r"--val-fraction 0\.9: the training split is empty: a validation fraction "
        r"of 0\.9 takes 3 of the m = 3 examples, leaving none to train on",
        capsys.readouterr().err,
    )


def test_cli_rejects_init_of_the_wrong_shapes(tiny_csv, tmp_path, capsys):
    wrong = tmp_path / "wrong.npz"
    mb.save_params(wrong, mb.init((5, 4, 2), jax.random.key(0), dtype=F64))
    assert run_train(["--data", str(tiny_csv), "--init", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert re.search(
        r"wrong\.npz: layer 1: W\[1\] has shape \(4, 5\), expected "
        r"\(n\[1\], n\[0\]\) = \(4, 3\)",
        err,
    )
    assert re.search(
        r"layer 2: W\[2\] has shape \(2, 4\), expected \(n\[2\], n\[1\]\) = \(1, 4\)",
        err,
    )
    assert re.search(
        r"layer 2: b\[2\] has shape \(2, 1\), expected \(n\[2\], 1\) = \(1, 1\)", err
    )


def test_cli_rejects_init_with_other_hidden_layers(tiny_csv, init_npz, capsys):
    assert (
        run_train(["--data", str(tiny_csv), "--init", str(init_npz), "--layers", "4,4"])
        == 2
    )
    assert re.search(
        r"init\.npz: has L = 2 layers, expected L = 3 for the widths "
        r"n\[0\],...,n\[3\] = 3,4,4,1",
        capsys.readouterr().err,
    )


def test_cli_diverging_run_names_the_epoch_and_writes_nothing(tmp_path, capsys):
    # XOR is not linearly separable, so with the identity activation (a
    # linear network) the cross-entropy's gradient never vanishes and lr 1e6
    # makes the weights grow until the cost is NaN. The quadratic cost does
    # not diverge here: its gradient vanishes as the output sigmoid saturates.
    data = tmp_path / "xor.csv"
    data.write_text("0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    out, history = tmp_path / "p.npz", tmp_path / "h.csv"
    mb.save_params(out, mb.init((2, 4, 4, 1), jax.random.key(3), dtype=F64))
    history.write_text("earlier history\n")
    before = out.read_bytes(), history.read_bytes()
    argv = ["--data", str(data), "--batch-size", "full", "--val-fraction", "0"]
    argv += ["--layers", "4,4", "--activation", "identity", "--lr", "1e6"]
    argv += ["--dtype", "float64", "--epochs", "200"]
    assert run_train([*argv, "--out", str(out), "--history", str(history)]) == 1
    err = capsys.readouterr().err
    assert re.search(
        r"training diverged at epoch 5 of 200: the training cost is nan; .*"
        r"nothing was written",
        err,
    )
    assert (out.read_bytes(), history.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv", "p.npz", "xor.csv"]
