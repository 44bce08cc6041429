"""The public gradient functions, jit-compiled at this boundary.

None of them calls an autodiff entry point: the gradients are the
hand-written backward pass of `manual_bp._backward`.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from manual_bp._backward import Derivation, backward
from manual_bp._costs import cost_of_output
from manual_bp._forward import forward
from manual_bp._params import check_shapes, layers

_STATIC = ("activation", "form", "cost")


def _derive(
    params: Any, X: Any, Y: Any, activation: str, form: str, cost: str
) -> Derivation:
    for name, a in (("A[0] (X)", X), ("Y", Y)):
        if a is None:
            raise ValueError(f"{name} is None: the gradient needs X and Y")
    check_shapes(params, X, Y)
    dtype = layers(params)[0][0].dtype
    X = jnp.asarray(X, dtype)
    Y = jnp.asarray(Y, dtype)
    Z, A = forward(params, X, activation)
    return backward(params, Z, A, Y, activation, form, cost)


def _like_params(params: Any, d: Derivation) -> Any:
    """dW[l], db[l] arranged exactly as W[l], b[l] are in `params`."""
    leaves = [g for l in range(1, len(d.dW)) for g in (d.dW[l], d.db[l])]
    return jax.tree_util.tree_structure(params).unflatten(leaves)


@functools.partial(jax.jit, static_argnames=_STATIC)
def derivation(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
) -> Derivation:
    """Every quantity of one forward and backward cycle.

    Args:
      params: the parameters, W[l] (n[l], n[l-1]) and b[l] (n[l], 1).
      X: A[0], (n[0], m), one example per column; cast to the parameters'
        dtype.
      Y: the labels, (n[L], m), entries in [0, 1]; cast likewise.
      activation: g of the hidden layers: "sigmoid", "tanh", "relu",
        "leaky_relu" or "identity". The output layer is a sigmoid.
      form: "fused" (delta[L] = A[L] - Y) or "document" (dA[L] times
        sigmoid'(Z[L]) as written); see `manual_bp.backward`.
      cost: "cross_entropy" (the document's) or "quadratic".

    Returns:
      A `Derivation` holding A[l], Z[l], dA[l], delta[l], dW[l] and db[l].

    Raises:
      ValueError: if the shapes do not chain; the message lists every
        mismatch in the document's notation.
    """
    return _derive(params, X, Y, activation, form, cost)


@functools.partial(jax.jit, static_argnames=_STATIC)
def grad(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
) -> Any:
    """dC/dW[l] and dC/db[l] for every layer, by the hand-written backward.

    Arguments are those of `derivation`. The result has the parameters'
    exact tree structure, shapes and dtypes: dW[l] where W[l] was and
    db[l] where b[l] was.
    """
    return _like_params(params, _derive(params, X, Y, activation, form, cost))


@functools.partial(jax.jit, static_argnames=_STATIC)
def value_and_grad(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
) -> tuple[jax.Array, Any]:
    """(C, grads): the cost and `grad`'s result, from one forward pass."""
    d = _derive(params, X, Y, activation, form, cost)
    C = cost_of_output(d.Z[-1], jnp.asarray(Y, d.A[0].dtype), cost)
    return C, _like_params(params, d)
