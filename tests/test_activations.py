"""Each hand-written g and g' against the matching jax function and jax.grad.

The references are independent of manual_bp: jax.nn / jax.numpy for g and
jax.vmap(jax.grad(reference)) for g'. Tolerances come from the one table,
manual_bp.TOLERANCES.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manual_bp

REFERENCES = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "identity": lambda z: z,
}

# The smallest positive value of each dtype that the grid should cross:
# far below anything an activation rounds, on either side of the kink.
TINY = {
    np.float64: 1e-300,
    np.float32: np.finfo(np.float32).smallest_subnormal,
}

DTYPES = {"float32": np.float32, "float64": np.float64}
TRANSFORMS = {"eager": lambda f: f, "jit": jax.jit}


def grid(dtype):
    """z = 0 (and -0), +-tiny, ordinary values and large magnitudes."""
    tiny = TINY[dtype]
    points = [0.0, -0.0, tiny, -tiny, 0.5, -0.5, 1.0, -1.0, 2.5, -3.0]
    points += [30.0, -30.0, 100.0, -100.0, 1e4, -1e4]
    return jnp.asarray(np.array(points, dtype))


def test_references_cover_every_activation():
    assert set(REFERENCES) == set(manual_bp.ACTIVATIONS)


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", list(manual_bp.ACTIVATIONS))
def test_g_prime_equals_jax_grad_of_reference(name, dtype, transform):
    z = grid(DTYPES[dtype])
    g_prime = TRANSFORMS[transform](manual_bp.get_activation(name).g_prime)

    got = g_prime(z)

    expected = jax.vmap(jax.grad(REFERENCES[name]))(z)
    assert got.dtype == z.dtype
    rtol, atol = manual_bp.tolerance(np.dtype(dtype))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", list(manual_bp.ACTIVATIONS))
def test_g_equals_reference(name, dtype, transform):
    z = grid(DTYPES[dtype])
    g = TRANSFORMS[transform](manual_bp.get_activation(name).g)

    got = g(z)

    expected = REFERENCES[name](z)
    assert got.dtype == z.dtype
    rtol, atol = manual_bp.tolerance(np.dtype(dtype))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def test_activation_keeps_the_shape_of_a_matrix():
    Z = jnp.asarray(np.linspace(-2.0, 2.0, 6).reshape(2, 3))
    for name, activation in manual_bp.ACTIVATIONS.items():
        assert activation.g(Z).shape == (2, 3), name
        assert activation.g_prime(Z).shape == (2, 3), name


# The kinks, one tiny test each: jax.nn.relu has slope 0 at z = 0 and
# jax.nn.leaky_relu slope 1 (its where(z >= 0, ...) takes the z branch).


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_relu_prime_is_zero_at_the_kink(dtype):
    z = jnp.zeros((1,), DTYPES[dtype])

    got = manual_bp.get_activation("relu").g_prime(z)

    assert got.dtype == z.dtype
    assert got[0] == 0
    assert jax.grad(jax.nn.relu)(z[0]) == 0


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_leaky_relu_prime_is_one_at_the_kink(dtype):
    z = jnp.zeros((1,), DTYPES[dtype])

    got = manual_bp.get_activation("leaky_relu").g_prime(z)

    assert got.dtype == z.dtype
    assert got[0] == 1
    assert jax.grad(jax.nn.leaky_relu)(z[0]) == 1


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_kink_activation_at_zero_equals_reference(name, dtype):
    z = jnp.zeros((1,), DTYPES[dtype])

    got = manual_bp.get_activation(name).g(z)

    assert got.dtype == z.dtype
    assert got[0] == REFERENCES[name](z[0]) == 0


@pytest.mark.parametrize("name", ["softmax", "Sigmoid", ""])
def test_get_activation_rejects_unknown_name_listing_valid_ones(name):
    with pytest.raises(
        ValueError,
        match=(
            rf"unknown activation '{name}'; expected one of: "
            r"sigmoid, tanh, relu, leaky_relu, identity$"
        ),
    ):
        manual_bp.get_activation(name)


def test_get_activation_rejects_unhashable_name():
    with pytest.raises(ValueError, match=r"unknown activation \['relu'\]"):
        manual_bp.get_activation(["relu"])


# A hidden layer whose Z[1] lands exactly on the kink: rows 1 and 3 of
# W[1] and all of b[1] are zero, so those rows of Z[1] are exactly 0.0 for
# every example; row 2 is nonzero everywhere.
KINK_W1 = [[0.0, 0.0], [0.75, 0.5], [0.0, 0.0]]
KINK_X = [[1.0, 2.0, -1.0], [0.5, -1.0, 3.0]]
KINK_W2 = [[0.5, -1.0, 2.0]]
KINK_B2 = [[0.1]]
KINK_Y = [[1.0, 0.0, 1.0]]


def _kink_network():
    params = [
        {"W": jnp.asarray(KINK_W1), "b": jnp.zeros((3, 1))},
        {"W": jnp.asarray(KINK_W2), "b": jnp.asarray(KINK_B2)},
    ]
    return params, jnp.asarray(KINK_X), jnp.asarray(KINK_Y)


@pytest.mark.parametrize(
    "activation",
    [
        "relu",
        "leaky_relu",
    ],
)
def test_grad_equals_jax_grad_when_hidden_z_is_exactly_zero(activation):
    params, X, Y = _kink_network()
    Z, _ = manual_bp.forward(params, X, activation)
    assert np.all(np.asarray(Z[1])[[0, 2]] == 0.0)  # the kink is really hit
    assert np.all(np.asarray(Z[1])[1] != 0.0)

    got = manual_bp.grad(params, X, Y, activation)

    expected = jax.grad(manual_bp.cost)(params, X, Y, activation)
    rtol, atol = manual_bp.tolerance(np.dtype(np.float64))
    chex.assert_trees_all_close(got, expected, strict=True, rtol=rtol, atol=atol)
