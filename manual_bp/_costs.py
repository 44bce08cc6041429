"""The costs, each averaged over the m examples (columns).

Binary cross-entropy, the document's cost:

    C = -(1/m) sum over units i and columns j of
        [Y_ij log A[L]_ij + (1 - Y_ij) log(1 - A[L]_ij)]

With A[L] = sigmoid(Z[L]) each term equals softplus(z) - y z, which is how
it is evaluated here: finite for every finite Z[L], even where the sigmoid
rounds to exactly 0 or 1.

The quadratic cost:

    C = (1/(2m)) sum over units i and columns j of (A[L]_ij - Y_ij)^2
"""

from typing import Any

import jax
import jax.numpy as jnp

from manual_bp._activations import sigmoid
from manual_bp._forward import forward
from manual_bp._params import check_shapes

COSTS = ("cross_entropy", "quadratic")


def check_cost(name: str) -> None:
    """Raises ValueError unless `name` is one of `COSTS`."""
    if name not in COSTS:
        raise ValueError(f"unknown cost {name!r}; expected one of: {', '.join(COSTS)}")


def _check_like(output: jax.Array, Y: jax.Array, name: str) -> None:
    """Y must have the output's shape (n[L], m): a broadcast would be wrong."""
    if jnp.shape(Y) != jnp.shape(output):
        raise ValueError(
            f"Y has shape {jnp.shape(Y)}, expected (n[L], m) = "
            f"{jnp.shape(output)}, the shape of {name}"
        )


def binary_cross_entropy(Z_L: jax.Array, Y: jax.Array) -> jax.Array:
    """C from the output layer's pre-activation.

    Args:
      Z_L: Z[L], of shape (n[L], m).
      Y: the labels, of shape (n[L], m), entries in [0, 1].

    Returns:
      The scalar cost, summed over output units and averaged over m.
    """
    _check_like(Z_L, Y, "Z[L]")
    m = Z_L.shape[1]
    # -[y log s(z) + (1-y) log(1 - s(z))] = softplus(z) - y z
    return jnp.sum(jnp.logaddexp(0, Z_L) - Y * Z_L) / m


def quadratic(A_L: jax.Array, Y: jax.Array) -> jax.Array:
    """C = (1/(2m)) * sum of (A[L] - Y)^2; A[L] and Y are (n[L], m)."""
    _check_like(A_L, Y, "A[L]")
    m = A_L.shape[1]
    return jnp.sum((A_L - Y) ** 2) / (2 * m)


def cost_of_output(Z_L: jax.Array, Y: jax.Array, cost: str) -> jax.Array:
    """The named cost of the output layer, from Z[L] (n[L], m)."""
    check_cost(cost)
    if cost == "quadratic":
        return quadratic(sigmoid(Z_L), Y)
    return binary_cross_entropy(Z_L, Y)


def cost(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    cost: str = "cross_entropy",
) -> jax.Array:
    """The cost C of the network on the examples (columns) of X.

    Args:
      params: the parameters (see `manual_bp.init`).
      X: A[0], (n[0], m).
      Y: the labels, (n[L], m).
      activation: g of the hidden layers.
      cost: "cross_entropy" (the document's) or "quadratic".
    """
    check_shapes(params, X, Y)
    Z, _ = forward(params, X, activation)
    return cost_of_output(Z[-1], Y, cost)
