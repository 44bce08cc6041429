"""Tests of the `manual-bp` command line: example, init and grad.

Each command runs in-process through `manual_bp.cli.main` and its printed
output is read with `capsys`; one test runs the installed console script.
Exit status: 0 when the gradients match jax.grad, 1 when they do not, 2 for
bad input. Error messages are matched by regex: the text is part of the
contract.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manual_bp as mb
from manual_bp import _backward, _memory
from manual_bp._example import example_problem
from manual_bp.cli import main

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)

# Every matrix `example` prints for the document's 5-4-3-1 network with
# m = 2, in the document's order, with its dims symbolically and in numbers.
# The labels Y are printed too, after A[0]; the document has no heading
# for them.
DOCUMENT_MATRICES = {
    "A[0]": ("(n[0], m)", (5, 2)),
    "W[1]": ("(n[1], n[0])", (4, 5)),
    "b[1]": ("(n[1], 1)", (4, 1)),
    "W[2]": ("(n[2], n[1])", (3, 4)),
    "b[2]": ("(n[2], 1)", (3, 1)),
    "W[3]": ("(n[3], n[2])", (1, 3)),
    "b[3]": ("(n[3], 1)", (1, 1)),
    "Z[1]": ("(n[1], m)", (4, 2)),
    "A[1]": ("(n[1], m)", (4, 2)),
    "Z[2]": ("(n[2], m)", (3, 2)),
    "A[2]": ("(n[2], m)", (3, 2)),
    "Z[3]": ("(n[3], m)", (1, 2)),
    "A[3]": ("(n[3], m)", (1, 2)),
    "dA[3]": ("(n[3], m)", (1, 2)),
    "delta[3]": ("(n[3], m)", (1, 2)),
    "dW[3]": ("(n[3], n[2])", (1, 3)),
    "db[3]": ("(n[3], 1)", (1, 1)),
    "dA[2]": ("(n[2], m)", (3, 2)),
    "delta[2]": ("(n[2], m)", (3, 2)),
    "dW[2]": ("(n[2], n[1])", (3, 4)),
    "db[2]": ("(n[2], 1)", (3, 1)),
    "dA[1]": ("(n[1], m)", (4, 2)),
    "delta[1]": ("(n[1], m)", (4, 2)),
    "dW[1]": ("(n[1], n[0])", (4, 5)),
    "db[1]": ("(n[1], 1)", (4, 1)),
}

# The network and data set of the `grad` tests: widths 3-2-1, nonzero
# biases, m = 4 examples. All tests share these shapes, so each compiles once.
PARAMS = {
    "W1": np.array([[0.2, -0.4, 0.6], [-0.3, 0.5, 0.1]]),  # (n[1], n[0])
    "b1": np.array([[0.1], [-0.2]]),  # (n[1], 1)
    "W2": np.array([[0.7, -0.8]]),  # (n[2], n[1])
    "b2": np.array([[0.05]]),  # (n[2], 1)
}
CSV_TEXT = """\
x1,x2,x3,y
0.5,-1.0,2.0,1
1.5,0.25,-0.5,0
-2.0,1.0,0.3,1
0.1,-0.75,1.25,0
"""
# The same four examples as columns: X = A[0] is (n[0], m), Y is (1, m).
X = np.array(
    [
        [0.5, 1.5, -2.0, 0.1],
        [-1.0, 0.25, 1.0, -0.75],
        [2.0, -0.5, 0.3, 1.25],
    ]
)
Y = np.array([[1.0, 0.0, 1.0, 0.0]])


def argv(*parts):
    """A command line: text is split at spaces, paths and numbers kept whole."""
    return [w for p in parts for w in (p.split() if isinstance(p, str) else [str(p)])]


def run(capsys, *parts):
    """(exit status, stdout, stderr) of `manual-bp parts...` run in-process."""
    code = main(argv(*parts))
    out, err = capsys.readouterr()
    return code, out, err


def lines_starting(text, prefix):
    return [line for line in text.splitlines() if line.startswith(prefix)]


def write_params(path, **changes):
    """PARAMS as an .npz; a change replaces an array, None removes it."""
    arrays = dict(PARAMS)
    for key, a in changes.items():
        if a is None:
            del arrays[key]
        else:
            arrays[key] = a
    np.savez(path, **arrays)
    return path


def write_data(path, X=X, Y=Y):
    np.savez(path, X=X, Y=Y)
    return path


def write_text(path, text):
    path.write_text(text)
    return path


def problem_as(dtype):
    """(params, X, Y) of the `grad` tests as jax arrays of `dtype`."""
    params = tuple(
        mb.Layer(*(jnp.asarray(PARAMS[f"{k}{l}"], dtype) for k in "Wb")) for l in (1, 2)
    )
    return params, jnp.asarray(X, dtype), jnp.asarray(Y, dtype)


def jax_grad_of_data(dtype, activation="sigmoid"):
    """jax.grad of the cost of PARAMS on X, Y, keyed as `grad` writes it."""
    grads = jax.grad(mb.cost)(*problem_as(dtype), activation)
    return {
        key: np.asarray(a)
        for l, (dW, db) in enumerate(grads, start=1)
        for key, a in ((f"dW{l}", dW), (f"db{l}", db))
    }


def cost_of_data(dtype):
    return float(mb.cost(*problem_as(dtype)))


# example


def test_example_prints_every_matrix_in_document_order_with_dims(capsys):
    code, out, _ = run(capsys, "example")
    assert code == 0
    lines = out.splitlines()
    positions = []
    for name, (dims, shape) in DOCUMENT_MATRICES.items():
        (i,) = [i for i, line in enumerate(lines) if line.startswith(f"{name} = ")]
        assert lines[i].endswith(f"    {dims} = {shape}"), lines[i]
        positions.append(i)
    assert positions == sorted(positions)
    assert lines[-1].startswith("matches jax.grad (float64")


def test_example_heading_shows_equation_and_dims(capsys):
    _, out, _ = run(capsys, "example")
    assert "\nW[1] = weights    (n[1], n[0]) = (4, 5)\n" in out
    assert "\ndb[3] = row sums of delta[3] / m    (n[3], 1) = (1, 1)\n" in out
    assert "\ndW[2] = delta[2] @ A[1].T / m    (n[2], n[1]) = (3, 4)\n" in out


def test_example_same_seed_same_output_other_seed_other_numbers(capsys):
    _, first, _ = run(capsys, "example --seed 0")
    _, again, _ = run(capsys, "example --seed 0")
    _, other, _ = run(capsys, "example --seed 1")
    assert first == again
    assert other.splitlines()[0].endswith("seed 1")
    # Not only the header differs: the numbers of A[0], the first matrix, do.
    assert first.split("A[0] = ")[1][:200] != other.split("A[0] = ")[1][:200]


@pytest.mark.parametrize("seed", [0, 1])
def test_example_json_matrices_and_gradients_of_jax_grad(capsys, seed):
    code, out, _ = run(capsys, "example --json --seed", seed)
    assert code == 0
    report = json.loads(out)
    matrices = [m for m in report["matrices"] if m["name"] != "Y"]
    assert [m["name"] for m in matrices] == list(DOCUMENT_MATRICES)
    for m in matrices:
        dims, shape = DOCUMENT_MATRICES[m["name"]]
        assert (m["dims"], tuple(m["shape"])) == (dims, shape)
        assert np.shape(m["value"]) == shape
    assert report["comparison"]["ok"] is True

    params, X_, Y_ = example_problem(seed)
    expected = jax.grad(mb.cost)(params, X_, Y_)
    values = {m["name"]: np.array(m["value"]) for m in matrices}
    got = tuple((values[f"dW[{l}]"], values[f"db[{l}]"]) for l in (1, 2, 3))
    want = tuple((np.asarray(dW), np.asarray(db)) for dW, db in expected)
    rtol, atol = mb.tolerance(F64)
    chex.assert_trees_all_close(got, want, rtol=rtol, atol=atol, strict=True)


@pytest.mark.parametrize("form", mb.FORMS)
@pytest.mark.parametrize("activation", list(mb.ACTIVATIONS))
def test_example_every_activation_and_form_exits_0(capsys, activation, form):
    code, out, _ = run(capsys, f"example --activation {activation} --form {form}")
    assert code == 0
    assert out.splitlines()[-1].startswith("matches jax.grad (float64")
    assert lines_starting(out, "A[1] = ")[0].startswith(f"A[1] = {activation}(Z[1])")
    assert lines_starting(out, "A[3] = ")[0].startswith("A[3] = sigmoid(Z[3])")


def test_example_width_equal_to_m(capsys):
    # A bias stored flat would broadcast silently here: n[1] = n[2] = m = 2.
    code, out, _ = run(capsys, "example --layers 3,2,2 --m 2")
    assert code == 0
    assert out.splitlines()[-1].startswith("matches jax.grad (float64")
    assert lines_starting(out, "b[1] = ")[0].endswith("(n[1], 1) = (2, 1)")
    assert lines_starting(out, "db[2] = ")[0].endswith("(n[2], 1) = (2, 1)")
    assert lines_starting(out, "Y = ")[0].endswith("(n[L], m) = (2, 2)")


def test_example_document_form_prints_the_product(capsys):
    code, out, _ = run(capsys, "example --form document")
    assert code == 0
    # The output layer's g is the sigmoid; the hidden layers' is the generic g.
    assert lines_starting(out, "delta[3] = ")[0].startswith(
        "delta[3] = dA[3] * sigmoid'(Z[3])    (n[3], m) = (1, 2)"
    )
    assert lines_starting(out, "delta[2] = ")[0].startswith(
        "delta[2] = dA[2] * g'(Z[2])    (n[2], m) = (3, 2)"
    )


def test_example_fused_form_prints_the_simplification(capsys):
    _, out, _ = run(capsys, "example")
    assert lines_starting(out, "delta[3] = ")[0].startswith(
        "delta[3] = A[3] - Y  (dA[3] * sigmoid'(Z[3]) simplified)"
    )


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_example_bad_m_exits_2(capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(argv("example --m", value))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert re.search(
        r"manual-bp example: error: argument --m: expected an integer >= 1, "
        rf"got '{value}'",
        err,
    )


def test_example_seed_beyond_64_bits_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv("example --seed", 2**64))
    assert exit_.value.code == 2


@pytest.fixture
def dW_without_1_over_m(monkeypatch):
    """The library's backward with dW[l] = delta[l] @ A[l-1].T, no 1/m.

    `grad` and `derivation` are jit-compiled and cache their traces, so the
    caches are cleared before (a trace of this shape may exist) and after
    (the wrong trace must not outlive the test).
    """
    original = _backward.linear_backward

    def linear_backward(delta, A_prev, W):
        dA_prev, dW, db = original(delta, A_prev, W)
        return dA_prev, dW * delta.shape[1], db

    jax.clear_caches()
    monkeypatch.setattr(_backward, "linear_backward", linear_backward)
    yield
    monkeypatch.undo()
    jax.clear_caches()


def test_example_wrong_gradient_exits_1_and_names_it(capsys, dW_without_1_over_m):
    # Widths and m used by no other test, so no cached trace is reused.
    code, out, _ = run(capsys, "example --layers 4,3,1 --m 3")
    assert code == 1
    assert out.splitlines()[-1] == (
        "does not match jax.grad (float64): dW[1], dW[2] differ beyond "
        "rtol 1e-12 and atol 1e-14"
    )
    differs = [line.split()[0] for line in out.splitlines() if "<- differs" in line]
    assert differs == ["dW[1]", "dW[2]"]


def test_example_console_script_runs():
    script = Path(sys.executable).parent / "manual-bp"
    done = subprocess.run(
        [str(script), "example"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("matches jax.grad (float64")


# init


@pytest.mark.parametrize("scheme", mb.SCHEMES)
def test_init_writes_the_seeded_parameters_of_the_scheme(tmp_path, capsys, scheme):
    path = tmp_path / "P.npz"
    code, out, _ = run(
        capsys, f"init --layers 3,2,1 --seed 7 --scheme {scheme} --out", path
    )
    assert code == 0
    assert out == f"wrote {path}: widths 3,2,1, {scheme} initialisation\n"
    expected = mb.init((3, 2, 1), jax.random.key(7), scheme, dtype=jnp.float32)
    with np.load(path) as archive:
        assert archive.files == ["W1", "b1", "W2", "b2"]
        got = tuple((archive[f"W{l}"], archive[f"b{l}"]) for l in (1, 2))
    want = tuple((np.asarray(W), np.asarray(b)) for W, b in expected)
    chex.assert_trees_all_close(got, want, rtol=0, atol=0, strict=True)
    assert [a.shape for layer in got for a in layer] == [(2, 3), (2, 1), (1, 2), (1, 1)]


def test_init_dtype_float64(tmp_path, capsys):
    path = tmp_path / "P.npz"
    code, _, _ = run(capsys, "init --layers 5,4,3,1 --dtype float64 --out", path)
    assert code == 0
    with np.load(path) as archive:
        shapes = {key: archive[key].shape for key in archive.files}
        assert {archive[key].dtype for key in archive.files} == {F64}
    assert shapes == {
        "W1": (4, 5),
        "b1": (4, 1),
        "W2": (3, 4),
        "b2": (3, 1),
        "W3": (1, 3),
        "b3": (1, 1),
    }


@pytest.mark.parametrize("value", ["5,x,1", "5", "5,0,1"])
def test_init_bad_layers_exits_2(tmp_path, capsys, value):
    path = tmp_path / "P.npz"
    with pytest.raises(SystemExit) as exit_:
        main(argv("init --layers", value, "--out", path))
    assert exit_.value.code == 2
    assert re.search(
        r"manual-bp init: error: argument --layers: expected n\[0\],n\[1\],"
        rf"\.\.\.,n\[L\]: two or more positive integers, e\.g\. 5,4,3,1; "
        rf"got '{value}'",
        capsys.readouterr().err,
    )
    assert not path.exists()


def test_init_unknown_scheme_exits_2(tmp_path, capsys):
    path = tmp_path / "P.npz"
    with pytest.raises(SystemExit) as exit_:
        main(argv("init --layers 3,2,1 --scheme uniform --out", path))
    assert exit_.value.code == 2
    assert re.search(
        r"argument --scheme: invalid choice: 'uniform'", capsys.readouterr().err
    )
    assert not path.exists()


def test_init_nan_scale_exits_2(tmp_path, capsys):
    path = tmp_path / "P.npz"
    with pytest.raises(SystemExit) as exit_:
        main(argv("init --layers 3,2,1 --scheme normal --scale nan --out", path))
    assert exit_.value.code == 2
    assert not path.exists()


@pytest.mark.parametrize(
    ("scale", "problem"),
    [
        ("1e40", "scale 1e+40 overflows float32: W[1] is not finite"),
        ("1e-50", "scale 1e-50 underflows float32: W[1] is all zero"),
    ],
)
def test_init_scale_outside_the_dtype_exits_2(tmp_path, capsys, scale, problem):
    path = tmp_path / "P.npz"
    flags = f"init --layers 3,4,1 --scheme normal --scale {scale} --dtype float32"
    assert main(argv(flags + " --out", path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("manual-bp init: error: ") and problem in err
    assert "Traceback" not in err
    assert not path.exists()


# grad


@pytest.fixture
def params_file(tmp_path):
    return write_params(tmp_path / "P.npz")


@pytest.fixture
def csv_file(tmp_path):
    return write_text(tmp_path / "D.csv", CSV_TEXT)


@pytest.fixture
def grad_csv(params_file, csv_file):
    """The command line of `grad` on the good parameters and the CSV."""
    return ("grad --params", params_file, "--data", csv_file)


@pytest.mark.parametrize("dtype", ["", "--dtype float64"], ids=["default", "float64"])
@pytest.mark.parametrize("data_format", ["csv", "npz"])
def test_grad_writes_the_gradients_of_jax_grad(
    tmp_path, capsys, params_file, data_format, dtype
):
    if data_format == "csv":
        data = write_text(tmp_path / "D.csv", CSV_TEXT)
    else:
        data = write_data(tmp_path / "D.npz")
    out_path = tmp_path / "G.npz"
    code, _, _ = run(
        capsys, "grad --params", params_file, "--data", data, "--out", out_path, dtype
    )
    assert code == 0
    with np.load(out_path) as archive:
        assert archive.files == ["dW1", "db1", "dW2", "db2"]
        got = {key: archive[key] for key in archive.files}
    expected_dtype = F64 if dtype else F32
    assert {key: (a.shape, a.dtype) for key, a in got.items()} == {
        "dW1": ((2, 3), expected_dtype),
        "db1": ((2, 1), expected_dtype),
        "dW2": ((1, 2), expected_dtype),
        "db2": ((1, 1), expected_dtype),
    }
    rtol, atol = mb.tolerance(expected_dtype)
    want = jax_grad_of_data(expected_dtype)
    chex.assert_trees_all_close(got, want, rtol=rtol, atol=atol, strict=True)


def test_grad_prints_the_cost_and_the_verdict(tmp_path, capsys, grad_csv):
    out_path = tmp_path / "G.npz"
    code, out, err = run(capsys, *grad_csv, "--out", out_path)
    assert code == 0 and err == ""
    (cost_line,) = lines_starting(out, "C = ")
    match = re.fullmatch(r"C = (\S+)  \(cross_entropy cost over m = 4\)", cost_line)
    assert match
    rtol, atol = mb.tolerance(F32)
    assert float(match[1]) == pytest.approx(cost_of_data(F32), rel=rtol, abs=atol)
    assert lines_starting(out, "matches jax.grad (float32, within rtol 1e-05")
    assert out.splitlines()[-1] == f"wrote {out_path}: dW1, db1, dW2, db2"


def test_grad_json_reports_the_cost(capsys, grad_csv):
    code, out, _ = run(capsys, *grad_csv, "--json --dtype float64")
    assert code == 0
    report = json.loads(out)
    rtol, atol = mb.tolerance(F64)
    assert report["cost"] == "cross_entropy"
    assert report["C"] == pytest.approx(cost_of_data(F64), rel=rtol, abs=atol)
    assert (report["m"], report["sizes"], report["out"]) == (4, [3, 2, 1], None)
    assert report["comparison"]["ok"] is True
    assert report["comparison"]["dtype"] == "float64"


def test_grad_relu_document_form_matches_jax_grad(tmp_path, capsys, grad_csv):
    out_path = tmp_path / "G.npz"
    code, out, _ = run(
        capsys, *grad_csv, "--out", out_path, "--activation relu --form document"
    )
    assert code == 0
    assert lines_starting(out, "matches jax.grad (float32")
    with np.load(out_path) as archive:
        got = {key: archive[key] for key in archive.files}
    rtol, atol = mb.tolerance(F32)
    want = jax_grad_of_data(F32, "relu")
    chex.assert_trees_all_close(got, want, rtol=rtol, atol=atol, strict=True)


def test_grad_without_out_writes_nothing(tmp_path, capsys, grad_csv):
    before = sorted(tmp_path.iterdir())
    code, out, _ = run(capsys, *grad_csv)
    assert code == 0
    assert sorted(tmp_path.iterdir()) == before
    assert "wrote" not in out


# grad with bad input: each case writes its files into a directory and
# returns the (params, data) paths to pass; beside it, the message's regex.


def _params_file_missing(d):
    return d / "none.npz", write_text(d / "D.csv", CSV_TEXT)


def _data_file_missing(d):
    return write_params(d / "P.npz"), d / "none.csv"


def _params(d, **changes):
    return write_params(d / "P.npz", **changes), write_text(d / "D.csv", CSV_TEXT)


def _data(d, **arrays):
    return write_params(d / "P.npz"), write_data(d / "D.npz", **arrays)


def _csv(d, text, name="D.csv"):
    return write_params(d / "P.npz"), write_text(d / name, text)


def _pickled(d):
    # np.savez pickles an object array; reading it back would unpickle.
    return write_params(d / "P.npz"), write_data(d / "D.npz", X=X.astype(object))


BAD_GRAD_INPUTS = [
    pytest.param(
        _params_file_missing,
        r"none\.npz: cannot read: No such file or directory",
        id="params-file-missing",
    ),
    pytest.param(
        _data_file_missing,
        r"none\.csv: cannot read: No such file or directory",
        id="data-file-missing",
    ),
    pytest.param(
        lambda d: _params(d, b2=None),
        r"P\.npz: missing b2 \(expected W1, b1, W2, b2 for L = 2 layers\)",
        id="params-missing-b2",
    ),
    pytest.param(
        lambda d: _params(d, c1=np.zeros((2, 1))),
        r"P\.npz: unexpected keys: c1 \(expected W1, b1, W2, b2 for L = 2 layers\)",
        id="params-extra-key",
    ),
    pytest.param(
        lambda d: _params(d, W2=np.ones((1, 3))),
        r"P\.npz: layer 2: W\[2\] has shape \(1, 3\), expected \(n\[2\], n\[1\]\) "
        r"= \(1, 2\), n\[1\] = 2 being the rows of W\[1\]",
        id="W2-does-not-chain",
    ),
    pytest.param(
        lambda d: _params(d, b1=np.zeros(2)),
        r"P\.npz: layer 1: b\[1\] has shape \(2,\), expected \(n\[1\], 1\) = "
        r"\(2, 1\); a flat bias would broadcast along the columns \(examples\), "
        r"so store it as a column: b\.reshape\(-1, 1\)",
        id="flat-bias",
    ),
    pytest.param(
        lambda d: _params(d, W1=np.ones((2, 4))),
        r"P\.npz with \S*D\.csv: layer 1: W\[1\] has shape \(2, 4\), expected "
        r"\(n\[1\], n\[0\]\) = \(2, 3\), n\[0\] = 3 being the rows of A\[0\] \(X\)",
        id="params-n0-not-data-features",
    ),
    pytest.param(
        lambda d: _data(d, Y=Y.T),
        r"D\.npz: Y has shape \(4, 1\), expected \(n\[L\], m\) = \(1, 4\): "
        r"examples go in columns; pass Y\.T",
        id="Y-m-by-1",
    ),
    pytest.param(
        lambda d: _data(d, Y=Y[0]),
        r"D\.npz: Y has shape \(4,\), expected \(n\[L\], m\) = \(1, 4\): "
        r"examples go in columns; pass Y\.reshape\(1, -1\)",
        id="Y-flat",
    ),
    pytest.param(
        lambda d: _data(d, Y=Y[:, :3]),
        r"D\.npz: X has shape \(3, 4\) and Y has shape \(1, 3\): expected the "
        r"same number of examples \(columns\), m = 4 in X but 3 in Y",
        id="X-and-Y-differ-in-m",
    ),
    pytest.param(
        lambda d: _csv(d, CSV_TEXT.replace("-2.0,1.0,0.3,1", "-2.0,1.0,0.3,1.5")),
        r"D\.csv: Y has 1\.5 at \(0, 2\), expected a label in \[0, 1\]",
        id="label-1.5",
    ),
    pytest.param(
        lambda d: _data(d, X=np.where(X == 0.25, np.nan, X)),
        r"D\.npz: X has a NaN at \(1, 1\)",
        id="NaN-in-X",
    ),
    pytest.param(
        lambda d: _data(d, Y=np.array([[1.0, 0.0, np.inf, 0.0]])),
        r"D\.npz: Y has an inf at \(0, 2\)",
        id="inf-in-Y",
    ),
    pytest.param(
        lambda d: _data(d, X=X[:, :0], Y=Y[:, :0]),
        r"D\.npz: X has m = 0 examples: shape \(3, 0\), expected \(n\[0\], m\) "
        r"with m >= 1 columns",
        id="m-0",
    ),
    pytest.param(
        lambda d: _csv(d, CSV_TEXT.replace("1.5,0.25,-0.5,0", "1.5,0.25,0")),
        r"D\.csv: line 3 has 3 cells, expected 4 like line 2, the first data row",
        id="csv-ragged-row",
    ),
    pytest.param(
        lambda d: _csv(d, CSV_TEXT.replace("0.1,-0.75", "0.1,abc")),
        r"D\.csv: line 5, column 2: 'abc' is not a number",
        id="csv-non-numeric-cell",
    ),
    pytest.param(
        lambda d: _csv(d, CSV_TEXT, name="D.txt"),
        r"D\.txt: unknown extension '\.txt'; expected \.npz \(keys X and Y\) or "
        r"\.csv \(one example per row, label last\)",
        id="unknown-extension",
    ),
    pytest.param(
        _pickled,
        r"D\.npz: X cannot be read \(.*\); expected a numeric array, and pickled "
        r"object arrays are never loaded",
        id="pickled-object-array",
    ),
]


@pytest.mark.parametrize("out_exists", [False, True], ids=["no-out", "out-exists"])
@pytest.mark.parametrize(("make_files", "message"), BAD_GRAD_INPUTS)
def test_grad_bad_input_exits_2_and_writes_nothing(
    tmp_path, capsys, make_files, message, out_exists
):
    params, data = make_files(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_path = out_dir / "G.npz"
    if out_exists:
        out_path.write_bytes(b"the gradients of an earlier run")
    code, out, err = run(
        capsys, "grad --params", params, "--data", data, "--out", out_path
    )
    assert code == 2
    assert out == ""
    assert re.search(rf"^manual-bp grad: error: \S*{message}$", err, re.MULTILINE), err
    assert [p.name for p in out_dir.iterdir()] == (["G.npz"] if out_exists else [])
    if out_exists:
        assert out_path.read_bytes() == b"the gradients of an earlier run"


def test_grad_out_in_missing_directory_exits_2(tmp_path, capsys, grad_csv):
    out_path = tmp_path / "missing" / "G.npz"
    code, out, err = run(capsys, *grad_csv, "--out", out_path)
    assert code == 2
    assert out == ""
    assert re.fullmatch(
        rf"manual-bp grad: error: --out {re.escape(str(out_path))}: the "
        rf"directory {re.escape(str(out_path.parent))} does not exist\n",
        err,
    )
    assert not out_path.parent.exists()


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_grad_value_beyond_float32_names_the_dtype(tmp_path, capsys, params_file):
    data = write_text(tmp_path / "D.csv", CSV_TEXT.replace("0.5,-1.0", "1e300,-1.0"))
    code, _, err = run(capsys, "grad --params", params_file, "--data", data)
    assert code == 2
    assert re.search(r"D\.csv: .*float32", err), err


def test_init_scale_with_a_scaled_scheme_exits_2(tmp_path, capsys):
    path = tmp_path / "P.npz"
    code, _, err = run(
        capsys, "init --layers 3,2,1 --scheme he --scale 0.5 --out", path
    )
    assert code == 2
    assert re.search(r"--scale sets the normal scheme's standard deviation", err)
    assert not path.exists()


# check


def test_check_random_network_exits_0_and_prints_every_quantity(capsys):
    code, out, _ = run(
        capsys, "check --layers 5,4,3,1 --activation tanh --dtype float64 --m 8"
    )
    assert code == 0
    assert out.startswith("network 5-4-3-1, m = 8, tanh hidden, cross_entropy cost")
    for name in ("Z[1]", "A[3]", "dA[3]", "delta[2]", "dW[1]", "db[1]", "dA[0]"):
        assert re.search(rf"^{re.escape(name)} ", out, re.M), name
    assert out.rstrip().endswith(
        "ok: every quantity of the derivation agrees with autodiff and finite "
        "differences"
    )


def test_check_names_where_an_injected_mistake_first_shows(capsys):
    # n[1] = m = 3 makes layer 2 the only one where delta[2] @ A[1] has
    # dW[2]'s shape, so the missing transpose first shows in dW[2].
    code, out, _ = run(
        capsys, "check --layers 5,3,4,1 --m 3 --mistake missing_transpose_dW"
    )
    assert code == 1
    assert out.startswith("with the mistake missing_transpose_dW: ")
    assert re.search(r"^FAIL: dW\[2\] differs: max abs error ", out, re.M)


def test_check_json_on_files(tmp_path, capsys, params_file):
    data = write_text(tmp_path / "D.csv", CSV_TEXT)
    code, out, _ = run(
        capsys, "check --json --fd all --params", params_file, "--data", data
    )
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert report["m"] == 4 and report["first_divergence"] is None
    assert report["mistake"] is None
    assert all(e["ok"] or e["kink"] for e in report["finite_differences"])


def test_check_params_without_data_exits_2(capsys, params_file):
    code, out, err = run(capsys, "check --params", params_file)
    assert (code, out) == (2, "")
    assert "manual-bp check: error: --params and --data go together" in err


# Options of check's random network given with --params and --data, and
# the start of the message naming them ("applies" for one, "apply" for more).
RANDOM_NETWORK_OPTIONS = [
    pytest.param("--layers 9,9,9", "--layers applies", "it", id="layers"),
    pytest.param("--m 3", "--m applies", "it", id="m"),
    pytest.param("--layers 3,2,1 --m 4", "--layers and --m apply", "them", id="both"),
    pytest.param(
        "--layers 3,2,1 --m 4 --seed 1 --fd all",
        "--layers, --m and --seed apply",
        "them",
        id="seed-fd-all",
    ),
]


@pytest.mark.parametrize(("options", "names", "pronoun"), RANDOM_NETWORK_OPTIONS)
def test_check_refuses_random_network_options_with_files(
    tmp_path, capsys, params_file, csv_file, options, names, pronoun
):
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(
        capsys, "check --params", params_file, "--data", csv_file, options
    )
    assert code == 2 and out == ""
    seed_too = " (--seed also picks the entries of --fd sample)"
    assert err == (
        f"manual-bp check: error: {names} only without --params and --data, "
        f"which give the network and the data{seed_too if 'seed' in options else ''}"
        f"; leave {pronoun} out\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_check_seed_with_files_picks_the_sampled_entries(capsys, params_file, csv_file):
    # With --fd sample the seed still chooses which entries are perturbed, so
    # it is accepted with files and changes the sampled indices.
    def sampled(seed):
        code, out, _ = run(
            capsys,
            "check --json --params",
            params_file,
            "--data",
            csv_file,
            "--fd-samples 2 --seed",
            seed,
        )
        assert code == 0
        return [e["index"] for e in json.loads(out)["finite_differences"]]

    assert sampled(1) != sampled(2)


def test_check_unknown_mistake_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv("check --mistake off_by_two"))
    assert exit_.value.code == 2
    assert "invalid choice: 'off_by_two'" in capsys.readouterr().err


# example --format, draw


@pytest.mark.parametrize(
    ("fmt", "start"), [("latex", "\\documentclass"), ("markdown", "#")]
)
def test_example_format_renders_the_document(capsys, fmt, start):
    code, out, _ = run(capsys, f"example --format {fmt}")
    assert code == 0
    assert out.startswith(start)
    assert "delta" in out and "dW" in out


def test_example_format_refuses_a_network_too_large_to_print(capsys):
    code, out, err = run(capsys, "example --m 13 --format markdown")
    assert (code, out) == (2, "")
    assert re.search(r"manual-bp example: error: .*m = 13.*at most 12", err)


def test_example_format_and_json_exclude_each_other(capsys):
    code, _, err = run(capsys, "example --json --format latex")
    assert code == 2 and "exclude each other" in err


def test_draw_writes_a_png(tmp_path, capsys):
    path = tmp_path / "net.png"
    code, out, _ = run(capsys, "draw --layers 5,4,3,1 --out", path)
    assert code == 0 and out == f"wrote {path}: the 5-4-3-1 network\n"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grad_out_on_an_input_exits_2_and_keeps_the_input(
    tmp_path, capsys, params_file
):
    before = params_file.read_bytes()
    data = write_text(tmp_path / "D.csv", CSV_TEXT)
    code, _, err = run(
        capsys, "grad --params", params_file, "--data", data, "--out", params_file
    )
    assert code == 2 and "the same file as --params" in err
    assert params_file.read_bytes() == before


def test_init_empty_out_exits_2(capsys):
    code, _, err = run(capsys, "init --layers 3,1 --out=")
    assert code == 2 and "--out: the path is empty" in err


def test_grad_npz_member_that_is_not_an_array_exits_2(tmp_path, capsys):
    import zipfile

    junk = tmp_path / "junk.npz"
    with zipfile.ZipFile(junk, "w") as archive:
        archive.writestr("W1.npy", b"garbage")
        archive.writestr("b1.npy", b"garbage")
    data = write_text(tmp_path / "D.csv", CSV_TEXT)
    code, _, err = run(capsys, "grad --params", junk, "--data", data)
    assert code == 2 and "W[1] cannot be read" in err


def test_check_says_when_a_mistake_changes_nothing(capsys):
    # 5-4-3-1 with m = 8 has no layer with n[l-1] = m: no square product
    # where the missing transpose would type-check.
    code, out, _ = run(capsys, "check --mistake missing_transpose_dW")
    assert code == 0
    assert out.splitlines()[1].startswith(
        "note: missing_transpose_dW changes nothing on this network"
    )


def test_draw_without_matplotlib_says_both_ways_to_install(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    code, out, err = run(capsys, "draw --out", tmp_path / "net.png")
    assert code == 2 and out == ""
    assert err == (
        "manual-bp draw: error: draw needs matplotlib, which is not installed: "
        "pip install 'manual_bp[plot]', or pip install -e '.[plot]' in a clone\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_draw_refuses_an_out_that_is_not_png(tmp_path, capsys):
    code, _, err = run(capsys, "draw --out", tmp_path / "net.pdf")
    assert code == 2 and "draw writes a PNG; name it .png" in err


# outputs that are not regular files


def _snapshot(directory):
    """Every entry under `directory` with its kind and content, to compare."""
    return {
        str(p.relative_to(directory)): (
            "link"
            if p.is_symlink()
            else "dir"
            if p.is_dir()
            else "fifo"
            if p.is_fifo()
            else p.read_bytes()
        )
        for p in sorted(directory.rglob("*"))
    }


# Each output that exists and is not a regular file, and the kind the
# message names; `init` and `grad` refuse it before any work.
NOT_REGULAR = [
    pytest.param(
        lambda d: (os.mkfifo(d / "fifo.npz"), "fifo.npz")[1], "a FIFO", id="fifo"
    ),
    pytest.param(
        lambda d: ((d / "sub.npz").mkdir(), "sub.npz")[1], "a directory", id="directory"
    ),
    pytest.param(
        lambda d: ((d / "sub").mkdir(), "sub/")[1], "a directory", id="trailing-slash"
    ),
    pytest.param(lambda d: ".", "a directory", id="dot"),
    pytest.param(lambda d: "..", "a directory", id="dot-dot"),
    pytest.param(lambda d: "/", "a directory", id="root"),
]


@pytest.mark.parametrize("command", ["init --layers 3,1", "grad"])
@pytest.mark.parametrize(("make", "kind"), NOT_REGULAR)
def test_out_that_is_not_a_regular_file_exits_2_and_changes_nothing(
    tmp_path, capsys, monkeypatch, params_file, csv_file, command, make, kind
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    out = make(work)
    command = (
        ("grad --params", params_file, "--data", csv_file)
        if command == "grad"
        else (command,)
    )
    before = _snapshot(tmp_path)
    code, stdout, err = run(capsys, *command, "--out", out)
    assert code == 2 and stdout == ""
    assert err == (
        f"manual-bp {argv(*command)[0]}: error: --out {out}: exists and is not "
        f"a regular file ({kind})\n"
    )
    assert _snapshot(tmp_path) == before


def test_draw_out_through_a_symbolic_link_draws_into_the_target(tmp_path, capsys):
    link = tmp_path / "link.png"
    link.symlink_to("net.png")  # dangling until drawn
    code, _, _ = run(capsys, "draw --out", link)
    assert code == 0 and link.is_symlink()
    assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_out_ending_in_a_slash_that_does_not_exist_exits_2(tmp_path, capsys):
    out = f"{tmp_path / 'new'}/"
    code, _, err = run(capsys, "init --layers 3,1 --out", out)
    assert code == 2
    assert err == (
        f"manual-bp init: error: --out {out}: names a directory, not a file; "
        "give a file name\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_out_under_a_file_says_it_is_not_a_directory(tmp_path, capsys, csv_file):
    out = csv_file / "x.npz"
    code, _, err = run(capsys, "init --layers 3,1 --out", out)
    assert code == 2
    assert err == f"manual-bp init: error: --out {out}: {csv_file} is not a directory\n"
    assert csv_file.read_text() == CSV_TEXT


@pytest.mark.parametrize("command", ["init --layers 3,1", "grad"])
def test_out_through_a_symbolic_link_writes_the_target_and_keeps_the_link(
    tmp_path, capsys, params_file, csv_file, command
):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.npz"
    target.write_bytes(b"an earlier file")
    link = tmp_path / "link.npz"
    link.symlink_to(Path("real") / "target.npz")
    command = (
        ("grad --params", params_file, "--data", csv_file)
        if command == "grad"
        else (command,)
    )
    code, _, _ = run(capsys, *command, "--out", link)
    assert code == 0
    assert link.is_symlink() and os.readlink(link) == str(Path("real/target.npz"))
    with np.load(target) as archive:  # the target now holds the new arrays
        assert archive.files[-1] in ("b1", "db2")
    # Only the target was replaced: no temporary file is left beside it.
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["target.npz"]


@pytest.mark.parametrize(
    ("command", "flag", "link_name", "target_name", "writes"),
    [
        (
            "init --layers 3,1",
            "--out",
            "link.npz",
            "h.csv",
            "init writes an .npz archive",
        ),
        ("train --epochs 1", "--history", "link.csv", "p.npz", "train writes CSV"),
    ],
    ids=["npz-link-to-csv", "csv-link-to-npz"],
)
def test_a_link_whose_target_has_another_suffix_is_refused(
    tmp_path, capsys, command, flag, link_name, target_name, writes
):
    # Written through, the link would overwrite its target with content of
    # another kind: an .npz file turned into CSV, or the other way round.
    target = tmp_path / target_name
    target.write_bytes(b"an earlier file")
    link = tmp_path / link_name
    link.symlink_to(target)
    code, _, err = run(capsys, *command.split(), flag, link)
    assert code == 2
    assert (
        f"{flag} {link}: a link to {target}; {writes}, and writing through the "
        "link would overwrite that file"
    ) in err
    assert target.read_bytes() == b"an earlier file"


# Each output named with a suffix other than what is written there; the
# message follows draw's "draw writes a PNG; name it .png".
WRONG_SUFFIX = [
    pytest.param(
        "init --layers 3,1",
        "--out",
        "P.csv",
        "init writes an .npz archive",
        ".npz",
        id="init",
    ),
    pytest.param(
        "grad", "--out", "G.csv", "grad writes an .npz archive", ".npz", id="grad"
    ),
    pytest.param(
        "train --epochs 1",
        "--out",
        "P.txt",
        "train writes an .npz archive",
        ".npz",
        id="train-out",
    ),
    pytest.param(
        "train --epochs 1",
        "--history",
        "H.npz",
        "train writes CSV",
        ".csv",
        id="train-history",
    ),
]


@pytest.mark.parametrize(("command", "flag", "name", "writes", "suffix"), WRONG_SUFFIX)
def test_output_named_for_another_format_exits_2_and_writes_nothing(
    tmp_path, capsys, params_file, csv_file, command, flag, name, writes, suffix
):
    if command == "grad":
        command = ("grad --params", params_file, "--data", csv_file)
    elif command.startswith("train"):
        command = (command, "--data", csv_file)
    else:
        command = (command,)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / name
    code, stdout, err = run(capsys, *command, flag, out)
    assert code == 2 and stdout == ""
    assert err == (
        f"manual-bp {argv(*command)[0]}: error: {flag} {out}: {writes}; name it "
        f"{suffix}\n"
    )
    assert list(out_dir.iterdir()) == []


def test_output_suffix_is_matched_in_any_case(tmp_path, capsys):
    out = tmp_path / "P.NPZ"
    code, _, _ = run(capsys, "init --layers 3,1 --out", out)
    assert code == 0 and out.exists()


# memory: the guard before any array is made, and XLA running out anyway


@pytest.fixture
def one_megabyte(monkeypatch):
    """A machine with 1.0 MB available: a 500-wide layer no longer fits."""
    monkeypatch.setattr(_memory, "available_memory", lambda: 1_000_000)


# Each subcommand that builds a network, on one too large for 1.0 MB, with
# the estimate worked out by hand (see manual_bp._memory.memory_needed):
# P = 500 (5 + 1) + 500 (500 + 1) + 1 (500 + 1) = 254001 for 5,500,500,1.
TOO_LARGE = [
    pytest.param(
        "init --layers 5,500,500,1",
        # 2P * 4 bytes = 2032008; W[2] 500 * 500 * 4 = 1000000.
        "--layers 5,500,500,1 needs about 2.0 MB (W[2] alone is (500, 500) = "
        "1.0 MB in float32); this machine has 1.0 MB available; use smaller "
        "widths (--layers)",
        id="init",
    ),
    pytest.param(
        "example --layers 5,500,500,1",
        # (2P + 4 * 1006 * 2) * 8 = (508002 + 8048) * 8 = 4128400.
        "--layers 5,500,500,1 with --m 2 needs about 4.1 MB (W[2] alone is "
        "(500, 500) = 2.0 MB in float64); this machine has 1.0 MB available; "
        "use smaller widths (--layers) or a smaller --m",
        id="example",
    ),
    pytest.param(
        "example --layers 5,4,3,1 --m 100000",
        # (2 * 43 + 4 * 13 * 100000) * 8 = 41600688; A[0] 5 * 100000 * 8.
        "--layers 5,4,3,1 with --m 100000 needs about 41.6 MB (A[0] alone is "
        "(5, 100000) = 4.0 MB in float64); this machine has 1.0 MB available; "
        "use smaller widths (--layers) or a smaller --m",
        id="example-m",
    ),
    pytest.param(
        "check --layers 5,500,500,1 --fd none",
        # (2P + 4 * 1006 * 8) * 8 = (508002 + 32192) * 8 = 4321552.
        "--layers 5,500,500,1 with --m 8 needs about 4.3 MB (W[2] alone is "
        "(500, 500) = 2.0 MB in float64); this machine has 1.0 MB available; "
        "use smaller widths (--layers) or a smaller --m",
        id="check",
    ),
    pytest.param(
        "check --layers 5,500,500,1",
        # 4321552 + finite differences of 8 + 8 + 8 + 8 + 8 + 1 = 41 entries,
        # each 2 passes of 1001 * 8 float64s and 6 copies of the P = 254001
        # float64 parameters: 41 * (16016 + 1524006) * 8 = 505127216.
        "--layers 5,500,500,1 with --m 8 needs about 509.4 MB (W[2] alone is "
        "(500, 500) = 2.0 MB in float64, the finite differences 505.1 MB); this "
        "machine has 1.0 MB available; use smaller widths (--layers) or a "
        "smaller --m, or --fd none",
        id="check-fd",
    ),
    pytest.param(
        "train --layers 500,500",
        # Widths 30,500,500,1 on the 569 built-in examples: P = 500 * 31 +
        # 500 * 501 + 501 = 266501; (2P + 4 * 1031 * 569) * 4 = 11518232.
        # A[1] (500, 569) has more entries than W[2] (500, 500).
        "widths 30,500,500,1 (n[0] and n[3] from breast-cancer) on m = 569 "
        "examples needs about 11.5 MB (A[1] alone is (500, 569) = 1.1 MB in "
        "float32); this machine has 1.0 MB available; use smaller hidden "
        "widths (--layers) or fewer examples",
        id="train",
    ),
]


@pytest.mark.parametrize(("command", "message"), TOO_LARGE)
def test_a_network_too_large_for_memory_exits_2_and_writes_nothing(
    tmp_path, capsys, one_megabyte, command, message
):
    name = command.split()[0]
    outputs = {"init": "--out P.npz", "train": "--out P.npz --history H.csv"}
    out_args = [tmp_path / w if "." in w else w for w in argv(outputs.get(name, ""))]
    code, out, err = run(capsys, command, *out_args)
    assert code == 2
    assert out == ""
    assert err == f"manual-bp {name}: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["grad", "check"])
def test_files_too_large_for_memory_exit_2_and_write_nothing(
    tmp_path, capsys, monkeypatch, params_file, csv_file, command
):
    # Widths 3,2,1 on m = 4: P = 2 (3 + 1) + 1 (2 + 1) = 11 and (3 + 2 + 1)
    # * 4 = 24 activation entries: grad (float32) (22 + 4 * 24) * 4 = 472
    # bytes; check (float64) (22 + 96) * 8 = 944, plus finite differences of
    # 6 + 2 + 2 + 1 = 11 entries, each 2 passes of (2 + 1) * 4 float64s and
    # 6 copies of the 11 parameters: 11 * (24 + 66) * 8 = 7920: 8864.
    monkeypatch.setattr(_memory, "available_memory", lambda: 400)
    out_path = tmp_path / "out" / "G.npz"
    out_path.parent.mkdir()
    out = ["--out", out_path] if command == "grad" else []
    code, stdout, err = run(
        capsys, command, "--params", params_file, "--data", csv_file, *out
    )
    assert code == 2
    assert stdout == ""
    start = f"manual-bp {command}: error: {params_file} with {csv_file} (widths "
    if command == "grad":
        assert err == (
            f"{start}3,2,1, m = 4) needs about 472 bytes (A[0] alone is (3, 4) = "
            "48 bytes in float32); this machine has 400 bytes available; use "
            "smaller widths or fewer examples\n"
        )
    else:
        assert err == (
            f"{start}3,2,1, m = 4) needs about 8.9 kB (A[0] alone is (3, 4) = "
            "96 bytes in float64, the finite differences 7.9 kB); this machine "
            "has 400 bytes available; use smaller widths or fewer examples, or "
            "--fd none\n"
        )
    assert list(out_path.parent.iterdir()) == []


def test_draw_makes_no_arrays_so_is_not_refused(tmp_path, capsys, one_megabyte):
    # 80 GB of parameters, drawn in a few nodes per column.
    path = tmp_path / "net.png"
    code, _, err = run(capsys, "draw --layers 5,100000,100000,1 --out", path)
    assert (code, err) == (0, "")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_guard_when_memory_cannot_be_read(tmp_path, capsys, monkeypatch):
    # The network refused on 1.0 MB above runs when memory is unknown.
    monkeypatch.setattr(_memory, "available_memory", lambda: None)
    path = tmp_path / "P.npz"
    code, _, err = run(capsys, "init --layers 5,500,500,1 --out", path)
    assert (code, err) == (0, "")
    with np.load(path) as archive:
        assert archive["W2"].shape == (500, 500)


XLA_OOM = "RESOURCE_EXHAUSTED: Out of memory allocating 40000000000 bytes."

# Each subcommand, a function it calls that is made to run out of memory,
# and what the message advises to make smaller.
RUNS_OUT = [
    pytest.param(
        "init --layers 3,2,1",
        "manual_bp.cli.init",
        "use smaller widths (--layers)",
        id="init",
    ),
    pytest.param(
        "example",
        "manual_bp.cli.example_problem",
        "use smaller widths (--layers) or a smaller --m",
        id="example",
    ),
    pytest.param(
        "check",
        "manual_bp.cli.check",
        "use smaller widths (--layers) or a smaller --m, or --fd none",
        id="check",
    ),
    pytest.param(
        "grad",
        "manual_bp.cli.value_and_grad",
        "use smaller widths or fewer examples",
        id="grad",
    ),
    pytest.param(
        "train --layers 4",
        "manual_bp._cli_train.train",
        "use smaller hidden widths (--layers) or fewer examples",
        id="train",
    ),
]


def _raise(error):
    def raises(*args, **kwargs):
        raise error

    return raises


@pytest.mark.parametrize(("command", "target", "advice"), RUNS_OUT)
def test_xla_out_of_memory_is_one_line_and_exit_2(
    tmp_path, capsys, monkeypatch, params_file, csv_file, command, target, advice
):
    monkeypatch.setattr(target, _raise(jax.errors.JaxRuntimeError(XLA_OOM)))
    out_path = tmp_path / "out.npz"
    name = command.split()[0]
    extra = {
        "init": ["--out", out_path],
        "grad": ["--params", params_file, "--data", csv_file, "--out", out_path],
        "train": ["--data", csv_file, "--out", out_path],
    }.get(name, [])
    code, _, err = run(capsys, command, *extra)
    assert code == 2
    assert err == (
        f"manual-bp {name}: error: out of memory (XLA: RESOURCE_EXHAUSTED: Out "
        f"of memory allocating 40000000000 bytes); {advice}\n"
    )
    assert not out_path.exists()


def test_numpy_out_of_memory_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    text = "Unable to allocate 37.3 GiB for an array with shape (100000, 100000)"
    monkeypatch.setattr("manual_bp.cli.init", _raise(MemoryError(text)))
    code, _, err = run(capsys, "init --layers 3,2,1 --out", tmp_path / "P.npz")
    assert code == 2
    assert err == (
        f"manual-bp init: error: out of memory ({text}); use smaller widths "
        "(--layers)\n"
    )


def test_other_xla_errors_keep_their_traceback(tmp_path, monkeypatch):
    error = jax.errors.JaxRuntimeError("INTERNAL: something else went wrong")
    monkeypatch.setattr("manual_bp.cli.init", _raise(error))
    with pytest.raises(jax.errors.JaxRuntimeError, match="something else"):
        main(argv("init --layers 3,2,1 --out", tmp_path / "P.npz"))


def help_text(capsys, command):
    """The --help of a subcommand, lines joined so a phrase is not split."""
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_check_help_says_fd_all_runs_two_passes_per_parameter(capsys):
    assert (
        "all runs 2 P forward passes for the P parameters, so it is slow for "
        "large networks" in help_text(capsys, "check")
    )


@pytest.mark.parametrize("command", ["draw", "train"])
def test_help_gives_both_ways_to_install_matplotlib(capsys, command):
    assert (
        "pip install 'manual_bp[plot]', or pip install -e '.[plot]' in a clone"
        in help_text(capsys, command)
    )


def option_help(capsys, command, flag):
    """The help of one option of a subcommand, lines joined."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    options = capsys.readouterr().out.split("\noptions:\n")[1]
    # Each option's entry starts at an indent of two spaces with its flag.
    entries = re.split(r"\n(?=  -)", options)
    (entry,) = [e for e in entries if e.split()[0].rstrip(",") == flag]
    return " ".join(entry.split())


# The defaults of the parser (example and check run in float64 to compare
# with jax.grad closely; the others in float32).
DEFAULTS_IN_HELP = [
    ("example", "--seed", "0"),
    ("example", "--dtype", "float64"),
    ("init", "--seed", "0"),
    ("init", "--scheme", "xavier"),
    ("init", "--dtype", "float32"),
    ("grad", "--dtype", "float32"),
    ("check", "--seed", "0"),
    ("check", "--dtype", "float64"),
    ("train", "--seed", "0"),
    ("train", "--cost", "cross_entropy"),
    ("train", "--dtype", "float32"),
]


@pytest.mark.parametrize(("command", "flag", "default"), DEFAULTS_IN_HELP)
def test_help_shows_the_default(capsys, command, flag, default):
    text = option_help(capsys, command, flag)
    assert text.endswith(f"(default: {default})"), text
