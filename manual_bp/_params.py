"""Parameters: their layout, seeded initialisation and shape checks.

A network of L layers with widths n[0], ..., n[L] has parameters

    params = (Layer(W=W[1], b=b[1]), ..., Layer(W=W[L], b=b[L]))

with W[l] of shape (n[l], n[l-1]) and b[l] of shape (n[l], 1), so that
Z[l] = W[l] @ A[l-1] + b[l] adds b[l] to every column (example). The
Python index of a layer is l - 1: `params[0]` is layer 1.

Any sequence of `(W, b)` pairs or `{"W": W, "b": b}` dicts is accepted as
well; gradients always come back in the structure they were given in.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

SCHEMES = ("normal", "xavier", "he")
# The dtypes the derivation is computed in. float16 and bfloat16 are refused:
# their 3 or 2 significant digits make the comparison with autodiff
# meaningless at any useful tolerance.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_SCALE = 0.01  # the normal scheme's standard deviation unless given


class Layer(NamedTuple):
    """The parameters of one layer l: W[l] (n[l], n[l-1]) and b[l] (n[l], 1)."""

    W: jax.Array
    b: jax.Array


def check_sizes(sizes: Any) -> tuple[int, ...]:
    """`sizes` as a tuple of ints (n[0], ..., n[L]), or ValueError.

    Raises:
      ValueError: for fewer than two sizes or a size that is not a positive
        integer (2.0 included: widths are counts).
    """
    try:
        sizes = tuple(sizes)
    except TypeError:
        sizes = (sizes,)
    if len(sizes) < 2 or any(
        isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1
        for n in sizes
    ):
        raise ValueError(
            f"sizes must be (n[0], ..., n[L]) with L >= 1 and every n[l] a "
            f"positive integer, got {sizes}"
        )
    return tuple(int(n) for n in sizes)


def check_key(key: Any) -> None:
    """Raises ValueError unless `key` is one jax.random key.

    A typed key (jax.random.key) of shape (), or a legacy uint32 (2,)
    jax.random.PRNGKey; traced keys (under the caller's jax.vmap) pass.
    """
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if jnp.shape(key) == ():
            return
    elif dtype == jnp.uint32 and jnp.shape(key) == (2,):
        return
    got = (
        f"{type(key).__name__} {key!r}"
        if dtype is None
        else f"an array of shape {jnp.shape(key)} and dtype {dtype}"
    )
    raise ValueError(
        f"key must be one jax.random key, e.g. jax.random.key(0), got {got}"
    )


def check_real_scalar(name: str, value: Any) -> None:
    """Raises ValueError unless `value` is one real number, concrete or traced.

    float() would take "1" and True, and a complex or (1,)-shaped value would
    pass into arithmetic; a step size or a norm must be none of those.
    """
    if isinstance(value, bool) or not isinstance(
        value, int | float | np.number | np.ndarray | jax.Array
    ):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__}")
    if (shape := jnp.shape(value)) != ():
        raise ValueError(f"{name} must be a scalar, got an array of shape {shape}")
    kind = jnp.result_type(value)
    if not (jnp.issubdtype(kind, jnp.integer) or jnp.issubdtype(kind, jnp.floating)):
        raise ValueError(f"{name} must be a real number, got {kind}")


def init(
    sizes: Sequence[int],
    key: jax.Array,
    scheme: str = "normal",
    scale: float | None = None,
    dtype: Any = jnp.float32,
) -> tuple[Layer, ...]:
    """Draws seeded parameters for a network of widths `sizes`.

    Args:
      sizes: the widths (n[0], n[1], ..., n[L]), for example (5, 4, 3, 1).
      key: a `jax.random` key; the same key gives the same parameters.
      scheme: "normal" draws W[l] from N(0, scale^2); "xavier" (Glorot)
        from N(0, 2 / (n[l-1] + n[l])); "he" from N(0, 2 / n[l-1]).
        Biases start at zero in every scheme.
      scale: the standard deviation of the "normal" scheme; None for 0.01.
        The other schemes take theirs from the widths and refuse a scale.
      dtype: the floating dtype of every parameter.

    Returns:
      A tuple of L `Layer`s.

    Raises:
      ValueError: for fewer than two sizes, a size below 1, an unknown
        scheme, a key that is not one jax.random key, or a scale that is
        not positive and finite or is given to a scheme other than "normal".
    """
    sizes = check_sizes(sizes)
    if scale is not None and scheme != "normal":
        raise ValueError(
            f"scale sets the normal scheme's standard deviation; the {scheme} "
            "scheme takes it from the widths, so leave scale out"
        )
    scale = DEFAULT_SCALE if scale is None else scale
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int | float | np.integer | np.floating)
        or not (np.isfinite(scale) and scale > 0)
    ):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    if np.dtype(dtype) not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    if np.dtype(dtype) == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype float64 needs jax_enable_x64 (without it JAX makes float32): "
            "call jax.config.update('jax_enable_x64', True) first"
        )
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown scheme {scheme!r}; expected one of: {', '.join(SCHEMES)}"
        )
    check_key(key)
    keys = jax.random.split(key, len(sizes) - 1)
    params = []
    for k, n_prev, n in zip(keys, sizes[:-1], sizes[1:], strict=True):
        std = {
            "normal": scale,
            "xavier": np.sqrt(2.0 / (n_prev + n)),
            "he": np.sqrt(2.0 / n_prev),
        }[scheme]
        W = std * jax.random.normal(k, (n, n_prev), dtype)
        b = jnp.zeros((n, 1), dtype)
        # Drawn inside the caller's jax.jit or jax.vmap (a batch of keys),
        # the values are not known here, so they are not checked.
        concrete = not isinstance(W, jax.core.Tracer)
        if concrete and not bool(jnp.all(jnp.isfinite(W))):
            raise ValueError(
                f"scale {scale} overflows {np.dtype(dtype)}: W[{len(params) + 1}] "
                "is not finite"
            )
        if concrete and not bool(jnp.any(W)):
            raise ValueError(
                f"scale {scale} underflows {np.dtype(dtype)}: W[{len(params) + 1}] "
                "is all zero, and every unit of a layer would stay alike"
            )
        params.append(Layer(W.astype(dtype), b))
    return tuple(params)


def layers(params: Any) -> list[tuple[Any, Any]]:
    """Returns [(W[1], b[1]), ..., (W[L], b[L])] from any accepted layout.

    Raises:
      ValueError: if `params` is not a non-empty sequence of (W, b) pairs
        or {"W": W, "b": b} dicts.
    """
    if isinstance(params, dict) or not isinstance(params, Sequence) or not params:
        raise ValueError(
            "params must be a non-empty sequence of layers, each a (W, b) "
            "pair or a {'W': W, 'b': b} dict; got "
            f"{type(params).__name__}"
        )
    pairs = []
    for l, layer in enumerate(params, start=1):
        if isinstance(layer, dict) and set(layer) == {"W", "b"}:
            pairs.append((layer["W"], layer["b"]))
        elif isinstance(layer, Sequence) and len(layer) == 2:
            pairs.append((layer[0], layer[1]))
        else:
            raise ValueError(
                f"layer {l}: expected a (W[{l}], b[{l}]) pair or a "
                f"{{'W': W[{l}], 'b': b[{l}]}} dict, got {_describe(layer)}"
            )
    return pairs


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        return f"a dict with keys {sorted(obj)}"
    if (shape := _shape(obj)) is not None:
        # Inside jax.jit an array is a tracer: its type name says nothing.
        return f"an array of shape {shape} (is params one layer, not a list of them?)"
    return type(obj).__name__


def sizes_of(params: Any) -> tuple[int, ...]:
    """The widths (n[0], ..., n[L]) of checked parameters."""
    pairs = layers(params)
    return (pairs[0][0].shape[1], *(W.shape[0] for W, _ in pairs))


def _shape(a: Any) -> tuple[int, ...] | None:
    shape = getattr(a, "shape", None)
    return None if shape is None else tuple(shape)


def describe_shape(a: Any, shape: tuple[int, ...] | None) -> str:
    """ "shape (3, 4)", or what `a` is when it is not an array at all."""
    if shape is not None:
        return f"shape {shape}"
    return (
        f"no shape: it is a {type(a).__name__}, not an array (convert it with "
        "jnp.asarray)"
    )


def _data_dtype_problem(name: str, a: Any) -> str | None:
    """Why X or Y cannot be cast to the parameters' real dtype, or None.

    Integers and booleans cast exactly; complex numbers would lose their
    imaginary parts (JAX only warns), and strings or objects do not cast.
    """
    dtype = getattr(a, "dtype", None)
    if a is None or dtype is None:
        return None  # a list or a scalar: its shape is reported, or it casts
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return (
            f"{name} has dtype {dtype}, expected real numbers: the imaginary "
            "parts would be dropped in the cast to the parameters' dtype"
        )
    if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)):
        return f"{name} has dtype {dtype}, expected real numbers"
    return None


def check_shapes(params: Any, X: Any = None, Y: Any = None) -> tuple[int, ...]:
    """Checks that the parameters (and X, Y if given) chain as the document's.

    Every mismatch found is reported, not only the first, in the document's
    notation, for example
    ``layer 2: W[2] has shape (3, 5), expected (n[2], n[1]) = (3, 4)``.

    Args:
      params: the parameters, see the module docstring.
      X: A[0], of shape (n[0], m), or None.
      Y: the labels, of shape (n[L], m), or None.

    Returns:
      The widths (n[0], ..., n[L]).

    Raises:
      ValueError: listing every mismatch.
    """
    pairs = layers(params)
    L = len(pairs)
    problems = []
    dtype = None

    x_shape = _shape(X) if X is not None else None
    if X is not None and (x_shape is None or len(x_shape) != 2):
        problems.append(
            f"A[0] (X) has {describe_shape(X, x_shape)}, expected (n[0], m): "
            "one example per column"
        )
        x_shape = None
    n_prev = x_shape[0] if x_shape else None
    n = [n_prev]
    for l, (W, b) in enumerate(pairs, start=1):
        w_shape, b_shape = _shape(W), _shape(b)
        if w_shape is None or len(w_shape) != 2:
            problems.append(
                f"layer {l}: W[{l}] has {describe_shape(W, w_shape)}, expected a "
                f"matrix (n[{l}], n[{l - 1}])"
            )
            n_l = b_shape[0] if b_shape else None
        else:
            n_l = w_shape[0]
            if n_l == 0:
                problems.append(
                    f"layer {l}: W[{l}] has shape {w_shape}, so n[{l}] = 0; "
                    "every layer needs at least one unit"
                )
            if n_prev is None:
                n_prev = w_shape[1]
                n[0] = n_prev
            if w_shape[1] != n_prev:
                source = "A[0] (X)" if l == 1 else f"W[{l - 1}]"
                problems.append(
                    f"layer {l}: W[{l}] has shape {w_shape}, expected "
                    f"(n[{l}], n[{l - 1}]) = ({n_l}, {n_prev}), "
                    f"n[{l - 1}] = {n_prev} being the rows of {source}"
                )
        if n_l is not None and b_shape != (n_l, 1):
            msg = (
                f"layer {l}: b[{l}] has {describe_shape(b, b_shape)}, expected "
                f"(n[{l}], 1) = ({n_l}, 1)"
            )
            if b_shape == (n_l,):
                msg += (
                    "; a flat bias would broadcast along the columns "
                    "(examples), so store it as a column: b.reshape(-1, 1)"
                )
            problems.append(msg)
        for name, a in ((f"W[{l}]", W), (f"b[{l}]", b)):
            a_dtype = getattr(a, "dtype", None)
            if a_dtype is None or a_dtype not in DTYPES:
                half = a_dtype in (jnp.float16, jnp.bfloat16)
                problems.append(
                    f"layer {l}: {name} has dtype {a_dtype}, expected float32 "
                    "or float64"
                    + (
                        " (half precision is not supported: cast with "
                        ".astype(jnp.float32))"
                        if half
                        else ""
                    )
                )
            elif dtype is None:
                dtype = (name, a_dtype)
            elif a_dtype != dtype[1]:
                problems.append(
                    f"layer {l}: {name} has dtype {a_dtype}, expected "
                    f"{dtype[1]} like {dtype[0]}"
                )
        n.append(n_l)
        n_prev = n_l

    for name, a in (("A[0] (X)", X), ("Y", Y)):
        if (problem := _data_dtype_problem(name, a)) is not None:
            problems.append(problem)
    m = x_shape[1] if x_shape else None
    if m == 0:
        problems.append("A[0] (X) has m = 0 columns; at least one example is needed")
    if Y is not None:
        y_shape = _shape(Y)
        expected = (n[L], m)
        if (
            y_shape is None
            or len(y_shape) != 2
            or (None not in expected and y_shape != expected)
        ):
            shown = "(n[L], m)" if None in expected else f"(n[L], m) = {expected}"
            msg = f"Y has {describe_shape(Y, y_shape)}, expected {shown}"
            if m is not None and y_shape == (m,) and n[L] == 1:
                msg += "; labels go one example per column: pass Y.reshape(1, -1)"
            elif m is not None and y_shape == (m, n[L]):
                msg += "; labels go one example per column: pass Y.T"
            problems.append(msg)
    if problems:
        raise ValueError("\n".join(problems))
    return tuple(n)
