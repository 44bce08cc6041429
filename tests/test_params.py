"""Parameters: init, the accepted layouts, and the shape checks' messages.

The messages are part of the contract, so each is matched by regex.
"""

import itertools
import operator
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import run_python

import manual_bp

SIZES = (5, 4, 3, 1)
DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


def make_params(sizes=SIZES, dtype=jnp.float64):
    """Deterministic (W[l], b[l]) pairs of the given widths, no randomness."""
    params = []
    for l, (n_prev, n) in enumerate(itertools.pairwise(sizes), start=1):
        W = np.linspace(-1.0, 1.0, n * n_prev).reshape(n, n_prev)
        b = np.full((n, 1), 0.1 * l)
        params.append((jnp.asarray(W, dtype), jnp.asarray(b, dtype)))
    return params


def make_data(n0=SIZES[0], nL=SIZES[-1], m=3, dtype=jnp.float64):
    X = np.linspace(-2.0, 2.0, n0 * m).reshape(n0, m)
    Y = np.arange(nL * m).reshape(nL, m) % 2
    return jnp.asarray(X, dtype), jnp.asarray(Y, dtype)


def with_layer(params, l, W=None, b=None):
    """A copy of `params` with layer l's W and/or b replaced."""
    params = list(params)
    old_W, old_b = params[l - 1]
    params[l - 1] = (old_W if W is None else W, old_b if b is None else b)
    return params


# --- init -----------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(5, 4, 3, 1), (2, 1)], ids=str)
def test_init_gives_document_shapes(sizes):
    params = manual_bp.init(sizes, jax.random.key(0))

    assert isinstance(params, tuple)
    assert len(params) == len(sizes) - 1
    for l, layer in enumerate(params, start=1):
        assert isinstance(layer, manual_bp.Layer)
        assert layer.W.shape == (sizes[l], sizes[l - 1])
        assert layer.b.shape == (sizes[l], 1)


@pytest.mark.parametrize("scheme", manual_bp.SCHEMES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_init_honours_dtype(dtype, scheme):
    params = manual_bp.init(SIZES, jax.random.key(0), scheme, dtype=DTYPES[dtype])

    for layer in params:
        assert layer.W.dtype == np.dtype(dtype)
        assert layer.b.dtype == np.dtype(dtype)


def test_init_default_dtype_is_float32():
    params = manual_bp.init(SIZES, jax.random.key(0))

    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {np.dtype("float32")}


@pytest.mark.parametrize("scheme", manual_bp.SCHEMES)
def test_init_same_key_gives_identical_params(scheme):
    first = manual_bp.init(SIZES, jax.random.key(7), scheme)
    second = manual_bp.init(SIZES, jax.random.key(7), scheme)

    chex.assert_trees_all_equal(first, second, strict=True)


@pytest.mark.parametrize("scheme", manual_bp.SCHEMES)
def test_init_different_key_gives_different_weights(scheme):
    first = manual_bp.init(SIZES, jax.random.key(7), scheme)
    second = manual_bp.init(SIZES, jax.random.key(8), scheme)

    for l, (a, b) in enumerate(zip(first, second, strict=True), start=1):
        assert not np.any(np.asarray(a.W) == np.asarray(b.W)), f"W[{l}]"


def test_init_draws_each_layer_independently():
    params = manual_bp.init((4, 4, 4), jax.random.key(0), "normal", scale=1.0)

    assert not np.any(np.asarray(params[0].W) == np.asarray(params[1].W))


# One 400 -> 300 layer: 120 000 draws, so the sample std is within about
# 0.2% of the true one; fan_in (400) and fan_out (300) differ, so a scheme
# that swapped them would miss by far more than the 3% allowed.
FAN_IN, FAN_OUT = 400, 300
SCHEME_STD = {
    "normal": 0.01,  # the default scale
    "xavier": np.sqrt(2.0 / (FAN_IN + FAN_OUT)),
    "he": np.sqrt(2.0 / FAN_IN),
}


@pytest.mark.parametrize("scheme", manual_bp.SCHEMES)
def test_init_weight_std_follows_scheme(scheme):
    (layer,) = manual_bp.init(
        (FAN_IN, FAN_OUT), jax.random.key(0), scheme, dtype=jnp.float64
    )

    W = np.asarray(layer.W)
    expected = SCHEME_STD[scheme]
    assert W.std() == pytest.approx(expected, rel=0.03)
    assert abs(W.mean()) < 0.02 * expected


def test_init_normal_scheme_uses_scale():
    (layer,) = manual_bp.init((FAN_IN, FAN_OUT), jax.random.key(0), "normal", scale=0.5)

    assert np.asarray(layer.W).std() == pytest.approx(0.5, rel=0.03)


@pytest.mark.parametrize("scheme", manual_bp.SCHEMES)
def test_init_biases_are_zero(scheme):
    params = manual_bp.init(SIZES, jax.random.key(0), scheme)

    for layer in params:
        np.testing.assert_array_equal(layer.b, np.zeros(layer.b.shape))


@pytest.mark.parametrize(
    "sizes",
    [(5,), (), (5, 0, 1), (5, -1), (5, 2.5, 1)],
    ids=["one_size", "no_sizes", "zero_width", "negative_width", "fractional"],
)
def test_init_rejects_bad_sizes(sizes):
    expected = (
        r"sizes must be \(n\[0\], \.\.\., n\[L\]\) with L >= 1 and every "
        r"n\[l\] a positive integer, got " + re.escape(str(sizes))
    )
    with pytest.raises(ValueError, match=expected):
        manual_bp.init(sizes, jax.random.key(0))


def test_init_rejects_float_size():
    with pytest.raises(ValueError, match=r"positive integer, got \(5, 2\.0, 1\)"):
        manual_bp.init((5, 2.0, 1), jax.random.key(0))


def test_init_rejects_unknown_scheme():
    with pytest.raises(
        ValueError,
        match=r"unknown scheme 'kaiming'; expected one of: normal, xavier, he$",
    ):
        manual_bp.init(SIZES, jax.random.key(0), "kaiming")


# --- layers ---------------------------------------------------------------


def _as_layers(params):
    return tuple(manual_bp.Layer(W, b) for W, b in params)


def _as_tuples(params):
    return tuple((W, b) for W, b in params)


def _as_dicts(params):
    return [{"W": W, "b": b} for W, b in params]


LAYOUTS = {
    "tuple_of_Layers": _as_layers,
    "tuple_of_tuples": _as_tuples,
    "list_of_dicts": _as_dicts,
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layers_accepts_each_layout(layout):
    pairs = make_params()

    got = manual_bp.layers(LAYOUTS[layout](pairs))

    assert len(got) == len(pairs)
    for (W, b), (W_got, b_got) in zip(pairs, got, strict=True):
        assert W_got is W
        assert b_got is b


def test_layers_rejects_dict_of_arrays():
    W, b = make_params()[0]

    with pytest.raises(
        ValueError,
        match=(
            r"params must be a non-empty sequence of layers, each a \(W, b\) "
            r"pair or a \{'W': W, 'b': b\} dict; got dict"
        ),
    ):
        manual_bp.layers({"W": W, "b": b})


@pytest.mark.parametrize("empty", [[], ()], ids=["list", "tuple"])
def test_layers_rejects_empty(empty):
    with pytest.raises(
        ValueError,
        match=r"params must be a non-empty sequence of layers.*; got "
        + type(empty).__name__,
    ):
        manual_bp.layers(empty)


def test_layers_rejects_dict_with_wrong_keys():
    W, b = make_params()[0]

    with pytest.raises(
        ValueError,
        match=(
            r"layer 1: expected a \(W\[1\], b\[1\]\) pair or a "
            r"\{'W': W\[1\], 'b': b\[1\]\} dict, got a dict with keys "
            r"\['W', 'bias'\]"
        ),
    ):
        manual_bp.layers([{"W": W, "bias": b}])


def test_layers_rejects_triple():
    W, b = make_params()[0]

    with pytest.raises(ValueError, match=r"layer 2: expected .* dict, got tuple"):
        manual_bp.layers([(W, b), (W, b, b)])


@pytest.mark.parametrize("jitted", [False, True], ids=["eager", "jitted"])
def test_grad_of_one_layer_instead_of_the_list_names_the_array(jitted):
    # params[0] is (W[1], b[1]): each array is then taken as a "layer".
    # Inside jax.jit the arrays are tracers; the message gives their shape.
    params = manual_bp.init((5, 4, 1), jax.random.key(0))
    X, Y = jnp.ones((5, 2)), jnp.ones((1, 2))
    grad = manual_bp.grad if jitted else manual_bp._api.grad.__wrapped__
    with pytest.raises(ValueError) as err:
        grad(params[0], X, Y)
    assert str(err.value) == (
        "layer 1: expected a (W[1], b[1]) pair or a {'W': W[1], 'b': b[1]} "
        "dict, got an array of shape (4, 5) (is params one layer, not a list "
        "of them?)"
    )


# --- check_shapes ---------------------------------------------------------


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_check_shapes_returns_widths(layout):
    params = LAYOUTS[layout](make_params())
    X, Y = make_data()

    assert manual_bp.check_shapes(params) == SIZES
    assert manual_bp.check_shapes(params, X, Y) == SIZES


def test_check_shapes_accepts_init_output():
    params = manual_bp.init((6, 2, 1), jax.random.key(0))

    assert manual_bp.check_shapes(params) == (6, 2, 1)


def _bad_W2_columns():
    return with_layer(make_params(), 2, W=jnp.ones((3, 5))), None, None


def _bad_X_rows():
    X, Y = make_data(n0=6)
    return make_params(), X, Y


def _flat_bias():
    return with_layer(make_params(), 1, b=jnp.zeros(4)), None, None


def _flat_bias_width_equal_to_m():
    # n[1] == m == 2: a flat b[1] would broadcast silently, adding b[j] to
    # column j; the check must still catch it.
    params = with_layer(make_params((3, 2, 1)), 1, b=jnp.zeros(2))
    X, Y = make_data(n0=3, m=2)
    return params, X, Y


def _Y_transposed():
    X, Y = make_data(m=3)
    return make_params(), X, Y.T


def _Y_flat():
    X, Y = make_data(m=3)
    return make_params(), X, Y.reshape(-1)


def _Y_wrong_rows():
    X, _ = make_data(m=3)
    return make_params(), X, jnp.zeros((2, 3))


def _X_flat():
    return make_params(), jnp.zeros(5), None


def _W_not_matrix():
    return with_layer(make_params(), 1, W=jnp.zeros(20)), None, None


def _W_integer():
    return with_layer(make_params(), 1, W=jnp.ones((4, 5), jnp.int32)), None, None


def _W_float16():
    return with_layer(make_params(), 1, W=jnp.ones((4, 5), jnp.float16)), None, None


def _mixed_dtypes():
    W = jnp.ones((3, 4), jnp.float32)
    b = jnp.zeros((3, 1), jnp.float32)
    return with_layer(make_params(), 2, W=W, b=b), None, None


def _no_examples():
    X, Y = make_data(m=0)
    return make_params(), X, Y


SHAPE_ERRORS = {
    "W_columns_do_not_chain": (
        _bad_W2_columns,
        r"^layer 2: W\[2\] has shape \(3, 5\), expected \(n\[2\], n\[1\]\) = "
        r"\(3, 4\), n\[1\] = 4 being the rows of W\[1\]$",
    ),
    "X_rows_do_not_match_W1": (
        _bad_X_rows,
        r"^layer 1: W\[1\] has shape \(4, 5\), expected \(n\[1\], n\[0\]\) = "
        r"\(4, 6\), n\[0\] = 6 being the rows of A\[0\] \(X\)$",
    ),
    "flat_bias": (
        _flat_bias,
        r"^layer 1: b\[1\] has shape \(4,\), expected \(n\[1\], 1\) = \(4, 1\); "
        r"a flat bias would broadcast along the columns \(examples\), so store "
        r"it as a column: b\.reshape\(-1, 1\)$",
    ),
    "flat_bias_width_equal_to_m": (
        _flat_bias_width_equal_to_m,
        r"^layer 1: b\[1\] has shape \(2,\), expected \(n\[1\], 1\) = \(2, 1\); "
        r"a flat bias would broadcast along the columns",
    ),
    "Y_transposed": (
        _Y_transposed,
        r"^Y has shape \(3, 1\), expected \(n\[L\], m\) = \(1, 3\); labels go "
        r"one example per column: pass Y\.T$",
    ),
    "Y_flat": (
        _Y_flat,
        r"^Y has shape \(3,\), expected \(n\[L\], m\) = \(1, 3\); labels go "
        r"one example per column: pass Y\.reshape\(1, -1\)$",
    ),
    "Y_wrong_rows": (
        _Y_wrong_rows,
        r"^Y has shape \(2, 3\), expected \(n\[L\], m\) = \(1, 3\)$",
    ),
    "X_flat": (
        _X_flat,
        r"^A\[0\] \(X\) has shape \(5,\), expected \(n\[0\], m\): one example "
        r"per column$",
    ),
    "W_not_a_matrix": (
        _W_not_matrix,
        r"^layer 1: W\[1\] has shape \(20,\), expected a matrix "
        r"\(n\[1\], n\[0\]\)$",
    ),
    "W_not_floating": (
        _W_integer,
        r"^layer 1: W\[1\] has dtype int32, expected float32 or float64$",
    ),
    "W_half_precision": (
        _W_float16,
        r"^layer 1: W\[1\] has dtype float16, expected float32 or float64 "
        r"\(half precision is not supported: cast with \.astype\(jnp\.float32\)\)$",
    ),
    "mixed_dtypes": (
        _mixed_dtypes,
        r"^layer 2: W\[2\] has dtype float32, expected float64 like W\[1\]\n"
        r"layer 2: b\[2\] has dtype float32, expected float64 like W\[1\]$",
    ),
    "no_examples": (
        _no_examples,
        r"^A\[0\] \(X\) has m = 0 columns; at least one example is needed$",
    ),
}


@pytest.mark.parametrize("case", list(SHAPE_ERRORS))
def test_check_shapes_message(case):
    make_case, expected = SHAPE_ERRORS[case]
    params, X, Y = make_case()

    with pytest.raises(ValueError, match=expected):
        manual_bp.check_shapes(params, X, Y)


def test_check_shapes_reports_every_mismatch():
    params = with_layer(make_params(), 2, W=jnp.ones((3, 5)))
    params = with_layer(params, 3, b=jnp.zeros(1))

    with pytest.raises(ValueError) as excinfo:
        manual_bp.check_shapes(params)

    lines = str(excinfo.value).splitlines()
    assert len(lines) == 2
    assert re.match(r"layer 2: W\[2\] has shape \(3, 5\), expected ", lines[0])
    assert re.match(r"layer 3: b\[3\] has shape \(1,\), expected ", lines[1])


# --- grad: structure in, structure out; checks at trace time ---------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_grad_returns_the_params_structure(layout, dtype):
    params = LAYOUTS[layout](make_params(dtype=DTYPES[dtype]))
    X, Y = make_data(dtype=DTYPES[dtype])

    grads = manual_bp.grad(params, X, Y)

    assert jax.tree.structure(grads) == jax.tree.structure(params)
    chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_grad_in_each_layout_equals_jax_grad(layout):
    params = LAYOUTS[layout](make_params())
    X, Y = make_data()

    grads = manual_bp.grad(params, X, Y, "tanh")

    reference = jax.jit(jax.grad(manual_bp.cost), static_argnums=3)
    expected = reference(params, X, Y, "tanh")
    rtol, atol = manual_bp.tolerance(np.dtype(np.float64))
    chex.assert_trees_all_close(grads, expected, strict=True, rtol=rtol, atol=atol)


def _message(error_info):
    """The exception's own text, without notes JAX's traceback filter adds."""
    return str(error_info.value)


def test_grad_raises_check_shapes_error_at_trace_time():
    params, X, Y = _bad_X_rows()
    params = with_layer(params, 3, b=jnp.zeros(1))
    with pytest.raises(ValueError) as expected:
        manual_bp.check_shapes(params, X, Y)
    assert len(_message(expected).splitlines()) == 2  # both mismatches

    with pytest.raises(ValueError) as got:
        manual_bp.grad(params, X, Y)

    assert _message(got) == _message(expected)


def test_grad_raises_check_shapes_error_inside_outer_jit():
    params, X, Y = _Y_transposed()

    @jax.jit
    def grad_of_first_layer(params, X, Y):
        return manual_bp.grad(params, X, Y)[0]

    with pytest.raises(ValueError) as got:
        grad_of_first_layer(params, X, Y)

    assert re.fullmatch(r"Y has shape \(3, 1\).*pass Y\.T", _message(got))


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")], ids=str)
def test_init_rejects_a_scale_that_is_not_positive_and_finite(scale):
    with pytest.raises(ValueError, match=r"scale must be a positive finite number"):
        manual_bp.init((3, 2), jax.random.key(0), "normal", scale)


def test_check_shapes_refuses_a_layer_of_width_zero():
    params = [
        (jnp.zeros((0, 3)), jnp.zeros((0, 1))),
        (jnp.zeros((1, 0)), jnp.zeros((1, 1))),
    ]
    with pytest.raises(
        ValueError, match=r"layer 1: W\[1\] has shape \(0, 3\), so n\[1\] = 0"
    ):
        manual_bp.check_shapes(params)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.int32], ids=str)
def test_init_refuses_a_dtype_the_gradients_refuse(dtype):
    with pytest.raises(ValueError, match=r"dtype must be float32 or float64"):
        manual_bp.init((3, 2), jax.random.key(0), dtype=dtype)


def test_init_refuses_a_scale_that_overflows_the_dtype():
    with pytest.raises(ValueError, match=r"scale 1e\+39 overflows float32: W\[1\]"):
        manual_bp.init((3, 2), jax.random.key(0), "normal", 1e39)


def test_a_list_for_X_is_named_as_a_list_not_given_shape_none():
    # Under jax.jit a list is a tree of scalars, not an array: it has no shape.
    params = manual_bp.init((2, 1), jax.random.key(0))
    with pytest.raises(ValueError) as err:
        manual_bp.grad(params, [[1.0, 2.0], [3.0, 4.0]], jnp.ones((1, 2)))
    assert str(err.value) == (
        "A[0] (X) has no shape: it is a list, not an array (convert it with "
        "jnp.asarray), expected (n[0], m): one example per column"
    )


@pytest.mark.parametrize("missing", ["X", "Y"])
def test_grad_names_a_missing_X_or_Y(missing):
    params = manual_bp.init((2, 1), jax.random.key(0))
    X, Y = jnp.ones((2, 3)), jnp.ones((1, 3))
    args = (None, Y) if missing == "X" else (X, None)
    name = "A[0] (X)" if missing == "X" else "Y"
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} is None: the gradient"):
        manual_bp.grad(params, *args)


@pytest.mark.parametrize("scheme", ["xavier", "he"])
def test_init_refuses_a_scale_the_scheme_would_ignore(scheme):
    # xavier and he take their standard deviation from the widths; a scale
    # given with them used to be dropped without a word.
    with pytest.raises(
        ValueError,
        match=rf"scale sets the normal scheme's standard deviation; the {scheme} ",
    ):
        manual_bp.init((3, 2), jax.random.key(0), scheme, scale=1e39)
    # Left out, the scheme works as before.
    assert manual_bp.init((3, 2), jax.random.key(0), scheme)[0].W.shape == (2, 3)


@pytest.mark.parametrize("scale", ["0.1", np.array([0.1, 0.2]), True], ids=repr)
def test_init_refuses_a_scale_that_is_not_a_number(scale):
    with pytest.raises(
        ValueError, match=r"scale must be a positive finite number, got"
    ):
        manual_bp.init((3, 2), jax.random.key(0), "normal", scale)


@pytest.mark.parametrize(
    ("dtype", "scale"), [(jnp.float32, 1e-46), (jnp.float64, 1e-320)]
)
def test_init_refuses_a_scale_that_underflows_to_zero_weights(dtype, scale):
    # 1e-46 is below float32's smallest subnormal (1.4e-45); 1e-320 times a
    # normal draw is a float64 subnormal, flushed to zero by XLA on the CPU.
    with pytest.raises(ValueError, match=r"underflows .*: W\[1\] is all zero"):
        manual_bp.init((5, 4, 1), jax.random.key(0), "normal", scale, dtype)


def test_init_float64_without_x64_is_refused_not_silently_float32():
    code = (
        "import jax, jax.numpy as jnp, manual_bp as mb\n"
        "mb.init((3, 2), jax.random.key(0), dtype=jnp.float64)\n"
    )
    run = run_python(code)
    assert run.returncode != 0
    assert "dtype float64 needs jax_enable_x64" in run.stderr


@pytest.mark.parametrize(
    ("key", "got"),
    [
        (0, "int 0"),
        (np.uint32([1, 2, 3]), "an array of shape (3,) and dtype uint32"),
        (jax.random.split(jax.random.key(0), 2), "an array of shape (2,) and dtype"),
    ],
    ids=["int", "three words", "two keys"],
)
def test_init_refuses_what_is_not_one_key(key, got):
    with pytest.raises(ValueError) as err:
        manual_bp.init((5, 4, 3, 1), key)
    assert str(err.value).startswith(
        f"key must be one jax.random key, e.g. jax.random.key(0), got {got}"
    )


def test_init_takes_a_legacy_prng_key_as_jax_random_does():
    # jax.random.PRNGKey(0) is the raw (2,) uint32 form of jax.random.key(0).
    legacy = manual_bp.init((5, 4, 1), jax.random.PRNGKey(0), "xavier")
    typed = manual_bp.init((5, 4, 1), jax.random.key(0), "xavier")
    chex.assert_trees_all_equal(legacy, typed)


def test_init_under_vmap_draws_one_network_per_key():
    # A batch of keys gives a batch of networks, each the one its key draws
    # alone; the over- and underflow checks cannot look at traced values.
    keys = jax.random.split(jax.random.key(0), 4)
    batched = jax.vmap(lambda k: manual_bp.init((5, 4, 3, 1), k, "xavier"))(keys)
    for i in range(4):
        alone = manual_bp.init((5, 4, 3, 1), keys[i], "xavier")
        one = jax.tree.map(operator.itemgetter(i), batched)
        chex.assert_trees_all_equal(one, alone)


def test_init_under_jit_equals_init():
    key = jax.random.key(3)
    jitted = jax.jit(lambda k: manual_bp.init((5, 4, 1), k, "he"))(key)
    chex.assert_trees_all_equal(jitted, manual_bp.init((5, 4, 1), key, "he"))
