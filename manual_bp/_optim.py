"""One step of gradient descent: W[l] -= lr * dW[l], b[l] -= lr * db[l]."""

from typing import Any

import jax
import jax.numpy as jnp

from manual_bp._params import layers


def check_learning_rate(learning_rate: Any) -> None:
    """Raises ValueError unless the learning rate is one real number.

    A (P, 1) or (n, n) learning rate would broadcast against the parameters
    and silently change their shapes; a complex one would lose its
    imaginary part in the cast back to the parameters' dtype. Its value is
    not checked: inside a trace it is not known.
    """
    shape = jnp.shape(learning_rate)
    if shape != ():
        raise ValueError(
            f"learning_rate must be a scalar, got an array of shape {shape}"
        )
    if jnp.iscomplexobj(learning_rate) or not (
        jnp.issubdtype(jnp.result_type(learning_rate), jnp.number)
    ):
        raise ValueError(
            f"learning_rate must be a real number, got {jnp.result_type(learning_rate)}"
        )


def _check_grads_match(params: Any, grads: Any) -> None:
    """Raises ValueError unless every dW[l], db[l] has W[l]'s, b[l]'s shape."""
    theirs, ours = layers(params), layers(grads)
    if len(theirs) != len(ours):
        raise ValueError(
            f"grads has L = {len(ours)} layer(s), params has L = {len(theirs)}"
        )
    problems = [
        f"d{name}[{l}] has shape {jnp.shape(g)}, expected {jnp.shape(p)}, "
        f"the shape of {name}[{l}]"
        for l, pair in enumerate(zip(theirs, ours, strict=True), start=1)
        for name, p, g in (("W", pair[0][0], pair[1][0]), ("b", pair[0][1], pair[1][1]))
        if jnp.shape(g) != jnp.shape(p)
    ]
    if problems:
        raise ValueError("\n".join(problems))


@jax.jit
def sgd_step(params: Any, grads: Any, learning_rate: float) -> Any:
    """Returns params - learning_rate * grads, leaf by leaf.

    Args:
      params: the parameters, any layout `manual_bp.grad` accepts.
      grads: gradients in the same structure, e.g. from `manual_bp.grad`.
      learning_rate: the step size, one real number.

    Returns:
      The updated parameters, with the structure, shapes and dtypes of
      `params`.

    Raises:
      ValueError: if a dW[l] or db[l] does not have the shape of W[l] or
        b[l] (each mismatch is listed), or the learning rate is not one
        real number.
    """
    _check_grads_match(params, grads)
    check_learning_rate(learning_rate)
    return jax.tree.map(
        lambda p, g: (p - learning_rate * g).astype(p.dtype), params, grads
    )
