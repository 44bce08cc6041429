"""Parameters and gradients as one flat buffer each: a fast path for tiny nets.

For the document's 5-4-3-1 network with m = 2 a gradient is a few hundred
floating-point operations, and its time is almost all the cost of calling a
compiled function: each array passed in or out costs time of its own.
`manual_bp.grad` passes 2L + 2 arrays in and 2L out (8 and 6 for the
document's network); `flat_grad` passes three in (the packed parameters, X
and Y) and one out (the packed gradients).

The flat layout of a network of widths n[0], ..., n[L]:

    flat = [W[1] row by row, b[1], W[2] row by row, b[2], ..., W[L], b[L]]

of length P = sum over l of n[l] (n[l-1] + 1). Packed gradients have the
same layout, dW[l] where W[l] is and db[l] where b[l] is. `unpack` gives
back W[l] (n[l], n[l-1]) and b[l] (n[l], 1), the document's shapes, and
`flat_grad` runs the same hand-written forward and backward passes as
`manual_bp.grad` on them; no autodiff is called.
"""

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.core import Tracer

from manual_bp._api import _derive
from manual_bp._optim import check_learning_rate
from manual_bp._params import (
    DTYPES,
    Layer,
    check_shapes,
    check_sizes,
    describe_shape,
    layers,
)

_STATIC = ("sizes", "activation", "form", "cost")
# Up to this many multiply-adds in the largest product (n[l] n[l-1] m), and
# on the CPU, the flat gradient is compiled with XLA's matrix products kept
# on the calling thread: handing a product of a few dozen entries to another
# thread costs more than the product (8.4 against 10.3 us a call for
# 5-4-3-1, m = 2; docs/benchmarks.md). Larger products may use every core.
_ONE_THREAD_MAX_PRODUCT = 2**20
_ONE_THREAD = {"xla_cpu_multi_thread_eigen": False}
_INT = {int}  # the type of every entry of a checked `sizes`


def flat_size(sizes: Sequence[int]) -> int:
    """P, the length of the flat buffer of a network of widths `sizes`.

    Args:
      sizes: the widths (n[0], ..., n[L]), for example (5, 4, 3, 1).

    Returns:
      P = sum over l of n[l] (n[l-1] + 1): the entries of every W[l] and
      b[l]; 43 for (5, 4, 3, 1).

    Raises:
      ValueError: for fewer than two sizes or a size below 1.
    """
    sizes = check_sizes(sizes)
    return sum(n * (n_prev + 1) for n_prev, n in itertools.pairwise(sizes))


def _check_flat(flat: Any, sizes: tuple[int, ...]) -> None:
    """Raises ValueError unless `flat` is a float (P,) vector for `sizes`."""
    P = flat_size(sizes)
    shape = getattr(flat, "shape", None)
    dtype = getattr(flat, "dtype", None)
    problems = []
    if shape is None:
        raise ValueError(
            f"flat has {describe_shape(flat, None)}; expected a (P,) = ({P},) array "
            f"for sizes {sizes}, as pack returns"
        )
    if tuple(shape) != (P,):
        problems.append(
            f"flat has shape {tuple(shape)}, expected (P,) = ({P},) for sizes "
            f"{sizes}, P being the sum over l of n[l] * (n[l-1] + 1)"
        )
    if dtype is None or dtype not in DTYPES:
        msg = f"flat has dtype {dtype}, expected float32 or float64"
        if dtype in (jnp.float16, jnp.bfloat16):
            msg += " (half precision is not supported: cast with .astype(jnp.float32))"
        problems.append(msg)
    if problems:
        raise ValueError("\n".join(problems))


def _unpack(flat: jax.Array, sizes: tuple[int, ...]) -> tuple[Layer, ...]:
    """W[l] and b[l] sliced out of a checked flat buffer, in order."""
    params = []
    start = 0
    for n_prev, n in itertools.pairwise(sizes):
        W = flat[start : start + n * n_prev].reshape(n, n_prev)
        start += n * n_prev
        b = flat[start : start + n].reshape(n, 1)
        start += n
        params.append(Layer(W, b))
    return tuple(params)


@jax.jit
def pack(params: Any) -> jax.Array:
    """The parameters in one flat buffer: W[1], b[1], ..., W[L], b[L].

    Args:
      params: the parameters, W[l] (n[l], n[l-1]) and b[l] (n[l], 1), in
        any layout `manual_bp.grad` accepts; gradients from
        `manual_bp.grad` pack the same way.

    Returns:
      A (P,) vector in the parameters' dtype, each W[l] row by row followed
      by b[l], with P = sum over l of n[l] (n[l-1] + 1).

    Raises:
      ValueError: if the shapes do not chain, listing every mismatch.
    """
    check_shapes(params)
    return jnp.concatenate([a.ravel() for W, b in layers(params) for a in (W, b)])


@functools.partial(jax.jit, static_argnums=1)
def _unpack_checked(flat: jax.Array, sizes: tuple[int, ...]) -> tuple[Layer, ...]:
    _check_flat(flat, sizes)
    return _unpack(flat, sizes)


def unpack(flat: jax.Array, sizes: Sequence[int]) -> tuple[Layer, ...]:
    """The parameters (or gradients) of a flat buffer, in the document's shapes.

    Args:
      flat: a (P,) vector laid out as `pack` writes it.
      sizes: the widths (n[0], ..., n[L]).

    Returns:
      (Layer(W[1], b[1]), ..., Layer(W[L], b[L])) with W[l] (n[l], n[l-1])
      and b[l] (n[l], 1), in flat's dtype; for gradients, dW[l] and db[l].

    Raises:
      ValueError: if `sizes` is not a sequence of two or more positive
        integers, or `flat` is not a float vector of length
        P = sum over l of n[l] (n[l-1] + 1); the message gives P.
    """
    return _unpack_checked(flat, check_sizes(sizes))


def _flat_grad(
    flat: jax.Array,
    X: jax.Array,
    Y: jax.Array,
    sizes: tuple[int, ...],
    activation: str,
    form: str,
    cost: str,
) -> jax.Array:
    sizes = check_sizes(sizes)
    _check_flat(flat, sizes)
    d = _derive(_unpack(flat, sizes), X, Y, activation, form, cost)
    L = len(sizes) - 1
    return jnp.concatenate(
        [g.ravel() for l in range(1, L + 1) for g in (d.dW[l], d.db[l])]
    )


_flat_grad_two_threads = jax.jit(_flat_grad, static_argnames=_STATIC)
_flat_grad_one_thread = jax.jit(
    _flat_grad, static_argnames=_STATIC, compiler_options=_ONE_THREAD
)


@functools.lru_cache(maxsize=256)
def _one_thread(sizes: tuple[int, ...], m: int) -> bool:
    """Whether the largest product n[l] n[l-1] m is small enough for one thread."""
    largest = max(n * n_prev * m for n_prev, n in itertools.pairwise(sizes))
    return largest <= _ONE_THREAD_MAX_PRODUCT and jax.default_backend() == "cpu"


def _choose(
    compilations: tuple[Any, Any], sizes: tuple[int, ...], flat: Any, X: Any, Y: Any
) -> Any:
    """The one-thread compilation (second) for small products, else the first.

    Compiler options are refused on a jit inside another trace (the caller's
    jax.jit or jax.vmap); there the caller's compilation decides, so traced
    arguments take the first. Written out, not with any(): this runs on
    every call of a path whose whole point is a few microseconds.
    """
    if isinstance(flat, Tracer) or isinstance(X, Tracer) or isinstance(Y, Tracer):
        return compilations[0]
    try:
        if _one_thread(sizes, X.shape[-1]):
            return compilations[1]
    except (AttributeError, IndexError, TypeError, ValueError):
        pass  # X has no shape or axes, or sizes are wrong: checked when traced
    return compilations[0]


def flat_grad(
    flat: jax.Array,
    X: jax.Array,
    Y: jax.Array,
    sizes: Sequence[int],
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
) -> jax.Array:
    """dC/dW[l] and dC/db[l] of packed parameters, packed: the fast path.

    The same gradients as `pack(manual_bp.grad(unpack(flat, sizes), X, Y,
    ...))`, computed by one jit-compiled call that moves three arrays in
    and one out, which is what makes it faster for tiny networks. It is
    compiled once per (sizes, m, dtype, activation, form, cost) and works
    inside your own `jax.jit` and under `jax.vmap`.

    Args:
      flat: the parameters packed by `pack`, (P,), float32 or float64.
      X: A[0], (n[0], m), one example per column; cast to flat's dtype.
      Y: the labels, (n[L], m), entries in [0, 1]; cast likewise.
      sizes: the widths (n[0], ..., n[L]), for example (5, 4, 3, 1).
      activation: g of the hidden layers; the output layer is a sigmoid.
      form: "fused" (delta[L] = A[L] - Y) or "document" (dA[L] times
        sigmoid'(Z[L]) as written); see `manual_bp.backward`.
      cost: "cross_entropy" (the document's) or "quadratic".

    Returns:
      (P,) in flat's dtype: dW[1] row by row, db[1], ..., dW[L], db[L].

    Raises:
      ValueError: if `sizes` is not two or more positive integers, if
        `flat` is not a float vector of length P = sum over l of
        n[l] (n[l-1] + 1) (the message gives P), or if X and Y do not
        chain with `sizes`.
    """
    if type(sizes) is not tuple or set(map(type, sizes)) != _INT:
        # A list would not hash as a static argument, and (5.0, 4, 3, 1)
        # would hash as (5, 4, 3, 1) and reuse its compilation unchecked.
        sizes = check_sizes(sizes)
    jitted = _choose((_flat_grad_two_threads, _flat_grad_one_thread), sizes, flat, X, Y)
    # Positional: a jitted call with keyword arguments costs ~0.3 us more.
    return jitted(flat, X, Y, sizes, activation, form, cost)


def _flat_sgd_step(
    flat: jax.Array,
    X: jax.Array,
    Y: jax.Array,
    learning_rate: Any,
    sizes: tuple[int, ...],
    activation: str,
    form: str,
    cost: str,
) -> jax.Array:
    g = _flat_grad(flat, X, Y, sizes, activation, form, cost)
    return (flat - learning_rate * g).astype(flat.dtype)


# (two threads, one thread) for each choice of donation. A donated flat lets
# XLA write the new parameters into the old buffer instead of a new one.
_STEP_STATIC = (4, 5, 6, 7)
_flat_sgd_steps = {
    donate: tuple(
        jax.jit(
            _flat_sgd_step,
            static_argnums=_STEP_STATIC,
            donate_argnums=(0,) if donate else (),
            compiler_options=options,
        )
        for options in (None, _ONE_THREAD)
    )
    for donate in (False, True)
}


def flat_sgd_step(
    flat: jax.Array,
    X: jax.Array,
    Y: jax.Array,
    sizes: Sequence[int],
    learning_rate: float,
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
    *,
    donate: bool = False,
) -> jax.Array:
    """One step of gradient descent on packed parameters, in one call.

    Returns flat - learning_rate * flat_grad(flat, X, Y, sizes, ...), the
    packed form of W[l] -= lr dW[l], b[l] -= lr db[l], computed by a single
    jit-compiled call (three arrays and the learning rate in, one array
    out) instead of a gradient call and an update call: for a network as
    small as the document's, a training loop written in Python spends its
    time on calls, not arithmetic. The learning rate is traced, so a
    schedule does not recompile.

    Args:
      flat: the parameters packed by `pack`, (P,), float32 or float64.
      X, Y, sizes, activation, form, cost: as for `flat_grad`.
      learning_rate: the step size, one real number.
      donate: give `flat`'s memory to the result (jax.jit's buffer
        donation). The array passed in is then deleted on the backends that
        support donation (CPU, GPU, TPU) and must not be used again, as in
        `flat = flat_sgd_step(flat, ...)`. Inside your own `jax.jit` or
        `jax.vmap` the outer compilation decides and this has no effect.

    Returns:
      The updated (P,) parameters, in flat's dtype.

    Raises:
      ValueError: as `flat_grad` does, or for a learning rate that is not
        one finite real number; before anything is donated.
    """
    if type(sizes) is not tuple or set(map(type, sizes)) != _INT:
        # A list would not hash as a static argument, and (5.0, 4, 3, 1)
        # would hash as (5, 4, 3, 1) and reuse its compilation unchecked.
        sizes = check_sizes(sizes)
    check_learning_rate(learning_rate)  # before jax.jit sees a string or None
    jitted = _choose(_flat_sgd_steps[bool(donate)], sizes, flat, X, Y)
    return jitted(flat, X, Y, learning_rate, sizes, activation, form, cost)
