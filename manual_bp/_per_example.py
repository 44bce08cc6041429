"""Per-example gradients, their norms, and clipped (DP-SGD) gradients.

The backward pass already holds, for every example i (column i),

    delta[l][:, i]   (n[l],)      and      A[l-1][:, i]   (n[l-1],)

and the gradient of example i's own cost (a single column, so no 1/m) is

    dW[l]_i = delta[l][:, i] A[l-1][:, i]^T      (n[l], n[l-1])
    db[l]_i = delta[l][:, i]                     (n[l], 1)

The mean of these over i is the document's dW[l] = delta[l] @ A[l-1].T / m.
The Frobenius norm of an outer product is the product of the two vectors'
norms, so the global norm of example i's gradient over every layer is

    norm_i = sqrt(sum_l |delta[l][:, i]|^2 (|A[l-1][:, i]|^2 + 1))

(the 1 is db[l]_i), computed from delta and A without forming any
per-example gradient. Clipping scales column i of every delta[l] by
s_i = min(1, C / norm_i) before the one product with A[l-1].T.

None of these functions calls an autodiff entry point: delta and A come
from `manual_bp.forward` and `manual_bp.backward`, via `manual_bp.grad`'s
own machinery.
"""

import functools
import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp

from manual_bp._api import _STATIC, _derive, _like_params
from manual_bp._backward import Derivation
from manual_bp._params import check_key, check_real_scalar


def _norms(d: Derivation) -> jax.Array:
    """norm_i over every layer's weights and biases, (m,), from delta and A."""
    L = len(d.delta) - 1
    squares = 0
    for l in range(1, L + 1):
        delta2 = jnp.sum(d.delta[l] ** 2, axis=0)  # |delta[l][:, i]|^2, (m,)
        a2 = jnp.sum(d.A[l - 1] ** 2, axis=0)  # |A[l-1][:, i]|^2, (m,)
        squares = squares + delta2 * (a2 + 1)
    return jnp.sqrt(squares)


@functools.partial(jax.jit, static_argnames=_STATIC)
def per_example_grads(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
) -> Any:
    """The gradient of each example's own cost, for every example at once.

    Example i's gradient is that of the cost of column i alone (m = 1):
    dW[l]_i = delta[l][:, i] A[l-1][:, i]^T and db[l]_i = delta[l][:, i].
    It equals `jax.vmap` of `jax.grad` of that single-column cost, and its
    mean over the leading axis equals `manual_bp.grad`.

    Memory warning: the result holds m copies of the parameters (m times
    sum_l n[l] (n[l-1] + 1) numbers). For their norms or a clipped mean,
    use `per_example_norms` or `clipped_grad`, which never form it.

    Args:
      params: the parameters, W[l] (n[l], n[l-1]) and b[l] (n[l], 1).
      X: A[0], (n[0], m), one example per column; cast to the parameters'
        dtype.
      Y: the labels, (n[L], m), entries in [0, 1]; cast likewise.
      activation: g of the hidden layers (see `manual_bp.grad`).
      form: "fused" or "document" (see `manual_bp.backward`).
      cost: "cross_entropy" (the document's) or "quadratic".

    Returns:
      The parameters' tree structure with dW[l] (m, n[l], n[l-1]) where
      W[l] was and db[l] (m, n[l], 1) where b[l] was, in their dtype.

    Raises:
      ValueError: if the shapes do not chain; the message lists every
        mismatch in the document's notation.
    """
    d = _derive(params, X, Y, activation, form, cost)
    L = len(d.delta) - 1
    dW, db = [None], [None]
    for l in range(1, L + 1):
        # dW[l]_i[j, k] = delta[l][j, i] A[l-1][k, i]
        dW.append(jnp.einsum("ji,ki->ijk", d.delta[l], d.A[l - 1]))
        db.append(d.delta[l].T[:, :, None])  # column i as (n[l], 1)
    return _like_params(params, d._replace(dW=tuple(dW), db=tuple(db)))


@functools.partial(jax.jit, static_argnames=_STATIC)
def per_example_norms(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
) -> jax.Array:
    """The global L2 norm of each example's gradient, without forming it.

    norm_i = sqrt(sum_l |delta[l][:, i]|^2 (|A[l-1][:, i]|^2 + 1)): the
    norm over every dW[l]_i and db[l]_i of `per_example_grads`, from one
    forward and one backward pass, with O(m sum_l n[l]) memory.

    Args:
      params, X, Y, activation, form, cost: as for `per_example_grads`.

    Returns:
      (m,) the norms, in the parameters' dtype.

    Raises:
      ValueError: if the shapes do not chain.
    """
    return _norms(_derive(params, X, Y, activation, form, cost))


def _concrete(x: Any) -> float | None:
    """x as a Python float, or None when it is traced (unknown until run)."""
    try:
        return float(x)
    except jax.errors.ConcretizationTypeError:
        return None


def _noised(sums: list, std: jax.Array, key: jax.Array) -> list:
    """Each sums[k] plus std times N(0, 1) entries, from one draw of `key`.

    One draw of as many numbers as all the sums hold, cut in their order
    (dW[1], db[1], ..., dW[L], db[L]): each entry gets its own number, and
    one threefry kernel is compiled instead of 2L.
    """
    ends = list(itertools.accumulate(total.size for total in sums))
    xi = jax.random.normal(key, (ends[-1],), sums[0].dtype)
    pieces = jnp.split(xi, ends[:-1])
    return [
        total + std * piece.reshape(total.shape)
        for total, piece in zip(sums, pieces, strict=True)
    ]


@functools.partial(jax.jit, static_argnames=_STATIC)
def _clipped_grad(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    clip_norm: Any,
    noise_multiplier: Any,
    key: jax.Array | None,
    activation: str,
    form: str,
    cost: str,
) -> Any:
    """`clipped_grad` once its arguments are checked; key None: no noise."""
    d = _derive(params, X, Y, activation, form, cost)
    dtype = d.A[0].dtype
    L = len(d.delta) - 1
    m = d.A[0].shape[1]
    C = jnp.asarray(clip_norm, dtype)
    norm = _norms(d)

    # s_i = min(1, C / norm_i); the inner where keeps norm_i = 0 from 0/0.
    clipped = norm > C
    s = jnp.where(clipped, C / jnp.where(clipped, norm, 1), 1)[None, :]  # (1, m)
    sums = []
    for l in range(1, L + 1):
        delta_s = d.delta[l] * s  # column i of delta[l] times s_i
        sums.append(delta_s @ d.A[l - 1].T)  # sum_i s_i dW[l]_i
        sums.append(jnp.sum(delta_s, axis=1, keepdims=True))  # sum_i s_i db[l]_i
    if key is not None:
        std = jnp.asarray(noise_multiplier, dtype) * C
        sums = _noised(sums, std, key)
    means = [total / m for total in sums]
    dW, db = (None, *means[0::2]), (None, *means[1::2])
    return _like_params(params, d._replace(dW=dW, db=db))


def clipped_grad(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    clip_norm: float,
    noise_multiplier: float = 0.0,
    key: jax.Array | None = None,
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
) -> Any:
    """The mean of per-example gradients clipped to norm C, optionally noised.

    With C = clip_norm, sigma = noise_multiplier and norm_i from
    `per_example_norms`:

        s_i    = min(1, C / norm_i)                  (s_i = 1 if norm_i = 0)
        dW[l]  = ((delta[l] * s) @ A[l-1].T + sigma C xi_W[l]) / m
        db[l]  = (row sums of (delta[l] * s) + sigma C xi_b[l]) / m

    where s is the (1, m) row of the s_i, so delta[l] * s scales column i
    of delta[l] (n[l], m) by s_i, and xi_W[l] (n[l], n[l-1]) and xi_b[l]
    (n[l], 1) hold independent N(0, 1) draws, one per entry. This is
    (sum_i clip(g_i) + N(0, sigma^2 C^2 I)) / m, the noised gradient of
    DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", 2016,
    Algorithm 1), with clip(g_i) = g_i min(1, C / |g_i|) and g_i example
    i's gradient over all layers. It takes one forward and one backward
    pass; no per-example gradient is formed. With sigma = 0, and with C at
    or above every norm_i, the result is `manual_bp.grad`'s.

    The noise is one draw from `key` of sum_l n[l] (n[l-1] + 1) numbers,
    cut in the order xi_W[1], xi_b[1], ..., xi_W[L], xi_b[L]: the same key
    gives the same noise, whatever X and Y are. The privacy guarantee
    itself (choosing sigma, sampling the batches, accounting) is the
    caller's.

    clip_norm and noise_multiplier are checked when they are concrete
    numbers; traced inside the caller's `jax.jit` they cannot be, and a
    traced noise_multiplier needs a key (it may be positive).

    Args:
      params: the parameters, W[l] (n[l], n[l-1]) and b[l] (n[l], 1).
      X: A[0], (n[0], m), one example per column; cast to the parameters'
        dtype.
      Y: the labels, (n[L], m), entries in [0, 1]; cast likewise.
      clip_norm: C > 0, the largest global L2 norm an example's gradient
        keeps.
      noise_multiplier: sigma >= 0; the noise added to the sum has standard
        deviation sigma C, so that of the result is sigma C / m.
      key: a `jax.random` key; required when noise_multiplier > 0, unused
        when it is 0.
      activation, form, cost: as for `manual_bp.grad`.

    Returns:
      dW[l] (n[l], n[l-1]) and db[l] (n[l], 1) in the parameters' tree
      structure and dtype.

    Raises:
      ValueError: if clip_norm is not a positive finite scalar,
        noise_multiplier is negative or not finite, noise_multiplier > 0
        (or traced) without a key, or the shapes do not chain.
    """
    check_real_scalar("clip_norm", clip_norm)
    check_real_scalar("noise_multiplier", noise_multiplier)
    C, sigma = _concrete(clip_norm), _concrete(noise_multiplier)
    if C is not None and not (math.isfinite(C) and C > 0):
        raise ValueError(f"clip_norm must be a positive finite number, got {C}")
    if sigma is not None and not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(
            f"noise_multiplier must be a non-negative finite number, got {sigma}"
        )
    if key is None and sigma != 0:
        shown = "a traced value" if sigma is None else sigma
        raise ValueError(
            f"noise_multiplier is {shown}, so noise is to be drawn, but no key "
            "was given: pass key=jax.random.key(seed), or noise_multiplier=0.0 "
            "for clipping without noise"
        )
    if key is not None and sigma != 0:
        check_key(key)
    if sigma == 0:
        key = None  # no draw at all: exactly the noiseless result
    # Concrete values go in as Python floats, so that an int, a NumPy scalar
    # and a float of any value all reuse one compiled program.
    C = clip_norm if C is None else C
    sigma = noise_multiplier if sigma is None else sigma
    return _clipped_grad(params, X, Y, C, sigma, key, activation, form, cost)
