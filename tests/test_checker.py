"""check(): the derivation against autodiff of its intermediates and finite
differences."""

import itertools
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import run_python

import manual_bp as mb

SIZES = (5, 3, 4, 2)  # widths all differ; n[1] = m = 3
M = 3


def problem(sizes=SIZES, m=M, dtype=jnp.float64, seed=0):
    rng = np.random.default_rng(seed)
    params = tuple(
        mb.Layer(
            jnp.asarray(rng.normal(size=(n, n_prev)), dtype),
            jnp.asarray(rng.normal(size=(n, 1)), dtype),
        )
        for n_prev, n in itertools.pairwise(sizes)
    )
    X = jnp.asarray(rng.normal(size=(sizes[0], m)), dtype)
    Y = jnp.asarray(rng.integers(0, 2, size=(sizes[-1], m)), dtype)
    return params, X, Y


@pytest.mark.parametrize("form", mb.FORMS)
@pytest.mark.parametrize("cost", mb.COSTS)
@pytest.mark.parametrize("activation", mb.ACTIVATIONS)
def test_check_passes_the_clean_derivation(activation, cost, form):
    params, X, Y = problem()
    report = mb.check(params, X, Y, activation, cost, form)
    assert report.ok, str(report)
    assert report.first_divergence is None
    names = [r.name for r in report.rows]
    assert names[:6] == ["Z[1]", "A[1]", "Z[2]", "A[2]", "Z[3]", "A[3]"]
    assert names[6:10] == ["dA[3]", "delta[3]", "dW[3]", "db[3]"]
    assert names[-1] == "dA[0]" and len(names) == 6 + 4 * 3 + 1
    assert len(report.finite_differences) > 0


def test_check_passes_in_float32_with_float32_tolerances():
    params, X, Y = problem(dtype=jnp.float32)
    report = mb.check(params, X, Y, "tanh")
    assert report.ok, str(report)
    assert report.settings["rtol"] == mb.tolerance(jnp.float32)[0]


def test_autodiff_derivation_agrees_with_jax_grad_of_params_and_X():
    params, X, Y = problem()
    reference = mb.autodiff_derivation(params, X, Y, "tanh", "cross_entropy")
    grads = jax.grad(mb.cost)(params, X, Y, "tanh")
    rtol, atol = mb.tolerance(jnp.float64)
    chex.assert_trees_all_close(
        tuple(mb.Layer(reference.dW[l], reference.db[l]) for l in (1, 2, 3)),
        grads,
        rtol=rtol,
        atol=atol,
    )
    # dA[0] is per example: m times the averaged cost's gradient.
    dX = jax.grad(mb.cost, argnums=1)(params, X, Y, "tanh")
    np.testing.assert_allclose(reference.dA[0], M * dX, rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    ("quantity", "layer"), [("delta", 2), ("dA", 1), ("Z", 2), ("db", 3)]
)
def test_check_names_the_first_quantity_that_differs(quantity, layer):
    params, X, Y = problem()
    d = mb.derivation(params, X, Y)
    wrong = list(getattr(d, quantity))
    wrong[layer] = wrong[layer].at[1, 0].add(0.25)
    d = d._replace(**{quantity: tuple(wrong)})

    report = mb.check(params, X, Y, hand_written=d, fd="none")

    name = f"{quantity}[{layer}]"
    assert not report.ok
    assert report.first_divergence.name == name
    assert report.first_divergence.worst == (1, 0)
    assert report.verdict.startswith(f"{name} differs: max abs error 2.500e-01")
    assert f"{name:10}" in str(report) and "<- differs" in str(report)


def test_check_reports_a_shape_that_differs():
    params, X, Y = problem()
    d = mb.derivation(params, X, Y)
    db = list(d.db)
    db[3] = jnp.sum(d.delta[3], axis=0, keepdims=True)  # (1, m), not (n[3], 1)
    report = mb.check(params, X, Y, hand_written=d._replace(db=tuple(db)), fd="none")
    assert report.verdict == "db[3] differs: shape (1, 3), expected (2, 1)"


def test_check_finite_differences_flag_a_wrong_gradient():
    params, X, Y = problem()
    d = mb.derivation(params, X, Y)
    dW = list(d.dW)
    dW[1] = dW[1] * 1.001  # 0.1% off: beyond fd_rtol 1e-6, invisible to the eye
    report = mb.check(params, X, Y, hand_written=d._replace(dW=tuple(dW)), fd="all")
    assert {e.name for e in report.fd_failures} == {"W[1]"}
    assert len(report.fd_failures) == 5 * 3  # every entry of W[1]


def test_check_fd_sample_checks_that_many_entries_of_each_array():
    params, X, Y = problem()
    report = mb.check(params, X, Y, fd="sample", fd_samples=4)
    counts = {}
    for e in report.finite_differences:
        counts[e.name] = counts.get(e.name, 0) + 1
    # min(4, size) entries of each W[l] and b[l]
    assert counts == {"W[1]": 4, "b[1]": 3, "W[2]": 4, "b[2]": 4, "W[3]": 4, "b[3]": 2}


def test_check_flags_a_kink_instead_of_a_failure():
    params, X, Y = problem()
    # Row 0 of W[1] and b[1] zero: Z[1][0, :] is exactly 0, on relu's kink,
    # where a central difference of W[1][0, j] straddles slopes 0 and 1.
    W1 = params[0].W.at[0].set(0.0)
    b1 = params[0].b.at[0].set(0.0)
    params = (mb.Layer(W1, b1), *params[1:])
    report = mb.check(params, X, Y, "relu", fd="all")
    kinks = [e for e in report.finite_differences if e.kink]
    assert {(e.name, e.index[0]) for e in kinks} >= {("W[1]", 0), ("b[1]", 0)}
    assert report.ok, str(report)  # autodiff agrees; kinks are not failures
    assert "skipped: the step crosses a relu kink" in str(report)


def test_check_document_form_diverges_at_delta_L_when_the_sigmoid_saturates():
    params, X, Y = problem(dtype=jnp.float32)
    W3 = jnp.zeros_like(params[2].W)
    b3 = jnp.full_like(params[2].b, 100.0)  # sigmoid(100) is 1.0 in float32
    params = (*params[:2], mb.Layer(W3, b3))
    Y = jnp.zeros_like(Y)
    assert mb.check(params, X, Y, form="fused", fd="none").ok
    report = mb.check(params, X, Y, form="document", fd="none")
    assert report.first_divergence.name == "delta[3]"


def test_report_to_dict_is_json():
    params, X, Y = problem()
    data = json.loads(json.dumps(mb.check(params, X, Y).to_dict()))
    assert data["ok"] is True and data["first_divergence"] is None
    assert data["rows"][0]["name"] == "Z[1]"
    assert data["sizes"] == list(SIZES)


def test_check_refuses_an_unknown_fd_choice():
    params, X, Y = problem()
    with pytest.raises(ValueError, match=r"unknown fd 'some'; expected one of: "):
        mb.check(params, X, Y, fd="some")


def test_finite_differences_in_float64_need_x64():
    code = (
        "import numpy as np, manual_bp as mb\n"
        "p = mb.init((2, 1), __import__('jax').random.key(0))\n"
        "mb.finite_differences(p, np.ones((2, 1)), np.ones((1, 1)), p)\n"
    )
    run = run_python(code)
    assert run.returncode != 0
    assert "finite differences in float64 need jax_enable_x64" in run.stderr
    assert "fd_dtype=np.float32 for check" in run.stderr


def test_the_float32_advice_without_x64_works_as_written():
    # Both spellings the message gives must be accepted as it says.
    code = (
        "import numpy as np, jax, manual_bp as mb\n"
        "p = mb.init((2, 1), jax.random.key(0))\n"
        "X, Y = np.ones((2, 1)), np.ones((1, 1))\n"
        "print(mb.check(p, X, Y, fd_dtype=np.float32).ok)\n"
        "print(len(mb.finite_differences(p, X, Y, p, dtype=np.float32)))\n"
    )
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "3"]  # W[1] (1, 2) and b[1] (1, 1)


@pytest.mark.parametrize("samples", [0, -1, 2.5, True])
def test_check_refuses_fd_samples_below_one_or_not_an_integer(samples):
    params, X, Y = problem()
    with pytest.raises(
        ValueError, match=r"fd_samples must be a positive integer, got "
    ):
        mb.check(params, X, Y, fd_samples=samples)


def test_check_refuses_gradients_in_place_of_a_derivation():
    params, X, Y = problem()
    with pytest.raises(
        ValueError, match=r"hand_written must be a Derivation .* got tuple"
    ):
        mb.check(params, X, Y, hand_written=mb.grad(params, X, Y))


def test_check_reports_a_derivation_of_another_width_row_by_row():
    params, X, Y = problem(sizes=(5, 3, 1), m=2)
    other, _, _ = problem(sizes=(5, 2, 1), m=2)
    report = mb.check(params, X, Y, hand_written=mb.derivation(other, X, Y))
    # n[1] = 3 here, 2 in the derivation: the first quantity off is Z[1],
    # by its shape.
    assert report.verdict == "Z[1] differs: shape (2, 2), expected (3, 2)"
    rows = {r.name: r for r in report.rows}
    assert (rows["dW[1]"].shape, rows["dW[1]"].expected_shape) == ((2, 5), (3, 5))
    assert not report.ok and report.fd_failures


def test_check_refuses_a_derivation_of_another_depth():
    params, X, Y = problem(sizes=(5, 3, 1), m=2)
    deeper, _, _ = problem(sizes=(5, 3, 2, 1), m=2)
    with pytest.raises(ValueError) as err:
        mb.check(params, X, Y, hand_written=mb.derivation(deeper, X, Y))
    assert str(err.value) == (
        "hand_written is a derivation of another network: A has 4 entries, "
        "Z has 4 entries, dA has 4 entries, delta has 4 entries, dW has 4 "
        "entries, db has 4 entries; expected L + 1 = 3 (l = 0..2) for the "
        "widths n[0],...,n[2] = 5,3,1"
    )


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True], ids=str)
def test_check_refuses_a_seed_numpy_cannot_take(seed):
    params, X, Y = problem()
    with pytest.raises(ValueError, match=r"^seed must be a non-negative integer, got"):
        mb.check(params, X, Y, seed=seed)


def test_compare_refuses_gradients_of_fewer_layers():
    params, X, Y = problem(sizes=(5, 4, 3, 1))
    grads = mb.grad(params, X, Y)
    with pytest.raises(ValueError) as err:
        mb.compare(params, X, Y, grads=grads[:2])
    assert str(err.value) == "grads has L = 2 layer(s), params has L = 3"


def test_compare_names_a_gradient_of_the_wrong_shape():
    params, X, Y = problem(sizes=(5, 4, 3, 1))
    (dW1, db1), *rest = mb.grad(params, X, Y)
    with pytest.raises(ValueError) as err:
        mb.compare(params, X, Y, grads=((dW1.T, db1), *rest))
    assert str(err.value) == (
        "dW[1] has shape (5, 4), expected (4, 5), the shape of W[1]"
    )
