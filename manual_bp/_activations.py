"""Activations g and their derivatives g', each written by hand.

Every g' here equals `jax.grad` of the matching `jax.nn` / `jax.numpy`
function at every point, kinks included: relu has slope 0 at z = 0 (as
`jax.nn.relu` defines it) and leaky relu slope 1 at z = 0 (as
`jax.nn.leaky_relu`'s `where(z >= 0, ...)` gives).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

LEAKY_RELU_SLOPE = 0.01  # jax.nn.leaky_relu's default negative_slope


class Activation(NamedTuple):
    """An activation g with its derivative g', both elementwise."""

    name: str
    g: Callable[[jax.Array], jax.Array]
    g_prime: Callable[[jax.Array], jax.Array]


def sigmoid(Z: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(Z)


def sigmoid_prime(Z: jax.Array) -> jax.Array:
    A = jax.nn.sigmoid(Z)
    return A * (1 - A)  # sigma'(z) = sigma(z) (1 - sigma(z))


def tanh(Z: jax.Array) -> jax.Array:
    return jnp.tanh(Z)


def tanh_prime(Z: jax.Array) -> jax.Array:
    A = jnp.tanh(Z)
    return 1 - A * A  # tanh'(z) = 1 - tanh(z)^2


def relu(Z: jax.Array) -> jax.Array:
    # Not jnp.maximum(Z, 0): autodiff of that gives slope 1/2 at the tie z = 0,
    # while jax.nn.relu (and relu_prime) give 0.
    return jnp.where(Z > 0, Z, 0)


def relu_prime(Z: jax.Array) -> jax.Array:
    return (Z > 0).astype(Z.dtype)  # slope 0 at the kink, as jax.nn.relu


def leaky_relu(Z: jax.Array) -> jax.Array:
    return jnp.where(Z >= 0, Z, LEAKY_RELU_SLOPE * Z)


def leaky_relu_prime(Z: jax.Array) -> jax.Array:
    # Slope 1 at the kink, as jax.nn.leaky_relu.
    return jnp.where(Z >= 0, 1, LEAKY_RELU_SLOPE).astype(Z.dtype)


def identity(Z: jax.Array) -> jax.Array:
    return Z


def identity_prime(Z: jax.Array) -> jax.Array:
    return jnp.ones_like(Z)


ACTIVATIONS = {
    a.name: a
    for a in (
        Activation("sigmoid", sigmoid, sigmoid_prime),
        Activation("tanh", tanh, tanh_prime),
        Activation("relu", relu, relu_prime),
        Activation("leaky_relu", leaky_relu, leaky_relu_prime),
        Activation("identity", identity, identity_prime),
    )
}


def get_activation(name: str) -> Activation:
    """Looks up a hidden-layer activation by name.

    Raises:
      ValueError: if `name` is not one of `ACTIVATIONS`.
    """
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        choices = ", ".join(ACTIVATIONS)
        raise ValueError(
            f"unknown activation {name!r}; expected one of: {choices}"
        ) from None
