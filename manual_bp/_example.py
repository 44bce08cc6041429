"""The reference document's worked example, with seeded numbers.

The document trains a 5-4-3-1 network on m = 2 examples but leaves every
entry symbolic; here the entries are drawn from a seed: W[l] from the
Xavier scheme, b[l] from N(0, 0.1^2), X from N(0, 1) and labels 0 or 1.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from manual_bp._params import Layer, init

DOCUMENT_SIZES = (5, 4, 3, 1)
DOCUMENT_M = 2


def example_problem(
    seed: int = 0,
    sizes: Sequence[int] = DOCUMENT_SIZES,
    m: int = DOCUMENT_M,
    dtype: Any = jnp.float64,
) -> tuple[tuple[Layer, ...], jax.Array, jax.Array]:
    """Seeded (params, X, Y) for a network of widths `sizes` and m examples.

    Returns:
      params with W[l] (n[l], n[l-1]) and b[l] (n[l], 1), X = A[0] of shape
      (n[0], m) and Y of shape (n[L], m) with entries 0 or 1.
    """
    if m < 1:
        raise ValueError(f"m must be at least 1, got {m}")
    k_w, k_b, k_x, k_y = jax.random.split(jax.random.key(seed), 4)
    params = init(sizes, k_w, "xavier", dtype=dtype)
    bias_keys = jax.random.split(k_b, len(params))
    params = tuple(
        Layer(W, 0.1 * jax.random.normal(k, b.shape, dtype))
        for (W, b), k in zip(params, bias_keys, strict=True)
    )
    X = jax.random.normal(k_x, (sizes[0], m), dtype)
    Y = jax.random.bernoulli(k_y, 0.5, (sizes[-1], m)).astype(dtype)
    return params, X, Y
