"""The hand-written gradients against jax.grad of the same cost."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from problems import assert_close, problem

import manual_bp as mb

DOCUMENT_SIZES = (5, 4, 3, 1)  # the worked example's network, m = 2
MODES = ["jit", "eager"]  # eager runs the same code under jax.disable_jit()
DTYPES = {"float64": jnp.float64, "float32": jnp.float32}


def independent_cost(params, X, Y, g, cost="cross_entropy"):
    """The same cost written again with jax.nn, as an independent reference."""
    A = X
    for l, (W, b) in enumerate(params, start=1):
        Z = W @ A + b
        A = g(Z) if l < len(params) else Z
    m = X.shape[1]
    if cost == "quadratic":
        return 0.5 * jnp.sum(jnp.square(jax.nn.sigmoid(A) - Y)) / m
    log_a, log_1_minus_a = jax.nn.log_sigmoid(A), jax.nn.log_sigmoid(-A)
    return -jnp.sum(Y * log_a + (1 - Y) * log_1_minus_a) / m


REFERENCE_G = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "identity": lambda z: z,
}


# jax.grad of the library's cost and of the independent one, each compiled
# once per shape like mb.grad.
reference_grad = jax.jit(jax.grad(mb.cost), static_argnums=(3, 4))
independent_grad = jax.jit(jax.grad(independent_cost), static_argnums=(3, 4))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cost", mb.COSTS)
@pytest.mark.parametrize("form", mb.FORMS)
@pytest.mark.parametrize("activation", mb.ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_grad_document_network_equals_jax_grad(activation, form, cost, mode, dtype):
    params, X, Y = problem(DOCUMENT_SIZES, m=2, dtype=dtype)
    with jax.disable_jit(mode == "eager"):
        manual = mb.grad(params, X, Y, activation, form, cost)
    assert_close(manual, reference_grad(params, X, Y, activation, cost), dtype)
    g = REFERENCE_G[activation]
    assert_close(manual, independent_grad(params, X, Y, g, cost), dtype)


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 64), min_size=2, max_size=7),
    m=st.integers(1, 64),
    activation=st.sampled_from(sorted(mb.ACTIVATIONS)),
    form=st.sampled_from(mb.FORMS),
    cost=st.sampled_from(mb.COSTS),
    seed=st.integers(0, 2**16),
)
def test_grad_random_architectures_equal_jax_grad(
    sizes, m, activation, form, cost, seed
):
    params, X, Y = problem(sizes, m, seed=seed)
    manual = mb.grad(params, X, Y, activation, form, cost)
    expected = reference_grad(params, X, Y, activation, cost)
    assert_close(manual, expected, jnp.float64)


def test_grad_width_equal_to_m_equals_jax_grad():
    # n[1] = n[3] = m = 2: a bias broadcast along the wrong axis, or a missing
    # transpose, would still have the right shapes here.
    params, X, Y = problem((3, 2, 4, 2), m=2)
    assert_close(
        mb.grad(params, X, Y),
        reference_grad(params, X, Y, "sigmoid", "cross_entropy"),
        jnp.float64,
    )


def test_grad_several_outputs_equals_jax_grad():
    params, X, Y = problem((6, 5, 3), m=7)
    assert_close(
        mb.grad(params, X, Y),
        reference_grad(params, X, Y, "sigmoid", "cross_entropy"),
        jnp.float64,
    )


def test_value_and_grad_equals_jax_value_and_grad():
    params, X, Y = problem(DOCUMENT_SIZES, m=2)
    for cost in mb.COSTS:
        C, grads = mb.value_and_grad(params, X, Y, "tanh", cost=cost)
        C_ref, grads_ref = jax.value_and_grad(mb.cost)(params, X, Y, "tanh", cost)
        assert_close((C, grads), (C_ref, grads_ref), jnp.float64)


def test_derivation_holds_every_quantity_in_the_documents_shapes():
    params, X, Y = problem(DOCUMENT_SIZES, m=2)
    d = mb.derivation(params, X, Y)
    n, m = DOCUMENT_SIZES, 2
    assert d.Z[0] is None and d.delta[0] is None and d.dW[0] is None
    assert d.A[0].shape == d.dA[0].shape == (n[0], m)
    for l in range(1, 4):
        for name in ("Z", "A", "dA", "delta"):
            assert getattr(d, name)[l].shape == (n[l], m), (name, l)
        assert d.dW[l].shape == (n[l], n[l - 1])
        assert d.db[l].shape == (n[l], 1)
    grads = mb.grad(params, X, Y)
    chex.assert_trees_all_equal(
        tuple(mb.Layer(d.dW[l], d.db[l]) for l in (1, 2, 3)), grads
    )


def test_derivation_dA_L_is_the_documents_expression():
    params, X, Y = problem(DOCUMENT_SIZES, m=2)
    d = mb.derivation(params, X, Y)
    A = d.A[3]
    # NOTES.md slip 1: the sign before Y / A[L] is minus.
    np.testing.assert_allclose(d.dA[3], -Y / A + (1 - Y) / (1 - A), rtol=1e-15)


def test_derivation_dA_0_equals_jax_grad_with_respect_to_X():
    params, X, Y = problem(DOCUMENT_SIZES, m=2)
    d = mb.derivation(params, X, Y)
    # dA[0] is per example: the averaged cost's gradient times m.
    dX = jax.grad(mb.cost, argnums=1)(params, X, Y)
    assert_close(d.dA[0], 2 * dX, jnp.float64)


@pytest.mark.parametrize("form", mb.FORMS)
def test_grad_casts_inputs_to_the_parameters_dtype(form):
    params, X, Y = problem(DOCUMENT_SIZES, m=2, dtype=jnp.float32)
    grads = mb.grad(params, X.astype(jnp.float64), Y.astype(jnp.int32), form=form)
    chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)


def test_grad_inside_users_jit_equals_direct_call():
    params, X, Y = problem(DOCUMENT_SIZES, m=2)

    @jax.jit
    def step(params, X, Y):
        grads = mb.grad(params, X, Y, "relu")
        return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

    expected = jax.tree.map(
        lambda p, g: p - 0.1 * g, params, mb.grad(params, X, Y, "relu")
    )
    assert_close(step(params, X, Y), expected, jnp.float64)


def test_grad_vmapped_over_batches_equals_loop():
    params, _, _ = problem(DOCUMENT_SIZES, m=2)
    kx, ky = jax.random.split(jax.random.key(7))
    X = jax.random.normal(kx, (4, 5, 3), jnp.float64)  # B = 4 batches, m = 3
    Y = jax.random.bernoulli(ky, 0.5, (4, 1, 3)).astype(jnp.float64)
    batched = jax.vmap(mb.grad, in_axes=(None, 0, 0))(params, X, Y)
    for i in range(4):
        one = jax.tree.map(lambda g, i=i: g[i], batched)
        assert_close(
            one,
            reference_grad(params, X[i], Y[i], "sigmoid", "cross_entropy"),
            jnp.float64,
        )


@pytest.mark.parametrize("z", [30.0, 100.0, -30.0, -100.0], ids=lambda z: f"Z={z:g}")
@pytest.mark.parametrize("label", [0.0, 1.0], ids=["y=0", "y=1"])
def test_grad_fused_form_is_finite_and_exact_when_sigmoid_saturates(z, label):
    # float32 sigmoid rounds to exactly 1 for z >= ~17 and to a subnormal or
    # 0 near -88 and below: the cost and its gradient must still be right.
    params, X, _ = problem((3, 2, 1), m=2, dtype=jnp.float32)
    W3 = jnp.zeros((1, 2), jnp.float32)
    params = (params[0], mb.Layer(W3, jnp.full((1, 1), z, jnp.float32)))
    Y = jnp.full((1, 2), label, jnp.float32)
    C, grads = mb.value_and_grad(params, X, Y)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves((C, grads)))
    reference = jax.value_and_grad(independent_cost)(params, X, Y, jax.nn.sigmoid)
    assert_close((C, grads), reference, jnp.float32)


@pytest.mark.parametrize("label", [0.0, 1.0], ids=["y=0", "y=1"])
def test_grad_document_form_is_nan_once_sigmoid_rounds_to_one(label):
    # A[L] = sigmoid(100) is exactly 1.0 in float32, so dA[L] divides by
    # 1 - A[L] = 0 (y=0) or gives 0/0 (y=1), and delta[L] = dA[L] * 0 is nan.
    # This is the documented reason the fused form is the default.
    params, X, _ = problem((3, 2, 1), m=2, dtype=jnp.float32)
    W3 = jnp.zeros((1, 2), jnp.float32)
    params = (params[0], mb.Layer(W3, jnp.full((1, 1), 100.0, jnp.float32)))
    Y = jnp.full((1, 2), label, jnp.float32)
    d = mb.derivation(params, X, Y, form="document")
    assert float(d.A[2][0, 0]) == 1.0
    assert bool(jnp.all(jnp.isnan(d.delta[2])))
    assert bool(jnp.all(jnp.isnan(d.db[2])))


def test_grad_calls_no_autodiff(monkeypatch):
    """The gradient path must not reach any autodiff entry point."""

    def refuse(*args, **kwargs):
        raise AssertionError("manual_bp.grad called an autodiff entry point")

    for name in ("grad", "vjp", "value_and_grad", "jacrev", "jacfwd", "linearize"):
        monkeypatch.setattr(jax, name, refuse)
    # Shapes used nowhere else in the suite, so the functions are traced anew.
    params, X, Y = problem((7, 6, 5, 1), m=11)
    grads = mb.grad(params, X, Y, "tanh", "document")
    _C, _ = mb.value_and_grad(params, X, Y, "tanh", "document")
    mb.derivation(params, X, Y, "tanh", "document")
    monkeypatch.undo()
    assert_close(
        grads, reference_grad(params, X, Y, "tanh", "cross_entropy"), jnp.float64
    )


def test_sgd_step_refuses_grads_whose_shapes_differ_from_the_parameters():
    # A transposed dW[3] would broadcast W[3] (1, 3) into (3, 3), and a flat
    # db[1] (4,) would turn b[1] (4, 1) into (4, 4), without the check.
    params, X, Y = problem((5, 4, 3, 1), m=2)
    grads = list(mb.grad(params, X, Y))
    grads[2] = mb.Layer(grads[2].W.T, grads[2].b)
    grads[0] = mb.Layer(grads[0].W, grads[0].b.ravel())
    expected = (
        r"dW\[3\] has shape \(3, 1\), expected \(1, 3\), the shape of W\[3\]"
        r"|db\[1\] has shape \(4,\), expected \(4, 1\), the shape of b\[1\]"
    )
    with pytest.raises(ValueError, match=expected) as err:
        mb.sgd_step(params, tuple(grads), 0.1)
    # Every mismatch is listed, in layer order.
    assert str(err.value).splitlines() == [
        "db[1] has shape (4,), expected (4, 1), the shape of b[1]",
        "dW[3] has shape (3, 1), expected (1, 3), the shape of W[3]",
    ]
    with pytest.raises(
        ValueError, match=r"grads has L = 2 layer\(s\), params has L = 3"
    ):
        mb.sgd_step(params, tuple(grads[:2]), 0.1)


@pytest.mark.parametrize(
    ("dtype", "finite_at", "nan_at"),
    [(jnp.float32, -88.0, -89.0), (jnp.float64, -709.0, -710.0)],
    ids=["float32", "float64"],
)
def test_document_form_breaks_where_the_readme_says_on_the_negative_side(
    dtype, finite_at, nan_at
):
    # The README: the document form gives NaN once A[L] underflows, Z[L]
    # below about -88 (float32) or -709 (float64), with Y = 1: Y / A[L]
    # overflows (exp(88.7) and exp(709.8) are the dtypes' largest). The
    # fused form stays finite at both.
    W, X, Y = jnp.zeros((1, 1), dtype), jnp.ones((1, 1), dtype), jnp.ones((1, 1), dtype)
    for z, finite in ((finite_at, True), (nan_at, False)):
        params = (mb.Layer(W, jnp.full((1, 1), z, dtype)),)
        document = jax.tree.leaves(mb.grad(params, X, Y, form="document"))
        fused = jax.tree.leaves(mb.grad(params, X, Y))
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in document) is finite
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in fused)


def test_sgd_step_accepts_gradients_in_another_accepted_layout():
    # Layers as (W, b) pairs or {"W", "b"} dicts are all accepted layouts;
    # the result keeps the parameters' own.
    params, X, Y = problem((5, 4, 3, 1), m=2)
    grads = mb.grad(params, X, Y)
    expected = mb.sgd_step(params, grads, 0.5)
    for other in ([(g.W, g.b) for g in grads], [{"W": g.W, "b": g.b} for g in grads]):
        chex.assert_trees_all_equal(mb.sgd_step(params, other, 0.5), expected)


def test_sgd_step_refuses_integer_parameters_and_complex_gradients():
    # Cast back to int32 the update would mostly vanish; cast back to a real
    # dtype a complex gradient would lose its imaginary part.
    params, X, Y = problem((3, 2, 1), m=2)
    grads = mb.grad(params, X, Y)
    as_int = [(W.astype(jnp.int32), b) for W, b in params]
    with pytest.raises(ValueError, match=r"layer 1: W\[1\] has dtype int32, expected"):
        mb.sgd_step(as_int, grads, 0.1)
    as_complex = [(g.W.astype(jnp.complex128), g.b) for g in grads]
    with pytest.raises(
        ValueError, match=r"dW\[1\] has dtype complex128, expected a real"
    ):
        mb.sgd_step(params, as_complex, 0.1)


@pytest.mark.parametrize(
    ("learning_rate", "got"),
    [(None, "NoneType"), (True, "bool"), ("0.1", "str")],
    ids=str,
)
def test_sgd_step_refuses_a_learning_rate_that_is_not_a_number(learning_rate, got):
    params, X, Y = problem((3, 2, 1), m=2)
    with pytest.raises(
        ValueError, match=rf"learning_rate must be a real number, got {got}"
    ):
        mb.sgd_step(params, mb.grad(params, X, Y), learning_rate)


@pytest.mark.parametrize("learning_rate", [np.nan, np.inf, -np.inf], ids=str)
def test_sgd_step_refuses_a_learning_rate_that_is_not_finite(learning_rate):
    params, X, Y = problem((3, 2, 1), m=2)
    with pytest.raises(ValueError, match=r"^learning_rate must be finite, got"):
        mb.sgd_step(params, mb.grad(params, X, Y), learning_rate)


def test_sgd_step_takes_a_negative_learning_rate_as_a_step_up_the_gradient():
    params, X, Y = problem((3, 2, 1), m=2)
    grads = mb.grad(params, X, Y)
    up = mb.sgd_step(params, grads, -0.5)
    expected = jax.tree.map(lambda p, g: p + 0.5 * g, params, grads)
    # p - (-0.5) g and p + 0.5 g round the same way: equal to the last bit.
    chex.assert_trees_all_equal(up, expected)


@pytest.mark.parametrize("name", ["X", "Y"])
def test_grad_refuses_complex_data_instead_of_dropping_the_imaginary_part(name):
    params, X, Y = problem((3, 2, 1), m=2)
    data = {"X": X, "Y": Y}
    data[name] = data[name].astype(jnp.complex128)
    label = "A[0] (X)" if name == "X" else "Y"
    with pytest.raises(ValueError) as err:
        mb.grad(params, data["X"], data["Y"])
    assert str(err.value) == (
        f"{label} has dtype complex128, expected real numbers: the imaginary "
        "parts would be dropped in the cast to the parameters' dtype"
    )


def test_grad_takes_integer_data_and_boolean_labels_as_their_values():
    params, X, Y = problem((3, 2, 1), m=2)
    X_int = jnp.round(X * 3).astype(jnp.int32)
    expected = mb.grad(params, X_int.astype(X.dtype), Y)
    chex.assert_trees_all_equal(mb.grad(params, X_int, Y.astype(bool)), expected)
