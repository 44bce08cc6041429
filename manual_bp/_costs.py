"""The cost: binary cross-entropy averaged over the m examples.

    C = -(1/m) sum over units i and columns j of
        [Y_ij log A[L]_ij + (1 - Y_ij) log(1 - A[L]_ij)]

With A[L] = sigmoid(Z[L]) each term equals softplus(z) - y z, which is
how it is evaluated here: finite for every finite Z[L], even where the
sigmoid rounds to exactly 0 or 1.
"""

from typing import Any

import jax
import jax.numpy as jnp

from manual_bp._forward import forward


def binary_cross_entropy(Z_L: jax.Array, Y: jax.Array) -> jax.Array:
    """C from the output layer's pre-activation.

    Args:
      Z_L: Z[L], of shape (n[L], m).
      Y: the labels, of shape (n[L], m), entries in [0, 1].

    Returns:
      The scalar cost, summed over output units and averaged over m.
    """
    m = Z_L.shape[1]
    # -[y log s(z) + (1-y) log(1 - s(z))] = softplus(z) - y z
    return jnp.sum(jnp.logaddexp(0, Z_L) - Y * Z_L) / m


def cost(
    params: Any, X: jax.Array, Y: jax.Array, activation: str = "sigmoid"
) -> jax.Array:
    """The cost C of the network on the examples (columns) of X."""
    Z, _ = forward(params, X, activation)
    return binary_cross_entropy(Z[-1], Y)
