"""Per-example gradients, norms and clipped gradients against jax.vmap(jax.grad)."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import assert_close, problem

import manual_bp as mb
from manual_bp._per_example import clipped_grad, per_example_grads, per_example_norms

DOCUMENT = ((5, 4, 3, 1), 2)  # the worked example's network and m
# (sizes, m, activation, cost): every width different; n[1] = n[3] = m,
# where a transposed dW[l]_i, or the example axis swapped with a width,
# keeps its shape; a single example; the document's network. Both costs and
# four activations, without the full product (each case compiles anew).
CASES = [
    pytest.param((5, 4, 3, 2), 3, "sigmoid", "cross_entropy", id="widths-differ"),
    pytest.param((5, 4, 3, 2), 3, "tanh", "quadratic", id="widths-differ-tanh-quad"),
    pytest.param((4, 3, 5, 3), 3, "relu", "cross_entropy", id="width-is-m-relu"),
    pytest.param(
        (4, 3, 5, 3), 3, "leaky_relu", "quadratic", id="width-is-m-leaky-quad"
    ),
    pytest.param((5, 4, 3, 1), 1, "sigmoid", "cross_entropy", id="m1"),
    pytest.param((5, 4, 3, 1), 1, "tanh", "quadratic", id="m1-tanh-quad"),
    pytest.param(*DOCUMENT, "sigmoid", "cross_entropy", id="document"),
]
FUNCTIONS = {
    "per_example_grads": per_example_grads,
    "per_example_norms": per_example_norms,
    "clipped_grad": lambda *args, **kwargs: clipped_grad(*args[:3], 1.0, **kwargs),
}


def example_cost(params, x, y, activation, cost):
    """The cost of one example alone: column x (n[0],) with labels y (n[L],)."""
    return mb.cost(params, x[:, None], y[:, None], activation, cost)


# jax.grad of one example's cost, mapped over the columns of X and Y; each
# leaf gets a leading axis of length m. Compiled once per shape and strings.
reference_grads = jax.jit(
    jax.vmap(jax.grad(example_cost), in_axes=(None, 1, 1, None, None)),
    static_argnums=(3, 4),
)


# The references below work in NumPy: an eager jax.numpy operation compiles
# once per shape, which would double this file's time.


def reference_norms(grads):
    """(m,) global L2 norms of per-example gradients, over every leaf."""
    leaves = jax.tree.leaves(jax.device_get(grads))
    m = leaves[0].shape[0]
    return np.sqrt(sum(np.sum(g.reshape(m, -1) ** 2, axis=1) for g in leaves))


def reference_clipped(grads, clip_norm):
    """(mean of min(1, C / |g_i|) g_i, the scales): clipping after autodiff."""
    with np.errstate(divide="ignore"):  # C / 0 = inf, and min(1, inf) = 1
        scales = np.minimum(1.0, clip_norm / reference_norms(grads))
    scale = lambda g: g * scales.reshape(-1, *([1] * (g.ndim - 1)))  # noqa: E731
    mean = jax.tree.map(lambda g: np.mean(scale(g), axis=0), jax.device_get(grads))
    return mean, scales


def recovered_scales(clipped, grads):
    """The s_i for which clipped = mean_i s_i g_i, solved from the result.

    Each g_i flattened is a column of G (P, m); with P > m and the g_i
    linearly independent, G s = m * clipped has exactly one solution.
    """
    leaves = jax.tree.leaves(jax.device_get(grads))
    m = leaves[0].shape[0]
    G = np.concatenate([g.reshape(m, -1) for g in leaves], axis=1).T
    target = m * np.concatenate([np.ravel(c) for c in jax.tree.leaves(clipped)])
    return np.linalg.lstsq(G, target, rcond=None)[0]


def clip_norm_for(norms, level):
    """A clip norm below every norm, above every norm, or between the middle two.

    "some" lies halfway between the (m//2)-th and (m//2 + 1)-th smallest
    norms (the median when m is even), so the m - m//2 largest are clipped.
    """
    ordered = np.sort(np.asarray(norms))
    if level == "every":
        return 0.5 * ordered[0]
    if level == "none":
        return 2.0 * ordered[-1]
    k = len(ordered) // 2
    assert ordered[k - 1] < ordered[k], "two equal middle norms: pick another seed"
    return 0.5 * (ordered[k - 1] + ordered[k])


CLIP_CASES = [
    pytest.param(*case.values, level, id=f"{case.id}-clips-{level}")
    for case, level in itertools.product(CASES, ("every", "none", "some"))
    if not (level == "some" and case.values[1] == 1)  # m = 1: none or every
]


@pytest.mark.parametrize(("sizes", "m", "activation", "cost"), CASES)
def test_per_example_grads_equal_vmap_of_jax_grad(sizes, m, activation, cost):
    params, X, Y = problem(sizes, m)
    expected = reference_grads(params, X, Y, activation, cost)
    assert_close(
        per_example_grads(params, X, Y, activation, cost=cost), expected, X.dtype
    )


@pytest.mark.parametrize(("sizes", "m", "activation", "cost"), CASES)
def test_per_example_grads_mean_equals_grad(sizes, m, activation, cost):
    params, X, Y = problem(sizes, m)
    grads = per_example_grads(params, X, Y, activation, cost=cost)
    mean = jax.tree.map(lambda g: np.mean(g, axis=0), jax.device_get(grads))
    assert_close(mean, mb.grad(params, X, Y, activation, cost=cost), X.dtype)


@pytest.mark.parametrize(("sizes", "m", "activation", "cost"), CASES)
def test_per_example_norms_equal_norms_of_vmap_of_jax_grad(sizes, m, activation, cost):
    params, X, Y = problem(sizes, m)
    expected = reference_norms(reference_grads(params, X, Y, activation, cost))
    assert_close(
        per_example_norms(params, X, Y, activation, cost=cost), expected, X.dtype
    )


@pytest.mark.parametrize(("sizes", "m", "activation", "cost", "level"), CLIP_CASES)
def test_clipped_grad_equals_clipping_vmap_of_jax_grad(
    sizes, m, activation, cost, level
):
    params, X, Y = problem(sizes, m)
    grads = reference_grads(params, X, Y, activation, cost)
    norms = np.asarray(reference_norms(grads))
    C = clip_norm_for(norms, level)
    expected, scales = reference_clipped(grads, C)
    clipped = norms > C
    if level == "every":
        assert clipped.all()
    elif level == "none":
        assert not clipped.any()
    else:
        assert clipped.sum() == m - m // 2
        assert norms[clipped].min() > norms[~clipped].max(), "the largest clipped"

    actual = clipped_grad(params, X, Y, C, activation=activation, cost=cost)

    assert_close(actual, expected, X.dtype)
    # The scales read back from the result: s_i < 1 exactly where clipped.
    s = recovered_scales(actual, per_example_grads(params, X, Y, activation, cost=cost))
    np.testing.assert_allclose(s, scales, rtol=1e-9)
    np.testing.assert_array_equal(s < 1 - 1e-9, clipped)
    if level == "none":
        assert_close(actual, mb.grad(params, X, Y, activation, cost=cost), X.dtype)


@pytest.mark.parametrize("factor", [0.5, 2.0], ids=["clipped", "not-clipped"])
def test_clipped_grad_of_one_example_has_norm_min_of_norm_and_clip(factor):
    params, X, Y = problem((5, 4, 3, 1), m=1)
    norm = np.asarray(per_example_norms(params, X, Y))[0]
    result = clipped_grad(params, X, Y, factor * norm)
    as_one_example = jax.tree.map(lambda g: np.asarray(g)[None], result)
    np.testing.assert_allclose(
        reference_norms(as_one_example), [min(factor, 1.0) * norm], rtol=1e-12
    )


def saturated_problem(labels):
    """W[2] = 0 and b[2] = 100, so A[2] = sigmoid(100) = 1.0 exactly.

    An example labelled 1 then has delta[2] = A[2] - Y = 0 and, since
    delta[1] = W[2].T @ delta[2] * g'(Z[1]), a gradient of exactly zero.
    """
    params, X, _ = problem((3, 2, 1), m=len(labels))
    W, b = jnp.asarray(np.zeros((1, 2))), jnp.asarray(np.full((1, 1), 100.0))
    params = (params[0], mb.Layer(W, b))
    return params, X, jnp.asarray([labels], jnp.float64)


@pytest.mark.parametrize(
    "labels", [(1.0, 0.0), (1.0, 1.0)], ids=["one-zero", "all-zero"]
)
def test_clipped_grad_zero_norm_gives_scale_one_not_nan(labels):
    params, X, Y = saturated_problem(labels)
    norms = per_example_norms(params, X, Y)
    assert np.asarray(norms)[0] == 0.0

    result = clipped_grad(params, X, Y, 0.5)

    for leaf in jax.tree.leaves((norms, result)):
        assert np.isfinite(leaf).all()
    grads = reference_grads(params, X, Y, "sigmoid", "cross_entropy")
    assert_close(result, reference_clipped(grads, 0.5)[0], jnp.float64)
    if labels == (1.0, 1.0):
        chex.assert_trees_all_equal(result, jax.tree.map(np.zeros_like, result))


def test_clipped_grad_noise_is_reproducible_from_the_key():
    params, X, Y = problem((5, 4, 3, 2), m=3)
    first = clipped_grad(params, X, Y, 0.5, 1.0, jax.random.key(0))
    again = clipped_grad(params, X, Y, 0.5, 1.0, jax.random.key(0))
    other = clipped_grad(params, X, Y, 0.5, 1.0, jax.random.key(1))
    chex.assert_trees_all_equal(first, again)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(other), strict=True):
        assert (np.asarray(a) != np.asarray(b)).all()


def test_clipped_grad_zero_noise_multiplier_is_exactly_no_noise():
    params, X, Y = problem((5, 4, 3, 2), m=3)
    plain = clipped_grad(params, X, Y, 0.5)
    chex.assert_trees_all_equal(
        clipped_grad(params, X, Y, 0.5, 0.0, jax.random.key(0)), plain
    )
    # Traced, sigma = 0 still draws, and adds sigma C xi = 0 to each sum.
    traced = jax.jit(clipped_grad)(params, X, Y, 0.5, 0.0, jax.random.key(0))
    assert_close(traced, plain, jnp.float64)


# W[1] (30, 400) gives 12000 draws for the noise's statistics; W[2] and
# W[3] have one shape, so one key reused for both would repeat its draws.
NOISE_NETWORK = (400, 30, 30, 30, 1)


def noise_of(sigma, C, m, key):
    """The noise clipped_grad adds, sigma C xi / m, leaf by leaf."""
    params, X, Y = problem(NOISE_NETWORK, m)
    plain = clipped_grad(params, X, Y, C)
    noised = clipped_grad(params, X, Y, C, sigma, key)
    return jax.tree.map(
        lambda a, b: np.ravel(np.asarray(a) - np.asarray(b)), noised, plain
    )


def test_clipped_grad_noise_std_is_multiplier_times_clip_norm_over_m():
    sigma, C, m = 1.5, 0.3, 8
    noise = noise_of(sigma, C, m, jax.random.key(3))[0].W
    std = sigma * C / m  # added to the sum, then divided by m
    # The sample std of N normal draws has a relative standard error of
    # about 1 / sqrt(2N) = 0.65% here, the sample mean std / sqrt(N): both
    # bounds are six standard errors, loose, yet far tighter than the factor
    # m (or sqrt(m)) that a misplaced 1/m would give.
    N = noise.size
    assert abs(noise.std() / std - 1) < 6 / np.sqrt(2 * N)
    assert abs(noise.mean()) < 6 * std / np.sqrt(N)


def test_clipped_grad_noise_is_independent_across_layers():
    noise = noise_of(1.5, 0.3, 8, jax.random.key(3))
    xi_2, xi_3 = noise[1].W, noise[2].W  # both from (30, 30) draws
    # The correlation of 900 independent pairs has std 1/30; five of those.
    assert abs(np.corrcoef(xi_2, xi_3)[0, 1]) < 5 / 30


def test_per_example_functions_inside_users_jit_equal_direct_calls():
    params, X, Y = problem((5, 4, 3, 2), m=3)
    key = jax.random.key(0)

    @jax.jit
    def everything(params, X, Y, C, key):
        return (
            per_example_grads(params, X, Y),
            per_example_norms(params, X, Y),
            clipped_grad(params, X, Y, C, 1.0, key),
        )

    expected = (
        per_example_grads(params, X, Y),
        per_example_norms(params, X, Y),
        clipped_grad(params, X, Y, 0.5, 1.0, key),
    )
    assert_close(everything(params, X, Y, 0.5, key), expected, jnp.float64)


def test_per_example_functions_vmapped_over_batches_equal_loop():
    params, _, _ = problem(*DOCUMENT)
    B, m = 3, DOCUMENT[1]
    rng = np.random.default_rng(1)
    X = rng.normal(size=(B, 5, m))  # B batches of m columns
    Y = rng.integers(0, 2, size=(B, 1, m)).astype(np.float64)
    keys = jax.random.split(jax.random.key(0), B)
    batched = (
        jax.vmap(per_example_grads, in_axes=(None, 0, 0))(params, X, Y),
        jax.vmap(per_example_norms, in_axes=(None, 0, 0))(params, X, Y),
        jax.vmap(lambda X, Y, k: clipped_grad(params, X, Y, 0.5, 1.0, k))(X, Y, keys),
    )
    batched = jax.device_get(batched)  # indexed below without compiling
    for i, key in enumerate(keys):
        expected = (
            per_example_grads(params, X[i], Y[i]),
            per_example_norms(params, X[i], Y[i]),
            clipped_grad(params, X[i], Y[i], 0.5, 1.0, key),
        )
        assert_close(jax.tree.map(lambda a, i=i: a[i], batched), expected, jnp.float64)


def test_per_example_functions_in_float32_equal_autodiff():
    params, X, Y = problem(*DOCUMENT, dtype=jnp.float32)
    grads = reference_grads(params, X, Y, "sigmoid", "cross_entropy")
    norms = reference_norms(grads)
    C = float(np.mean(norms))
    assert_close(per_example_grads(params, X, Y), grads, jnp.float32)
    assert_close(per_example_norms(params, X, Y), norms, jnp.float32)
    assert_close(
        clipped_grad(params, X, Y, C), reference_clipped(grads, C)[0], jnp.float32
    )


def test_per_example_grads_keep_the_parameters_structure_and_form():
    params, X, Y = problem((5, 4, 3, 2), m=3)
    as_dicts = [{"W": W, "b": b} for W, b in params]
    expected = reference_grads(as_dicts, X, Y, "sigmoid", "cross_entropy")
    for form in mb.FORMS:
        assert_close(per_example_grads(as_dicts, X, Y, form=form), expected, X.dtype)
    chex.assert_trees_all_equal_structs(clipped_grad(as_dicts, X, Y, 0.5), as_dicts)


@pytest.mark.parametrize("clip_norm", [0.0, -1.0, np.nan, np.inf], ids=str)
def test_clipped_grad_rejects_a_clip_norm_not_positive_and_finite(clip_norm):
    params, X, Y = problem(*DOCUMENT)
    with pytest.raises(
        ValueError, match=r"^clip_norm must be a positive finite number, got"
    ):
        clipped_grad(params, X, Y, clip_norm)


@pytest.mark.parametrize("sigma", [-1.0, np.nan], ids=str)
def test_clipped_grad_rejects_a_negative_or_nan_noise_multiplier(sigma):
    params, X, Y = problem(*DOCUMENT)
    match = r"^noise_multiplier must be a non-negative finite number, got"
    with pytest.raises(ValueError, match=match):
        clipped_grad(params, X, Y, 1.0, sigma, jax.random.key(0))


def test_clipped_grad_rejects_noise_without_a_key():
    params, X, Y = problem(*DOCUMENT)
    match = (
        r"^noise_multiplier is 1\.5, so noise is to be drawn, but no key was "
        r"given: pass key=jax\.random\.key\(seed\), or noise_multiplier=0\.0"
    )
    with pytest.raises(ValueError, match=match):
        clipped_grad(params, X, Y, 1.0, 1.5)
    # Traced, it may be positive: a key is needed as well.
    with pytest.raises(ValueError, match=r"^noise_multiplier is a traced value, so"):
        jax.jit(clipped_grad)(params, X, Y, 1.0, 0.0)


@pytest.mark.parametrize("argument", ["clip_norm", "noise_multiplier"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "must be a real number, got NoneType"),
        (True, "must be a real number, got bool"),
        (1j, "must be a real number, got complex"),
        (np.complex128(1), "must be a real number, got complex128"),
    ],
    ids=["None", "bool", "complex", "numpy complex"],
)
def test_clipped_grad_rejects_what_is_not_a_real_number(argument, value, message):
    params, X, Y = problem(*DOCUMENT)
    values = {"clip_norm": 1.0, "noise_multiplier": 0.0, argument: value}
    with pytest.raises(ValueError) as err:
        clipped_grad(params, X, Y, values["clip_norm"], values["noise_multiplier"])
    assert str(err.value) == f"{argument} {message}"


def test_clipped_grad_rejects_a_key_that_is_not_a_jax_random_key():
    params, X, Y = problem(*DOCUMENT)
    with pytest.raises(ValueError) as err:
        clipped_grad(params, X, Y, 1.0, 1.0, key=3)
    assert str(err.value) == (
        "key must be one jax.random key, e.g. jax.random.key(0), got int 3"
    )


@pytest.mark.parametrize("argument", ["clip_norm", "noise_multiplier"])
def test_clipped_grad_rejects_a_string_that_float_would_accept(argument):
    # float("1") is 1.0; a string is still not a number.
    params, X, Y = problem(*DOCUMENT)
    values = {"clip_norm": 1.0, "noise_multiplier": 0.0, argument: "1"}
    with pytest.raises(
        ValueError, match=rf"^{argument} must be a real number, got str$"
    ):
        clipped_grad(params, X, Y, values["clip_norm"], values["noise_multiplier"])


def test_clipped_grad_rejects_an_array_clip_norm():
    params, X, Y = problem(*DOCUMENT)
    match = r"^clip_norm must be a scalar, got an array of shape \(2,\)"
    with pytest.raises(ValueError, match=match):
        clipped_grad(params, X, Y, jnp.ones(2))


@pytest.mark.parametrize("function", FUNCTIONS.values(), ids=FUNCTIONS.keys())
def test_per_example_functions_check_shapes_on_entry(function):
    params, X, Y = problem(*DOCUMENT)
    match = (
        r"^Y has shape \(2,\), expected \(n\[L\], m\) = \(1, 2\); labels go "
        r"one example per column: pass Y\.reshape\(1, -1\)"
    )
    with pytest.raises(ValueError, match=match):
        function(params, X, Y[0])


def test_per_example_functions_call_no_autodiff(monkeypatch):
    """No autodiff entry point is reached on any of the three paths."""

    def refuse(*args, **kwargs):
        raise AssertionError("a per-example function called an autodiff entry point")

    # Shapes and strings used nowhere else in this file: traced anew.
    params, X, Y = problem((6, 5, 4, 1), m=9)
    for name in ("grad", "vjp", "value_and_grad", "jacrev", "jacfwd", "linearize"):
        monkeypatch.setattr(jax, name, refuse)
    grads = per_example_grads(params, X, Y, "tanh", "document")
    norms = per_example_norms(params, X, Y, "tanh", "document")
    clipped = clipped_grad(
        params, X, Y, 0.5, 1.0, jax.random.key(0), "tanh", "document"
    )
    monkeypatch.undo()

    expected = reference_grads(params, X, Y, "tanh", "cross_entropy")
    assert_close(grads, expected, jnp.float64)
    assert_close(norms, reference_norms(expected), jnp.float64)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(clipped))
