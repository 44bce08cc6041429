"""Comparison of the hand-written gradients with jax.grad of the same cost.

This module, and the tests, are the only places where autodiff appears:
it is the reference the derivation is proven against.
"""

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from manual_bp._api import grad
from manual_bp._costs import cost as cost_fn
from manual_bp._optim import check_grads_match
from manual_bp._params import layers


class Tolerance(NamedTuple):
    """How close two evaluations of a gradient must be, for one dtype."""

    rtol: float  # hand-written against autodiff: a few hundred ulps, relative,
    atol: float  # with an absolute floor for entries that cancel to near zero
    fd_rtol: float  # against central differences, whose error is about
    fd_atol: float  # h^2 |third derivative| + eps |C| / h, h = eps^(1/3)


# The one tolerance table, keyed by dtype; the test suite uses it too.
TOLERANCES = {
    np.dtype(np.float64): Tolerance(1e-12, 1e-14, 1e-6, 1e-9),
    np.dtype(np.float32): Tolerance(1e-5, 1e-6, 2e-2, 1e-4),
}


def _row(dtype: Any) -> Tolerance:
    try:
        return TOLERANCES[np.dtype(dtype)]
    except KeyError:
        known = ", ".join(str(d) for d in TOLERANCES)
        raise ValueError(
            f"no tolerance for dtype {np.dtype(dtype)}; expected one of: {known}"
        ) from None


def tolerance(dtype: Any) -> tuple[float, float]:
    """(rtol, atol) of hand-written against autodiff values in `dtype`."""
    row = _row(dtype)
    return row.rtol, row.atol


def fd_tolerance(dtype: Any) -> tuple[float, float]:
    """(rtol, atol) of hand-written against central differences in `dtype`."""
    row = _row(dtype)
    return row.fd_rtol, row.fd_atol


@dataclasses.dataclass(frozen=True)
class Difference:
    """How far one hand-written quantity, e.g. dW[2], is from autodiff's."""

    name: str
    shape: tuple[int, ...]  # the hand-written array's shape
    max_abs: float  # max |manual - autodiff|
    max_rel: float  # max |manual - autodiff| / |autodiff| over nonzero autodiff
    ok: bool  # same shape, |manual - autodiff| <= atol + rtol |autodiff|
    expected_shape: tuple[int, ...] = ()  # autodiff's shape
    worst: tuple[int, ...] | None = None  # index furthest beyond tolerance
    value: float | None = None  # hand-written value at `worst`
    reference: float | None = None  # autodiff's value at `worst`

    def describe(self) -> str:
        """One line in the document's words: what differs, where, by how much."""
        if self.shape != self.expected_shape:
            return (
                f"{self.name} differs: shape {self.shape}, expected "
                f"{self.expected_shape}"
            )
        if self.ok:
            return f"{self.name} agrees: max abs error {self.max_abs:.3e}"
        return (
            f"{self.name} differs: max abs error {self.max_abs:.3e}, max rel "
            f"error {self.max_rel:.3e}; worst at {self.worst}: hand-written "
            f"{self.value:.10g}, autodiff {self.reference:.10g}"
        )


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The hand-written gradients against jax.grad, one row per dW[l], db[l]."""

    rows: tuple[Difference, ...]
    dtype: str
    rtol: float
    atol: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def verdict(self) -> str:
        if self.ok:
            return (
                f"matches jax.grad ({self.dtype}, within rtol {self.rtol:g} "
                f"and atol {self.atol:g})"
            )
        bad = ", ".join(r.name for r in self.rows if not r.ok)
        return (
            f"does not match jax.grad ({self.dtype}): {bad} differ beyond "
            f"rtol {self.rtol:g} and atol {self.atol:g}"
        )

    def to_dict(self) -> dict:
        return {
            "dtype": self.dtype,
            "rtol": self.rtol,
            "atol": self.atol,
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "ok": self.ok,
            "verdict": self.verdict,
        }

    def __str__(self) -> str:
        lines = [f"{'':8}{'shape':>10}{'max abs diff':>15}{'max rel diff':>15}"]
        for r in self.rows:
            shape = "x".join(map(str, r.shape))
            mark = "" if r.ok else "  <- differs"
            lines.append(
                f"{r.name:8}{shape:>10}{r.max_abs:>15.3e}{r.max_rel:>15.3e}{mark}"
            )
        lines.append(self.verdict)
        return "\n".join(lines)


def _nanmax(a: np.ndarray) -> float:
    """The largest entry, NaN if any entry is NaN, 0 for an empty array."""
    return float(np.max(a, initial=0.0))


def difference(
    name: str, manual: Any, reference: Any, rtol: float, atol: float
) -> Difference:
    """Compares one array with its reference by numpy.allclose's rule.

    NaN anywhere counts as a difference; so does a shape that differs.
    Infinities agree when they are equal (dA[L] when the sigmoid saturates).
    """
    a = np.asarray(manual, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        return Difference(name, a.shape, np.inf, np.inf, False, b.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(a == b, 0.0, np.abs(a - b))  # equal infinities agree
        rel = np.where(b != 0, err / np.abs(b), np.where(err == 0, 0.0, np.inf))
        excess = err / (atol + rtol * np.abs(b))
    excess = np.where(np.isnan(excess), np.inf, excess)
    worst = None
    if a.size:
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(excess), a.shape))
    return Difference(
        name=name,
        shape=a.shape,
        max_abs=_nanmax(err),
        max_rel=_nanmax(rel),
        ok=bool(np.all(excess <= 1)),
        expected_shape=b.shape,
        worst=worst,
        value=None if worst is None else float(a[worst]),
        reference=None if worst is None else float(b[worst]),
    )


@functools.partial(jax.jit, static_argnames=("activation", "cost"))
def autodiff_grad(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    cost: str = "cross_entropy",
) -> Any:
    """jax.grad of the same cost the hand-written backward differentiates."""
    dtype = layers(params)[0][0].dtype
    X, Y = jnp.asarray(X, dtype), jnp.asarray(Y, dtype)
    return jax.grad(cost_fn)(params, X, Y, activation, cost)


def compare(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
    grads: Any = None,
) -> Comparison:
    """Compares `manual_bp.grad` with jax.grad, layer by layer.

    Args:
      params, X, Y, activation, form, cost: as for `manual_bp.grad`.
      grads: gradients already computed by `manual_bp.grad`, to avoid
        computing them twice; computed here when None.

    Raises:
      ValueError: if the shapes do not chain, or if `grads` has another
        number of layers than `params` or a dW[l], db[l] of another shape
        than W[l], b[l].

    Returns:
      A `Comparison` with the largest absolute and relative difference of
      every dW[l] and db[l], and whether they agree within the dtype's
      tolerance (`TOLERANCES`).
    """
    if grads is None:
        grads = grad(params, X, Y, activation, form, cost)
    else:
        check_grads_match(params, grads)
    reference = autodiff_grad(params, X, Y, activation, cost)
    # The dtype the gradients were computed in: float64 parameters become
    # float32 when jax_enable_x64 is off, and are judged as float32.
    dtype = layers(grads)[0][0].dtype
    rtol, atol = tolerance(dtype)
    rows = []
    for l, ((dW, db), (rW, rb)) in enumerate(
        zip(layers(grads), layers(reference), strict=True), start=1
    ):
        rows.append(difference(f"dW[{l}]", dW, rW, rtol, atol))
        rows.append(difference(f"db[{l}]", db, rb, rtol, atol))
    return Comparison(tuple(rows), str(np.dtype(dtype)), rtol, atol)
