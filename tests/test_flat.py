"""The flat fast path: pack, unpack and flat_grad against manual_bp.grad."""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import assert_close, problem

import manual_bp as mb
from manual_bp import _flat
from manual_bp._flat import flat_grad, flat_sgd_step, flat_size, pack, unpack

DOCUMENT_SIZES = (5, 4, 3, 1)  # the worked example's network, m = 2
DOCUMENT_P = 43  # 4 * (5 + 1) + 3 * (4 + 1) + 1 * (3 + 1)
DTYPES = {"float64": jnp.float64, "float32": jnp.float32}
CASES = list(itertools.product(mb.ACTIVATIONS, mb.FORMS, mb.COSTS))
SHAPES = {  # sizes, m
    "width-equals-m": ((3, 2, 4, 2), 2),  # a missing transpose keeps its shapes
    "one-layer": ((4, 1), 3),
    "several-outputs": ((6, 5, 3), 7),
}


reference_grad = jax.jit(jax.grad(mb.cost), static_argnums=(3, 4))


def test_flat_size_counts_every_W_and_b_entry():
    assert flat_size(DOCUMENT_SIZES) == DOCUMENT_P
    assert flat_size([784, 128, 64, 1]) == 128 * 785 + 64 * 129 + 65


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_pack_lays_out_W1_b1_W2_b2_row_by_row(dtype):
    params, _, _ = problem(DOCUMENT_SIZES, m=2, dtype=dtype)
    flat = pack(params)
    expected = np.concatenate([np.ravel(a) for W, b in params for a in (W, b)])
    assert flat.shape == (DOCUMENT_P,) and flat.dtype == dtype
    np.testing.assert_array_equal(flat, expected)
    W2 = np.asarray(params[1].W)
    assert flat[24 + 1] == W2[0, 1]  # W[2] starts after W[1] (20) and b[1] (4)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_unpack_round_trip_gives_the_documents_shapes(dtype):
    params, _, _ = problem(DOCUMENT_SIZES, m=2, dtype=dtype)
    layers = unpack(pack(params), list(DOCUMENT_SIZES))
    n = DOCUMENT_SIZES
    for l, layer in enumerate(layers, start=1):
        assert isinstance(layer, mb.Layer)
        assert layer.W.shape == (n[l], n[l - 1]) and layer.b.shape == (n[l], 1)
    chex.assert_trees_all_equal(layers, params, strict=True)


def test_pack_accepts_pairs_and_dicts_like_grad():
    params, _, _ = problem(DOCUMENT_SIZES, m=2)
    pairs = [(W, b) for W, b in params]
    dicts = [{"W": W, "b": b} for W, b in params]
    chex.assert_trees_all_equal(pack(pairs), pack(dicts), pack(params))


def test_pack_reports_every_shape_mismatch():
    params, _, _ = problem(DOCUMENT_SIZES, m=2)
    bad = (params[0], mb.Layer(params[1].W.T, params[1].b), mb.Layer(*params[2]))
    with pytest.raises(ValueError, match=r"layer 2: W\[2\] has shape \(4, 3\)"):
        pack(bad)


@functools.cache
def every_case(dtype):
    """flat_grad and manual_bp.grad of each case of CASES, one compiled program.

    One program per case would compile 40 times; this compiles once per
    dtype. Maps (activation, form, cost) to (flat_grad's buffer,
    manual_bp.grad's tree) on the document's network.
    """
    params, X, Y = problem(DOCUMENT_SIZES, m=2, dtype=dtype)

    @jax.jit
    def both(params, X, Y):
        flat = pack(params)
        return {
            (a, f, c): (
                flat_grad(flat, X, Y, DOCUMENT_SIZES, a, f, c),
                mb.grad(params, X, Y, a, f, c),
            )
            for a, f, c in CASES
        }

    return both(params, X, Y)


@pytest.mark.parametrize(
    ("activation", "form", "cost"), CASES, ids=["-".join(c) for c in CASES]
)
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_flat_grad_equals_grad_document_network(activation, form, cost, dtype):
    flat, by_grad = every_case(dtype)[activation, form, cost]
    assert flat.shape == (DOCUMENT_P,) and flat.dtype == dtype
    assert_close(unpack(flat, DOCUMENT_SIZES), by_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_flat_grad_called_directly_equals_jax_grad(dtype):
    params, X, Y = problem(DOCUMENT_SIZES, m=2, dtype=dtype)
    flat = flat_grad(pack(params), X, Y, DOCUMENT_SIZES, "tanh")
    expected = reference_grad(params, X, Y, "tanh", "cross_entropy")
    assert_close(flat, pack(expected), dtype)


@pytest.mark.parametrize(("sizes", "m"), SHAPES.values(), ids=SHAPES.keys())
def test_flat_grad_equals_grad_other_shapes(sizes, m):
    params, X, Y = problem(sizes, m)
    flat = flat_grad(pack(params), X, Y, sizes)
    assert_close(unpack(flat, sizes), mb.grad(params, X, Y), jnp.float64)


def test_flat_grad_equals_grad_large_products():
    # Products above _ONE_THREAD_MAX_PRODUCT take the two-thread compilation.
    sizes, m = (256, 64, 1), 128
    assert not _flat._one_thread(sizes, m)
    params, X, Y = problem(sizes, m, jnp.float32)
    flat = flat_grad(pack(params), X, Y, sizes)
    assert_close(flat, pack(mb.grad(params, X, Y)), jnp.float32)


def batches(B, m, seed):
    """The document's packed parameters and B stacked batches X (B, 5, m), Y."""
    params, _, _ = problem(DOCUMENT_SIZES, m=2)
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.normal(size=(B, 5, m)))
    Y = jnp.asarray(rng.integers(0, 2, size=(B, 1, m)), jnp.float64)
    return pack(params), X, Y


def test_flat_grad_inside_users_jit_and_vmap_equals_direct_call():
    flat, X, Y = batches(B=4, m=3, seed=3)

    @jax.jit
    def step(flat, X, Y):
        return flat - 0.1 * flat_grad(flat, X, Y, DOCUMENT_SIZES)

    batched = jax.vmap(flat_grad, in_axes=(None, 0, 0, None))
    grads = batched(flat, X, Y, DOCUMENT_SIZES)
    for i in range(4):
        direct = flat_grad(flat, X[i], Y[i], DOCUMENT_SIZES)
        assert_close(grads[i], direct, jnp.float64)
        assert_close(step(flat, X[i], Y[i]), flat - 0.1 * direct, jnp.float64)


@pytest.mark.parametrize("length", [DOCUMENT_P - 1, DOCUMENT_P + 4])
def test_flat_grad_rejects_wrong_length_naming_P(length):
    _, X, Y = problem(DOCUMENT_SIZES, m=2)
    expected = (
        rf"flat has shape \({length},\), expected \(P,\) = \(43,\) for sizes "
        r"\(5, 4, 3, 1\), P being the sum over l of n\[l\] \* \(n\[l-1\] \+ 1\)"
    )
    with pytest.raises(ValueError, match=expected):
        flat_grad(jnp.zeros(length), X, Y, DOCUMENT_SIZES)
    with pytest.raises(ValueError, match=expected):
        unpack(jnp.zeros(length), DOCUMENT_SIZES)


def test_flat_grad_rejects_a_column_instead_of_a_vector():
    _, X, Y = problem(DOCUMENT_SIZES, m=2)
    with pytest.raises(ValueError, match=r"flat has shape \(43, 1\), expected"):
        flat_grad(jnp.zeros((DOCUMENT_P, 1)), X, Y, DOCUMENT_SIZES)


def test_flat_grad_rejects_integer_flat():
    _, X, Y = problem(DOCUMENT_SIZES, m=2)
    with pytest.raises(ValueError) as err:
        flat_grad(jnp.zeros(DOCUMENT_P, jnp.int32), X, Y, DOCUMENT_SIZES)
    # No hint about half precision: this is not a float at all.
    assert str(err.value) == "flat has dtype int32, expected float32 or float64"


def test_flat_grad_rejects_half_precision_flat_with_the_cast_to_use():
    _, X, Y = problem(DOCUMENT_SIZES, m=2)
    with pytest.raises(ValueError) as err:
        flat_grad(jnp.zeros(DOCUMENT_P, jnp.float16), X, Y, DOCUMENT_SIZES)
    assert str(err.value) == (
        "flat has dtype float16, expected float32 or float64 (half precision "
        "is not supported: cast with .astype(jnp.float32))"
    )


@pytest.mark.parametrize("sizes", [(5,), (5, 0, 1), (5, 2.0, 1), 5], ids=str)
def test_flat_grad_rejects_bad_sizes(sizes):
    _, X, Y = problem(DOCUMENT_SIZES, m=2)
    with pytest.raises(ValueError, match=r"sizes must be \(n\[0\], \.\.\., n\[L\]\)"):
        flat_grad(jnp.zeros(DOCUMENT_P), X, Y, sizes)
    with pytest.raises(ValueError, match=r"sizes must be"):
        flat_size(sizes)


def test_flat_grad_names_X_that_does_not_chain_with_sizes():
    params, _, Y = problem(DOCUMENT_SIZES, m=2)
    X = jnp.zeros((6, 2))
    with pytest.raises(ValueError, match=r"n\[0\] = 6 being the rows of A\[0\]"):
        flat_grad(pack(params), X, Y, DOCUMENT_SIZES)


def test_flat_grad_and_step_call_no_autodiff(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("flat_grad called an autodiff entry point")

    for name in ("grad", "vjp", "value_and_grad", "jacrev", "jacfwd", "linearize"):
        monkeypatch.setattr(jax, name, refuse)
    # Shapes used nowhere else in the suite, so the function is traced anew.
    params, X, Y = problem((7, 6, 5, 1), m=9)
    flat = flat_grad(pack(params), X, Y, (7, 6, 5, 1), "tanh", "document")
    stepped = flat_sgd_step(pack(params), X, Y, (7, 6, 5, 1), 0.5, "tanh", "document")
    monkeypatch.undo()
    expected = reference_grad(params, X, Y, "tanh", "cross_entropy")
    assert_close(unpack(flat, (7, 6, 5, 1)), expected, jnp.float64)
    assert_close(stepped, pack(mb.sgd_step(params, expected, 0.5)), jnp.float64)


def test_flat_grad_compiles_once_for_repeated_shapes():
    sizes, m = (5, 3, 2, 1), 4  # shapes used nowhere else in the suite
    compiled = _flat._flat_grad_one_thread
    before = compiled._cache_size()
    for seed, given in enumerate([sizes, list(sizes), tuple(map(np.int64, sizes))]):
        params, X, Y = problem(sizes, m, seed=seed)
        flat_grad(pack(params), X, Y, given)
    assert compiled._cache_size() == before + 1


def test_grad_compiles_once_for_repeated_shapes():
    sizes, m = (5, 3, 2, 2), 4  # shapes used nowhere else in the suite
    before = mb.grad._cache_size()
    for seed in range(3):
        params, X, Y = problem(sizes, m, seed=seed)
        mb.grad(params, X, Y)
    assert mb.grad._cache_size() == before + 1


def test_flat_and_grad_computations_trace_once_for_repeated_shapes():
    # chex counts the traces of the undecorated computations, jitted as the
    # library jits them; a third trace would raise AssertionError.
    flat_traced = jax.jit(
        chex.assert_max_traces(_flat._flat_grad, n=1), static_argnums=(3, 4, 5, 6)
    )
    grad_traced = jax.jit(
        chex.assert_max_traces(mb.grad.__wrapped__, n=1),
        static_argnames=("activation", "form", "cost"),
    )
    sizes, m = DOCUMENT_SIZES, 2
    for seed in range(3):
        params, X, Y = problem(sizes, m, seed=seed)
        if seed == 2:  # NumPy inputs of the same shapes and dtypes
            X, Y = np.asarray(X), np.asarray(Y)
        flat_traced(pack(params), X, Y, sizes, "sigmoid", "fused", "cross_entropy")
        grad_traced(params, X, Y)
    chex.clear_trace_counter()


@pytest.mark.parametrize(
    ("sizes", "m"),
    [(DOCUMENT_SIZES, 2), ((128, 64, 64, 1), 256)],
    ids=["document", "medium"],
)
@pytest.mark.parametrize("form", mb.FORMS)
def test_grad_temporary_memory_at_most_jax_grads(sizes, m, form):
    # XLA's memory analysis of the compiled programs: a compile-time number,
    # the same on every run with the same jaxlib.
    params, X, Y = problem(sizes, m, jnp.float32)
    ours = mb.grad.lower(params, X, Y, form=form).compile()
    theirs = reference_grad.lower(params, X, Y, "sigmoid", "cross_entropy").compile()
    ours_bytes = ours.memory_analysis().temp_size_in_bytes
    assert ours_bytes <= theirs.memory_analysis().temp_size_in_bytes


# flat_sgd_step: one call for W[l] -= lr dW[l], b[l] -= lr db[l].


@pytest.mark.parametrize("donate", [False, True], ids=["kept", "donated"])
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_flat_sgd_step_equals_sgd_step_of_jax_grad(dtype, donate):
    params, X, Y = problem(DOCUMENT_SIZES, m=2, dtype=dtype)
    expected = pack(
        mb.sgd_step(params, reference_grad(params, X, Y, "tanh", "cross_entropy"), 0.5)
    )
    got = flat_sgd_step(pack(params), X, Y, DOCUMENT_SIZES, 0.5, "tanh", donate=donate)
    assert got.dtype == dtype
    assert_close(got, expected, dtype)


def test_flat_sgd_step_equals_flat_grad_update_on_large_products():
    sizes, m = (256, 64, 1), 128  # the two-thread compilation
    assert not _flat._one_thread(sizes, m)
    params, X, Y = problem(sizes, m)
    flat = pack(params)
    expected = flat - 0.25 * flat_grad(flat, X, Y, sizes, "relu", "document")
    got = flat_sgd_step(flat, X, Y, sizes, 0.25, "relu", "document")
    assert_close(got, expected, jnp.float64)


def test_flat_sgd_step_donated_deletes_the_input_and_kept_does_not():
    params, X, Y = problem(DOCUMENT_SIZES, m=2)
    kept = pack(params)
    flat_sgd_step(kept, X, Y, DOCUMENT_SIZES, 0.1)
    assert not kept.is_deleted()
    donated = pack(params)
    new = flat_sgd_step(donated, X, Y, DOCUMENT_SIZES, 0.1, donate=True)
    assert donated.is_deleted()
    assert_close(new, flat_sgd_step(kept, X, Y, DOCUMENT_SIZES, 0.1), jnp.float64)


def test_flat_sgd_step_bad_input_raises_before_donating():
    params, _, Y = problem(DOCUMENT_SIZES, m=2)
    flat = pack(params)
    with pytest.raises(ValueError, match=r"n\[0\] = 6 being the rows of A\[0\]"):
        flat_sgd_step(flat, jnp.zeros((6, 2)), Y, DOCUMENT_SIZES, 0.1, donate=True)
    assert not flat.is_deleted()
    with pytest.raises(ValueError, match=r"flat has shape \(42,\), expected"):
        flat_sgd_step(flat[:42], jnp.zeros((5, 2)), Y, DOCUMENT_SIZES, 0.1)


def test_flat_sgd_step_training_loop_matches_grad_training_loop():
    # Thirty steps with a decaying learning rate; neither path calls
    # autodiff, and the rate is traced, so the step compiles once.
    sizes, m = (3, 4, 1), 5  # shapes used nowhere else in the suite
    params, X, Y = problem(sizes, m)
    flat = pack(params)
    compiled = _flat._flat_sgd_steps[True][1]
    before = compiled._cache_size()
    for k in range(30):
        lr = 1.0 / (1 + k)
        params = mb.sgd_step(params, mb.grad(params, X, Y), lr)
        flat = flat_sgd_step(flat, X, Y, list(sizes), lr, donate=True)
    assert compiled._cache_size() == before + 1
    assert_close(flat, pack(params), jnp.float64)


def test_flat_sgd_step_inside_users_jit_and_vmap():
    flat, X, Y = batches(B=3, m=2, seed=5)
    batched = jax.jit(
        jax.vmap(
            lambda x, y: flat_sgd_step(flat, x, y, DOCUMENT_SIZES, 0.3, donate=True)
        )
    )
    steps = batched(X, Y)
    assert not flat.is_deleted()  # the outer compilation decides: nothing donated
    for i in range(3):
        assert_close(
            steps[i],
            flat - 0.3 * flat_grad(flat, X[i], Y[i], DOCUMENT_SIZES),
            jnp.float64,
        )


@pytest.mark.parametrize("sizes", [(5.0, 4, 3, 1), (True, True)], ids=str)
def test_flat_paths_refuse_non_integer_sizes_after_a_call_with_integers(sizes):
    # (5.0, 4, 3, 1) == (5, 4, 3, 1) and hashes alike: a cached compilation
    # must not let it through once the integer sizes have been used.
    params, X, Y = problem(DOCUMENT_SIZES, m=2)
    flat = pack(params)
    flat_grad(flat, X, Y, DOCUMENT_SIZES)
    flat_sgd_step(flat, X, Y, DOCUMENT_SIZES, 0.1)
    flat_grad(pack(problem((1, 1), m=2)[0]), X[:1], Y, (1, 1))
    with pytest.raises(ValueError, match=r"every n\[l\] a positive integer"):
        flat_grad(flat, X, Y, sizes)
    with pytest.raises(ValueError, match=r"every n\[l\] a positive integer"):
        flat_sgd_step(flat, X, Y, sizes, 0.1)


@pytest.mark.parametrize(
    ("learning_rate", "message"),
    [
        (
            jnp.ones((DOCUMENT_P, 1)),
            r"learning_rate must be a scalar, got an array "
            r"of shape \(43, 1\)",
        ),
        (jnp.ones(1), r"learning_rate must be a scalar, got an array of shape \(1,\)"),
        (0.1 + 0.2j, r"^learning_rate must be a real number, got complex$"),
        (jnp.array(0.1 + 0.2j), r"learning_rate must be a real number, got complex128"),
        # A string or None never reaches jax.jit, which has its own words.
        ("0.1", r"^learning_rate must be a real number, got str$"),
        (None, r"^learning_rate must be a real number, got NoneType$"),
        (float("nan"), r"^learning_rate must be finite, got nan$"),
        (jnp.inf, r"^learning_rate must be finite, got inf$"),
    ],
    ids=[
        "column",
        "length-1",
        "complex",
        "complex array",
        "string",
        "None",
        "nan",
        "inf",
    ],
)
def test_flat_sgd_step_refuses_a_learning_rate_that_is_not_one_real_number(
    learning_rate, message
):
    params, X, Y = problem(DOCUMENT_SIZES, m=2)
    flat = pack(params)
    with pytest.raises(ValueError, match=message):
        flat_sgd_step(flat, X, Y, DOCUMENT_SIZES, learning_rate, donate=True)
    assert not flat.is_deleted()
    with pytest.raises(ValueError, match=message):
        mb.sgd_step(params, mb.grad(params, X, Y), learning_rate)


def test_flat_grad_says_a_list_is_not_an_array():
    params, X, Y = problem(DOCUMENT_SIZES, m=2)
    as_list = [float(v) for v in pack(params)]
    with pytest.raises(ValueError) as err:
        flat_grad(as_list, X, Y, DOCUMENT_SIZES)
    assert str(err.value) == (
        "flat has no shape: it is a list, not an array (convert it with "
        "jnp.asarray); expected a (P,) = (43,) array for sizes (5, 4, 3, 1), "
        "as pack returns"
    )
