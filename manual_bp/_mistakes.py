"""Classic derivation mistakes, injected one at a time, to test the checker.

`mistaken_derivation` runs the forward and backward pass with exactly one
named mistake in it and returns the whole `Derivation`, so that
`manual_bp.check(..., hand_written=...)` can be asked where it goes wrong.
The clean code is not touched: this module has its own loop, which calls
the clean building blocks (`linear_backward`, `activation_backward`,
`output_dA`, the activations) wherever the equation is unchanged and puts
the mistaken line in place of the right one.

Some mistakes only type-check for some shapes. A missing transpose, for
example, multiplies (n[l], m) by (n[l-1], m), which only works where
n[l-1] = m. Such a mistake is applied at the layers where it type-checks and
leaves the others right: in real code the other layers would raise, and the
bug survives exactly where square shapes hide it. A network with no such
layer gives the clean derivation back. The shape conditions are:

    missing_transpose_dW, missing_transpose_dA   n[l-1] = m
    bias_wrong_axis                              n[l] = m
    wrong_layer_cache                            n[l+1] = 1 or n[l+1] = n[l]

Some mistakes are also invisible on some data: the sign slip where every
label is 0 (+Y/A[L] and -Y/A[L] are both 0 there), elementwise_for_matmul
when m = 1, g_prime_at_A for relu, leaky_relu and identity, and
relu_slope_1_at_0 unless a hidden Z[l] is exactly 0 and some gradient
reaches it.
"""

from typing import Any

import jax
import jax.numpy as jnp

from manual_bp._activations import get_activation, sigmoid, sigmoid_prime
from manual_bp._backward import (
    FORMS,
    Derivation,
    activation_backward,
    linear_backward,
    output_dA,
)
from manual_bp._costs import check_cost
from manual_bp._params import check_shapes, layers

MISTAKES = {
    "sign_slip_dA_L": (
        "dA[L] = +Y/A[L] + (1-Y)/(1-A[L]), the document's sign typo, instead "
        "of -Y/A[L] + (1-Y)/(1-A[L]) (for the quadratic cost, Y - A[L] "
        "instead of A[L] - Y)."
    ),
    "missing_1_over_m": (
        "dW[l] = delta[l] @ A[l-1].T and db[l] = the row sums of delta[l], "
        "without the 1/m of the cost averaged over the m examples."
    ),
    "double_1_over_m": (
        "dW[l] = delta[l] @ A[l-1].T / m^2 and db[l] = the row sums of "
        "delta[l] / m^2, the 1/m applied twice."
    ),
    "missing_transpose_dW": (
        "dW[l] = delta[l] @ A[l-1] / m, A[l-1] not transposed, applied where "
        "it type-checks: n[l-1] = m."
    ),
    "missing_transpose_dA": (
        "dA[l-1] = delta[l].T @ W[l], the transpose of W[l].T @ delta[l], "
        "applied where its shape (m, n[l-1]) passes for (n[l-1], m): "
        "n[l-1] = m."
    ),
    "elementwise_for_matmul": (
        "dW[l] = (the column mean of delta[l], (n[l], 1)) * (the column mean "
        "of A[l-1] laid as a row, (1, n[l-1])), an elementwise product of the "
        "means where the mean of the products delta[l] @ A[l-1].T / m belongs "
        "(right only when m = 1)."
    ),
    "sigma_prime_twice": (
        "delta[L] = (A[L] - Y) * sigma'(Z[L]), sigma'(Z[L]) applied again to "
        "a delta[L] that already contains it (for the quadratic cost, "
        "dA[L] * sigma'(Z[L])^2)."
    ),
    "g_prime_at_A": (
        "delta[l] = dA[l] * g'(A[l]) for the hidden layers, g' taken at the "
        "activation instead of at Z[l] (invisible for relu, leaky_relu and "
        "identity, whose g'(A[l]) equals g'(Z[l]))."
    ),
    "db_wrong_axis": (
        "db[l] = the sums of delta[l] along axis 0 (over the n[l] units, one "
        "per example) / m, of shape (1, m), instead of the row sums over the "
        "m examples, of shape (n[l], 1)."
    ),
    "bias_wrong_axis": (
        "Z[l] = W[l] @ A[l-1] + b[l].T in the forward pass, b[l][j] added to "
        "column (example) j instead of row (unit) j, applied where it "
        "broadcasts: n[l] = m; the backward pass then runs on that wrong "
        "cache."
    ),
    "wrong_layer_cache": (
        "delta[l] = dA[l] * g'(Z[l+1]) for the hidden layers, the next "
        "layer's cache, applied where Z[l+1] broadcasts against dA[l] "
        "(n[l+1] = 1 or n[l+1] = n[l]), as a one-unit output layer makes it "
        "for l = L-1."
    ),
    "relu_slope_1_at_0": (
        "relu'(z) = 1 for z >= 0, slope 1 at the kink where jax.nn.relu has "
        "0 (activation relu only), visible only where a hidden Z[l] is "
        "exactly 0."
    ),
}


def _check_mistake(mistake: str, activation: str) -> None:
    if mistake not in MISTAKES:
        raise ValueError(
            f"unknown mistake {mistake!r}; expected one of: {', '.join(MISTAKES)}"
        )
    if mistake == "relu_slope_1_at_0" and activation != "relu":
        raise ValueError(
            f"mistake 'relu_slope_1_at_0' needs activation 'relu', got {activation!r}"
        )


def _output_dA(A_L: jax.Array, Y: jax.Array, cost: str, mistake: str) -> jax.Array:
    """dA[L], (n[L], m), with the sign slip if that is the mistake."""
    if mistake != "sign_slip_dA_L":
        return output_dA(A_L, Y, cost)
    if cost == "quadratic":
        return Y - A_L  # right: A[L] - Y
    return Y / A_L + (1 - Y) / (1 - A_L)  # right: -Y / A[L] + ...


def _output_delta(
    dA_L: jax.Array,
    Z_L: jax.Array,
    A_L: jax.Array,
    Y: jax.Array,
    cost: str,
    form: str,
    mistake: str,
) -> jax.Array:
    """delta[L], (n[L], m), in the chosen form, maybe with sigma' twice."""
    if form == "fused" and cost == "cross_entropy":
        delta_L = A_L - Y  # dA[L] * sigmoid'(Z[L]) simplified
    else:
        delta_L = dA_L * sigmoid_prime(Z_L)
    if mistake == "sigma_prime_twice":
        delta_L = delta_L * sigmoid_prime(Z_L)  # sigma'(Z[L]) once too often
    return delta_L


def _hidden_delta(
    dA: jax.Array,
    Z: jax.Array,
    A: jax.Array,
    Z_next: jax.Array,
    activation: str,
    mistake: str,
) -> jax.Array:
    """delta[l] = dA[l] * g'(Z[l]) of a hidden layer, or the mistaken line.

    Args:
      dA, Z, A: dA[l], Z[l], A[l], all (n[l], m).
      Z_next: Z[l+1], (n[l+1], m), the cache `wrong_layer_cache` reads.
      activation: g of the hidden layers.
      mistake: the mistake being injected.
    """
    g_prime = get_activation(activation).g_prime
    if mistake == "g_prime_at_A":
        return dA * g_prime(A)
    if mistake == "wrong_layer_cache" and Z_next.shape[0] in (1, dA.shape[0]):
        return dA * g_prime(Z_next)
    if mistake == "relu_slope_1_at_0":
        return dA * (Z >= 0).astype(Z.dtype)
    return activation_backward(dA, Z, activation)


def _linear_backward(
    delta: jax.Array, A_prev: jax.Array, W: jax.Array, mistake: str
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(dA[l-1], dW[l], db[l]) as `linear_backward`, one line mistaken.

    Args:
      delta: delta[l], (n[l], m).
      A_prev: A[l-1], (n[l-1], m).
      W: W[l], (n[l], n[l-1]).
      mistake: the mistake being injected.
    """
    m, n_prev = delta.shape[1], A_prev.shape[0]
    dA_prev, dW, db = linear_backward(delta, A_prev, W)
    if mistake == "missing_1_over_m":
        dW = delta @ A_prev.T
        db = jnp.sum(delta, axis=1, keepdims=True)
    elif mistake == "double_1_over_m":
        dW = delta @ A_prev.T / m / m
        db = jnp.sum(delta, axis=1, keepdims=True) / m / m
    elif mistake == "missing_transpose_dW" and n_prev == m:
        dW = delta @ A_prev / m
    elif mistake == "missing_transpose_dA" and n_prev == m:
        dA_prev = delta.T @ W
    elif mistake == "elementwise_for_matmul":
        delta_mean = jnp.mean(delta, axis=1, keepdims=True)  # (n[l], 1)
        A_prev_mean = jnp.mean(A_prev, axis=1, keepdims=True)  # (n[l-1], 1)
        dW = delta_mean * A_prev_mean.T  # broadcast to (n[l], n[l-1])
    elif mistake == "db_wrong_axis":
        db = jnp.sum(delta, axis=0, keepdims=True) / m
    return dA_prev, dW, db


def mistaken_derivation(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    mistake: str,
    activation: str = "sigmoid",
    cost: str = "cross_entropy",
    form: str = "fused",
) -> Derivation:
    """One forward and backward cycle with exactly one named mistake.

    Args:
      params: the parameters, W[l] (n[l], n[l-1]) and b[l] (n[l], 1).
      X: A[0], (n[0], m); cast to the parameters' dtype.
      Y: the labels, (n[L], m); cast likewise.
      mistake: one of `MISTAKES`.
      activation: g of the hidden layers; the output layer is a sigmoid.
      cost: "cross_entropy" or "quadratic".
      form: "fused" or "document", as for `manual_bp.backward`.

    Returns:
      A `Derivation` with the fields of the clean one. Shapes are the
      document's except where the mistake changes them (`db_wrong_axis`
      gives db[l] of shape (1, m)).

    Raises:
      ValueError: for an unknown mistake (the message lists the names),
        `relu_slope_1_at_0` with an activation other than relu, an unknown
        activation, cost or form, or shapes that do not chain.
    """
    _check_mistake(mistake, activation)
    g = get_activation(activation).g
    check_cost(cost)
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of: {', '.join(FORMS)}")
    check_shapes(params, X, Y)
    pairs = layers(params)
    dtype = pairs[0][0].dtype
    X, Y = jnp.asarray(X, dtype), jnp.asarray(Y, dtype)
    L, m = len(pairs), X.shape[1]

    # forward
    Z, A = [None], [X]
    for l, (W, b) in enumerate(pairs, start=1):
        if mistake == "bias_wrong_axis" and W.shape[0] == m:
            Z.append(W @ A[l - 1] + b.T)  # b[l][j] added to column j
        else:
            Z.append(W @ A[l - 1] + b)
        A.append(sigmoid(Z[l]) if l == L else g(Z[l]))

    # backward
    dA, delta, dW, db = ([None] * (L + 1) for _ in range(4))
    dA[L] = _output_dA(A[L], Y, cost, mistake)
    delta[L] = _output_delta(dA[L], Z[L], A[L], Y, cost, form, mistake)
    for l in range(L, 0, -1):
        if l < L:
            delta[l] = _hidden_delta(dA[l], Z[l], A[l], Z[l + 1], activation, mistake)
        dA[l - 1], dW[l], db[l] = _linear_backward(
            delta[l], A[l - 1], pairs[l - 1][0], mistake
        )

    return Derivation(
        A=tuple(A),
        Z=tuple(Z),
        dA=tuple(dA),
        delta=tuple(delta),
        dW=tuple(dW),
        db=tuple(db),
    )
