"""The backward pass, by hand, in the document's equations and names.

For l = L, L-1, ..., 1:

    delta[l]  = dA[l] * g'(Z[l])
    dW[l]     = delta[l] @ A[l-1].T / m
    db[l]     = (row sums of delta[l]) / m
    dA[l-1]   = W[l].T @ delta[l]

starting from the cost's derivative with respect to the output,

    dA[L] = -Y / A[L] + (1 - Y) / (1 - A[L])      (cross-entropy)
    dA[L] = A[L] - Y                              (quadratic)

The 1/m of the averaged cost lives in dW and db only; dA and delta are
per-example derivatives, as in the document.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from manual_bp._activations import get_activation, sigmoid_prime
from manual_bp._costs import check_cost
from manual_bp._params import layers

FORMS = ("fused", "document")


class Derivation(NamedTuple):
    """Every quantity of one forward and backward cycle.

    Each field is a tuple indexed by layer number l = 0..L, so that
    `d.delta[2]` is delta[2]; entries with no meaning at l = 0 (Z, delta,
    dW, db) hold None there.
    """

    A: tuple  # A[l]: (n[l], m); A[0] = X
    Z: tuple  # Z[l]: (n[l], m)
    dA: tuple  # dA[l]: (n[l], m); dA[0] = W[1].T @ delta[1]
    delta: tuple  # delta[l]: (n[l], m)
    dW: tuple  # dW[l]: (n[l], n[l-1])
    db: tuple  # db[l]: (n[l], 1)


def activation_backward(dA: jax.Array, Z: jax.Array, activation: str) -> jax.Array:
    """delta[l] = dA[l] * g'(Z[l]), elementwise; all (n[l], m)."""
    return dA * get_activation(activation).g_prime(Z)


def linear_backward(
    delta: jax.Array, A_prev: jax.Array, W: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One layer's linear step backward.

    Args:
      delta: delta[l], (n[l], m).
      A_prev: A[l-1], (n[l-1], m).
      W: W[l], (n[l], n[l-1]).

    Returns:
      (dA[l-1], dW[l], db[l]) of shapes (n[l-1], m), (n[l], n[l-1]) and
      (n[l], 1).
    """
    m = delta.shape[1]
    dW = delta @ A_prev.T / m
    db = jnp.sum(delta, axis=1, keepdims=True) / m
    dA_prev = W.T @ delta
    return dA_prev, dW, db


def output_dA(A_L: jax.Array, Y: jax.Array, cost: str = "cross_entropy") -> jax.Array:
    """dA[L], the cost's derivative with respect to A[L], per example.

    Cross-entropy: -Y / A[L] + (1 - Y) / (1 - A[L]); quadratic: A[L] - Y.
    Both (n[L], m).
    """
    check_cost(cost)
    if cost == "quadratic":
        return A_L - Y
    return -Y / A_L + (1 - Y) / (1 - A_L)


def backward(
    params: Any,
    Z: tuple,
    A: tuple,
    Y: jax.Array,
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
) -> Derivation:
    """Runs the backward pass over a forward pass's Z and A.

    Args:
      params: the parameters the forward pass used.
      Z, A: the tuples returned by `manual_bp.forward`.
      Y: the labels, (n[L], m).
      activation: g of the hidden layers.
      form: "fused" computes delta[L] = A[L] - Y, the product of dA[L] and
        sigmoid'(Z[L]) simplified by hand; it stays finite when the sigmoid
        saturates. "document" multiplies the two as the document writes
        them, which divides by zero once A[L] rounds to 0 or 1 (there the
        result is inf or nan). The quadratic cost has no such
        simplification: both forms multiply dA[L] by sigmoid'(Z[L]).
      cost: "cross_entropy" (the document's) or "quadratic".

    Returns:
      The full `Derivation`.
    """
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of: {', '.join(FORMS)}")
    pairs = layers(params)
    L = len(pairs)
    dA = [None] * (L + 1)
    delta = [None] * (L + 1)
    dW = [None] * (L + 1)
    db = [None] * (L + 1)

    dA[L] = output_dA(A[L], Y, cost)
    if form == "fused" and cost == "cross_entropy":
        delta[L] = A[L] - Y  # dA[L] * sigmoid'(Z[L]) simplified
    else:
        delta[L] = dA[L] * sigmoid_prime(Z[L])
    for l in range(L, 0, -1):
        if l < L:
            delta[l] = activation_backward(dA[l], Z[l], activation)
        dA[l - 1], dW[l], db[l] = linear_backward(delta[l], A[l - 1], pairs[l - 1][0])

    return Derivation(
        A=tuple(A),
        Z=tuple(Z),
        dA=tuple(dA),
        delta=tuple(delta),
        dW=tuple(dW),
        db=tuple(db),
    )
