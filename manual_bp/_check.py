"""Comparison of the hand-written gradients with jax.grad of the same cost.

This module, and the tests, are the only places where autodiff appears:
it is the reference the derivation is proven against.
"""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manual_bp._api import grad
from manual_bp._costs import cost as cost_fn
from manual_bp._params import layers

# (rtol, atol) for comparing two evaluations of the same gradient, by dtype:
# a few hundred units in the last place, relative, with an absolute floor
# for entries that cancel to nearly zero. The test suite uses this table.
TOLERANCES = {
    np.dtype(np.float64): (1e-12, 1e-14),
    np.dtype(np.float32): (1e-5, 1e-6),
}


def tolerance(dtype: Any) -> tuple[float, float]:
    """(rtol, atol) for `dtype`; raises ValueError for dtypes not in the table."""
    try:
        return TOLERANCES[np.dtype(dtype)]
    except KeyError:
        known = ", ".join(str(d) for d in TOLERANCES)
        raise ValueError(
            f"no tolerance for dtype {np.dtype(dtype)}; expected one of: {known}"
        ) from None


@dataclasses.dataclass(frozen=True)
class Difference:
    """How far one gradient, e.g. dW[2], is from autodiff's."""

    name: str
    shape: tuple[int, ...]
    max_abs: float  # max |manual - autodiff|
    max_rel: float  # max |manual - autodiff| / |autodiff| over nonzero autodiff
    ok: bool  # |manual - autodiff| <= atol + rtol |autodiff| everywhere


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


def difference(name: str, manual: Any, reference: Any, rtol: float, atol: float):
    """Compares one array with its reference, numpy.allclose's rule."""
    a = np.asarray(manual, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    err = np.abs(a - b)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(b != 0, err / np.abs(b), np.where(err == 0, 0.0, np.inf))
    ok = bool(np.all(err <= atol + rtol * np.abs(b))) and a.shape == b.shape
    return Difference(
        name=name,
        shape=tuple(a.shape),
        max_abs=float(err.max(initial=0.0)),
        max_rel=float(rel.max(initial=0.0)),
        ok=ok,
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

    Returns:
      A `Comparison` with the largest absolute and relative difference of
      every dW[l] and db[l], and whether they agree within the dtype's
      tolerance (`TOLERANCES`).
    """
    if grads is None:
        grads = grad(params, X, Y, activation, form, cost)
    reference = autodiff_grad(params, X, Y, activation, cost)
    dtype = layers(params)[0][0].dtype
    rtol, atol = tolerance(dtype)
    rows = []
    for l, ((dW, db), (rW, rb)) in enumerate(
        zip(layers(grads), layers(reference), strict=True), start=1
    ):
        rows.append(difference(f"dW[{l}]", dW, rW, rtol, atol))
        rows.append(difference(f"db[{l}]", db, rb, rtol, atol))
    return Comparison(tuple(rows), str(np.dtype(dtype)), rtol, atol)
