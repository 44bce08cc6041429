"""One step of gradient descent: W[l] -= lr * dW[l], b[l] -= lr * db[l]."""

from typing import Any

import jax


@jax.jit
def sgd_step(params: Any, grads: Any, learning_rate: float) -> Any:
    """Returns params - learning_rate * grads, leaf by leaf.

    Args:
      params: the parameters, any layout `manual_bp.grad` accepts.
      grads: gradients in the same structure, e.g. from `manual_bp.grad`.
      learning_rate: the step size.

    Returns:
      The updated parameters, with the structure and dtypes of `params`.
    """
    return jax.tree.map(
        lambda p, g: (p - learning_rate * g).astype(p.dtype), params, grads
    )
