"""The forward pass: Z[l] = W[l] @ A[l-1] + b[l], A[l] = g(Z[l]).

Hidden layers use the chosen activation g; the output layer L is a sigmoid.
"""

from typing import Any

import jax

from manual_bp._activations import get_activation, sigmoid
from manual_bp._params import layers


def forward(
    params: Any, X: jax.Array, activation: str = "sigmoid"
) -> tuple[tuple[jax.Array | None, ...], tuple[jax.Array, ...]]:
    """Runs the network on the columns of X.

    Args:
      params: the parameters (see `manual_bp.init`).
      X: A[0], of shape (n[0], m), one example per column.
      activation: g for the hidden layers 1..L-1.

    Returns:
      (Z, A), two tuples indexed by layer number: Z[l] and A[l] are
      (n[l], m) for l = 1..L, A[0] is X and Z[0] is None. A[L] is the
      network's output.
    """
    g = get_activation(activation).g
    pairs = layers(params)
    L = len(pairs)
    Z, A = [None], [X]
    for l, (W, b) in enumerate(pairs, start=1):
        Z.append(W @ A[l - 1] + b)
        A.append(sigmoid(Z[l]) if l == L else g(Z[l]))
    return tuple(Z), tuple(A)
