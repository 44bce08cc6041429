"""One step of gradient descent: W[l] -= lr * dW[l], b[l] -= lr * db[l]."""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manual_bp._params import check_real_scalar, check_shapes, layers


def check_learning_rate(learning_rate: Any) -> None:
    """Raises ValueError unless the learning rate is one real number.

    A (P, 1) or (n, n) learning rate would broadcast against the parameters
    and silently change their shapes; a complex one would lose its
    imaginary part in the cast back to the parameters' dtype; a NaN or an
    infinite one would turn every parameter into NaN. The value is checked
    only when it is concrete: inside a trace it is not known. A negative
    rate (a step up the gradient) is the caller's choice and passes.
    """
    if type(learning_rate) is float:  # the common case, on every training step
        if not math.isfinite(learning_rate):
            raise ValueError(f"learning_rate must be finite, got {learning_rate}")
        return
    check_real_scalar("learning_rate", learning_rate)
    if not isinstance(learning_rate, jax.core.Tracer) and not np.isfinite(
        learning_rate
    ):
        raise ValueError(f"learning_rate must be finite, got {learning_rate}")


def check_grads_match(params: Any, grads: Any) -> None:
    """Raises ValueError unless every dW[l], db[l] has W[l]'s, b[l]'s shape.

    The parameters must be float32 or float64 (`check_shapes`), and the
    gradients real floating point: a complex gradient would lose its
    imaginary part in the cast back to the parameters' dtype.
    """
    check_shapes(params)
    theirs, ours = layers(params), layers(grads)
    if len(theirs) != len(ours):
        raise ValueError(
            f"grads has L = {len(ours)} layer(s), params has L = {len(theirs)}"
        )
    problems = []
    for l, ((W, b), (dW, db)) in enumerate(zip(theirs, ours, strict=True), start=1):
        for name, p, g in (("W", W, dW), ("b", b, db)):
            if jnp.shape(g) != jnp.shape(p):
                problems.append(
                    f"d{name}[{l}] has shape {jnp.shape(g)}, expected "
                    f"{jnp.shape(p)}, the shape of {name}[{l}]"
                )
            elif not jnp.issubdtype(jnp.result_type(g), jnp.floating):
                problems.append(
                    f"d{name}[{l}] has dtype {jnp.result_type(g)}, expected a "
                    "real floating dtype"
                )
    if problems:
        raise ValueError("\n".join(problems))


@jax.jit
def _sgd_step(params: Any, grads: Any, learning_rate: Any) -> Any:
    check_grads_match(params, grads)
    leaves = [
        (p - learning_rate * g).astype(p.dtype)
        for pair, grad_pair in zip(layers(params), layers(grads), strict=True)
        for p, g in zip(pair, grad_pair, strict=True)
    ]
    return jax.tree_util.tree_structure(params).unflatten(leaves)


def sgd_step(params: Any, grads: Any, learning_rate: float) -> Any:
    """Returns params - learning_rate * grads, layer by layer.

    Args:
      params: the parameters, any layout `manual_bp.grad` accepts.
      grads: the gradients, e.g. from `manual_bp.grad`, in any accepted
        layout (not necessarily the parameters' own).
      learning_rate: the step size, one real number.

    Returns:
      The updated parameters, with the structure, shapes and dtypes of
      `params`.

    Raises:
      ValueError: if the parameters are not float32 or float64 or do not
        chain, if a dW[l] or db[l] does not have the shape of W[l] or b[l]
        or is not real floating point (each problem is listed), or if the
        learning rate is not one finite real number.
    """
    # Checked before the jit, not in it: jax.jit cannot take a string or None
    # as an argument at all, and would say so in its own words.
    check_learning_rate(learning_rate)
    return _sgd_step(params, grads, learning_rate)
