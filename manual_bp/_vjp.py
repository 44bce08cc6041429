"""The cost as a `jax.custom_vjp` function whose VJP is the hand-written backward.

`manual_cost` returns the same scalar C as `manual_bp.cost`, but when JAX
differentiates it in reverse mode (`jax.grad`, `jax.value_and_grad`,
`jax.vjp`, `jax.jacrev`, an optax training step) the derivative comes from
`manual_bp.backward`, run on the Z[l] and A[l] the forward pass saved:

    dC/dW[l] = dW[l],  dC/db[l] = db[l]      (the document's, with 1/m)
    dC/dX    = dA[0] / m                     (dA[0] = W[1].T @ delta[1])
    dC/dY    = -Z[L] / m  or  -(A[L] - Y) / m

each multiplied by the incoming cotangent. No autodiff entry point is
called here: `jax.custom_vjp` only tells JAX which function to use.

Forward mode (`jax.jvp`, `jax.jacfwd`, `jax.linearize`) is not available:
a custom VJP has no forward-mode rule, and `manual_cost` says so with a
TypeError; `manual_bp.cost` supports it. Second derivatives (grad of grad,
`jax.hessian`, which is jacfwd of jacrev) do work: JAX differentiates the
hand-written backward itself, which is ordinary JAX code, and the tests
check the result against the Hessian of `manual_bp.cost`.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from manual_bp._api import _like_params
from manual_bp._backward import FORMS, backward
from manual_bp._costs import cost_of_output
from manual_bp._forward import forward
from manual_bp._params import check_shapes, layers

# Words of the TypeError JAX 0.10 raises when forward mode reaches a
# custom_vjp function: "can't apply forward-mode autodiff (jvp) to a
# custom_vjp function." Other TypeErrors pass through untouched.
_JAX_FORWARD_MODE_ERROR = ("forward-mode autodiff", "custom_vjp")

_FORWARD_MODE_MESSAGE = (
    "manual_cost supports reverse mode only: jax.grad, jax.value_and_grad, "
    "jax.vjp, jax.jacrev, and derivatives of those (grad of grad, "
    "jax.hessian). Forward mode applied to it (jax.jvp, jax.jacfwd, "
    "jax.linearize) is not available: its derivative is the hand-written "
    "backward pass, a reverse-mode rule with no forward-mode rule of its "
    "own. Use manual_bp.cost for forward mode."
)


def _checked_forward(
    params: Any, X: Any, Y: Any, activation: str, cost: str
) -> tuple[jax.Array, tuple, tuple, jax.Array]:
    """Checks shapes, casts X and Y to the parameters' dtype, runs forward.

    Returns:
      (C, Z, A, Y) with Z[l], A[l] (n[l], m) as `manual_bp.forward` gives
      them and Y (n[L], m) in the parameters' dtype.
    """
    check_shapes(params, X, Y)
    dtype = layers(params)[0][0].dtype
    X = jnp.asarray(X, dtype)
    Y = jnp.asarray(Y, dtype)
    Z, A = forward(params, X, activation)
    return cost_of_output(Z[-1], Y, cost), Z, A, Y


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _manual_cost(
    params: Any, X: Any, Y: Any, activation: str, cost: str, form: str
) -> jax.Array:
    return _checked_forward(params, X, Y, activation, cost)[0]


def _manual_cost_fwd(
    params: Any, X: Any, Y: Any, activation: str, cost: str, form: str
) -> tuple[jax.Array, tuple]:
    """The cost C and the residuals the backward pass needs.

    The residuals are the parameters; X (n[0], m) and Y (n[L], m) as given,
    whose dtypes the cotangents must take; Z[l] and A[l] (n[l], m); and Y
    in the parameters' dtype.
    """
    C, Z, A, Y_cast = _checked_forward(params, X, Y, activation, cost)
    return C, (params, X, Y, Z, A, Y_cast)


def _cast_back(ct: jax.Array, x: Any) -> jax.Array | None:
    """The cotangent `ct` in x's dtype; None (a zero) for non-float x."""
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return None  # integer labels or inputs have no derivative
    return ct.astype(x.dtype)


def _manual_cost_bwd(
    activation: str, cost: str, form: str, residuals: tuple, g: jax.Array
) -> tuple[Any, jax.Array | None, jax.Array | None]:
    """The cotangents of (params, X, Y), given the scalar cotangent g of C.

    They are g dW[l] and g db[l] in the parameters' structure, and
    g dC/dX (n[0], m) and g dC/dY (n[L], m) in X's and Y's dtypes.
    """
    params, X, Y, Z, A, Y_cast = residuals
    d = backward(params, Z, A, Y_cast, activation, form, cost)
    m = A[0].shape[1]

    dX = d.dA[0] / m  # dA[0] is per example; C averages over the m columns
    # dC/dY, with Z = Z[L] and A = A[L], neither of which depends on Y:
    #   cross-entropy  C = (1/m) sum_ij [softplus(Z_ij) - Y_ij Z_ij]
    #                  so dC/dY_ij = -Z_ij / m (for any Y, not only 0 and 1);
    #   quadratic      C = (1/(2m)) sum_ij (A_ij - Y_ij)^2
    #                  so dC/dY_ij = -(A_ij - Y_ij) / m.
    dY = -(A[-1] - Y_cast) / m if cost == "quadratic" else -Z[-1] / m

    grads = jax.tree.map(lambda dP: g * dP, _like_params(params, d))
    return grads, _cast_back(g * dX, X), _cast_back(g * dY, Y)


_manual_cost.defvjp(_manual_cost_fwd, _manual_cost_bwd)


def manual_cost(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    cost: str = "cross_entropy",
    form: str = "fused",
) -> jax.Array:
    """The cost C, differentiated in reverse mode by the hand-written backward.

    The value is `manual_bp.cost(params, X, Y, activation, cost)`. Under
    `jax.grad`, `jax.value_and_grad`, `jax.vjp` or `jax.jacrev` the
    derivative is `manual_bp.backward`'s: dW[l] and db[l] for the
    parameters (in their own tree structure), dA[0] / m for X, and
    -Z[L] / m (cross-entropy) or -(A[L] - Y) / m (quadratic) for Y. It
    works under `jax.jit` (with the strings static) and `jax.vmap`. It is
    not jitted itself, so that forward mode applied to it directly gets the
    clear error below.

    Args:
      params: the parameters, W[l] (n[l], n[l-1]) and b[l] (n[l], 1).
      X: A[0], (n[0], m), one example per column; cast to the parameters'
        dtype, and its cotangent cast back to X's.
      Y: the labels, (n[L], m), entries in [0, 1]; cast likewise.
      activation: g of the hidden layers; the output layer is a sigmoid.
      cost: "cross_entropy" (the document's) or "quadratic".
      form: "fused" (delta[L] = A[L] - Y) or "document" (dA[L] times
        sigmoid'(Z[L]) as written); see `manual_bp.backward`.

    Returns:
      The scalar C, in the parameters' dtype.

    Raises:
      ValueError: if the shapes do not chain (at trace time), or for an
        unknown activation, cost or form.
      TypeError: under forward-mode autodiff (`jax.jvp`, `jax.jacfwd`),
        with a message saying what to use instead. The type is JAX's own,
        because forward mode applied to a jitted function that calls
        manual_cost fails outside this function, with JAX's TypeError and
        message; callers see one exception type either way.
    """
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of: {', '.join(FORMS)}")
    try:
        return _manual_cost(params, X, Y, activation, cost, form)
    except TypeError as err:
        if not all(words in str(err) for words in _JAX_FORWARD_MODE_ERROR):
            raise
        raise TypeError(_FORWARD_MODE_MESSAGE) from err
