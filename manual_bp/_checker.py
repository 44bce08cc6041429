"""The derivation checked quantity by quantity, and where it first goes wrong.

Autodiff's value of each intermediate comes from jax.grad taken with respect
to the intermediates themselves: zero "probes" are added to every Z[l] and
A[l] of an independent forward pass, and the gradient of the cost with
respect to a probe is the cost's derivative with respect to that quantity.
Times m (the derivation's dA and delta are per example, the cost is an
average) these are the document's dA[l] and delta[l].

The parameters' gradients are also checked against central finite
differences, which rely on no derivative rule at all.
"""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from manual_bp._api import derivation
from manual_bp._backward import Derivation
from manual_bp._check import Difference, difference, fd_tolerance, tolerance
from manual_bp._costs import cost_of_output
from manual_bp._params import check_shapes, layers

# Central differences perturb this many parameter entries at once (one batch
# of the lax.map in _central); the command line's memory guard counts them.
FD_BATCH = 64

# g of the hidden layers as jax defines them, independent of _activations.
REFERENCE_G = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "identity": lambda z: z,
}
KINKED = ("relu", "leaky_relu")  # g' jumps at z = 0
FD_CHOICES = ("sample", "all", "none")


def _reference_forward(pairs, X, activation, probes_Z, probes_A):
    g = REFERENCE_G[activation]
    L = len(pairs)
    Z, A = [None], [X + probes_A[0]]
    for l, (W, b) in enumerate(pairs, start=1):
        Z.append(W @ A[l - 1] + b + probes_Z[l])
        A.append((jax.nn.sigmoid if l == L else g)(Z[l]) + probes_A[l])
    return Z, A


def _cost_of_A(A_L: jax.Array, Y: jax.Array, cost: str) -> jax.Array:
    """The cost written as a function of A[L], for autodiff's dA[L]."""
    m = A_L.shape[1]
    if cost == "quadratic":
        return jnp.sum((A_L - Y) ** 2) / (2 * m)
    return -jnp.sum(Y * jnp.log(A_L) + (1 - Y) * jnp.log(1 - A_L)) / m


@functools.partial(jax.jit, static_argnames=("activation", "cost"))
def autodiff_derivation(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    cost: str = "cross_entropy",
) -> Derivation:
    """Every quantity of the derivation as autodiff and jax.nn give it.

    Z[l] and A[l] come from a forward pass written with jax.nn; dA[l] is
    m dC/dA[l], delta[l] is m dC/dZ[l], dW[l] and db[l] are dC/dW[l] and
    dC/db[l], all by jax.grad. X and Y must already have the parameters'
    dtype.
    """
    pairs = layers(params)
    L, m = len(pairs), X.shape[1]
    probes_Z = [None] + [jnp.zeros((W.shape[0], m), X.dtype) for W, _ in pairs]
    probes_A = [jnp.zeros_like(X), *probes_Z[1:]]

    def C(pairs, probes_Z, probes_A):
        Z, A = _reference_forward(pairs, X, activation, probes_Z, probes_A)
        return cost_of_output(Z[L], Y, cost), (Z, A)

    grads, (Z, A) = jax.grad(C, argnums=(0, 1, 2), has_aux=True)(
        pairs, probes_Z, probes_A
    )
    d_pairs, d_Z, d_A = grads
    # The cost above is evaluated from Z[L], so A[L]'s probe does not reach
    # it; dC/dA[L] is taken from the cost written in A[L].
    dA_L = jax.grad(_cost_of_A)(A[L], Y, cost)
    return Derivation(
        A=tuple(A),
        Z=tuple(Z),
        dA=(*tuple(m * d for d in d_A[:L]), m * dA_L),
        delta=(None, *(m * d for d in d_Z[1:])),
        dW=(None, *(dW for dW, _ in d_pairs)),
        db=(None, *(db for _, db in d_pairs)),
    )


@dataclasses.dataclass(frozen=True)
class FiniteDifference:
    """One parameter entry's hand-written gradient against a central difference."""

    name: str  # "W[2]" or "b[1]"
    index: tuple[int, int]
    hand_written: float
    finite_difference: float
    ok: bool
    kink: bool  # the step moves a hidden Z across relu's kink: not counted

    def describe(self) -> str:
        return (
            f"d{self.name}{list(self.index)}: hand-written "
            f"{self.hand_written:.10g}, finite difference "
            f"{self.finite_difference:.10g}"
            + ("  (step crosses a kink)" if self.kink else "")
        )


def _fd_indices(shape, fd: str, samples: int, rng) -> list[tuple[int, int]]:
    size = int(np.prod(shape))
    if fd == "all" or size <= samples:
        flat = np.arange(size)
    else:
        flat = np.sort(rng.choice(size, samples, replace=False))
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]


def finite_differences(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    grads: Any,
    activation: str = "sigmoid",
    cost: str = "cross_entropy",
    fd: str = "sample",
    samples: int = 8,
    dtype: Any = np.float64,
    seed: int = 0,
) -> tuple[FiniteDifference, ...]:
    """Central differences of the cost for entries of every W[l] and b[l].

    (C(p + h e) - C(p - h e)) / 2h with h = eps^(1/3) max(1, |p|), eps of
    `dtype`, which balances the step's truncation error against rounding.

    Args:
      params, X, Y, activation, cost: the network and its data.
      grads: the hand-written gradients to test, in the layout of `params`.
      fd: "sample" checks `samples` random entries of each array (all of a
        smaller one), "all" every entry.
      dtype: the dtype the differences are computed in; float64 by default,
        which needs jax_enable_x64.
      seed: chooses the sampled entries.

    Returns:
      One `FiniteDifference` per entry checked.

    Raises:
      ValueError: for float64 without jax_enable_x64, or an unknown `fd`.
    """
    if fd not in ("sample", "all"):
        raise ValueError(f"unknown fd {fd!r}; expected 'sample' or 'all'")
    _check_seed(seed)
    dtype = np.dtype(dtype)
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            "finite differences in float64 need jax_enable_x64: call "
            "jax.config.update('jax_enable_x64', True) first, or compute "
            "them in float32, much looser: fd_dtype=np.float32 for check, "
            "dtype=np.float32 for finite_differences"
        )
    pairs = [(jnp.asarray(W, dtype), jnp.asarray(b, dtype)) for W, b in layers(params)]
    X, Y = jnp.asarray(X, dtype), jnp.asarray(Y, dtype)
    flat, _ = ravel_pytree(pairs)
    offsets = np.cumsum([0] + [a.size for pair in pairs for a in pair])

    rng = np.random.default_rng(seed)
    names, positions, hand = [], [], []
    for k, ((W, b), (dW, db)) in enumerate(zip(pairs, layers(grads), strict=True)):
        for j, (name, a, g) in enumerate(
            ((f"W[{k + 1}]", W, dW), (f"b[{k + 1}]", b, db))
        ):
            for index in _fd_indices(a.shape, fd, samples, rng):
                names.append((name, index))
                positions.append(
                    offsets[2 * k + j] + np.ravel_multi_index(index, a.shape)
                )
                # A gradient of the wrong shape has no entry to compare: NaN
                # marks every entry of it as differing.
                g = np.asarray(g)
                hand.append(float(g[index]) if g.shape == a.shape else np.nan)
    eps = float(np.finfo(dtype).eps)
    steps = eps ** (1 / 3) * np.maximum(1.0, np.abs(np.asarray(flat)[positions]))
    diffs, kinks = _central(
        pairs,
        X,
        Y,
        jnp.asarray(positions),
        jnp.asarray(steps, dtype),
        activation=activation,
        cost=cost,
    )
    # The hand-written values carry their own dtype's rounding (float32
    # gradients against float64 differences): allow for the larger.
    rtol, atol = np.maximum(fd_tolerance(dtype), tolerance(layers(grads)[0][0].dtype))
    entries = []
    for (name, index), h, fd_value, kink in zip(
        names, hand, np.asarray(diffs), np.asarray(kinks), strict=True
    ):
        ok = bool(abs(h - fd_value) <= atol + rtol * abs(fd_value))
        entries.append(
            FiniteDifference(name, index, h, float(fd_value), ok, bool(kink))
        )
    return tuple(entries)


@functools.partial(jax.jit, static_argnames=("activation", "cost"))
def _central(pairs, X, Y, positions, steps, activation, cost):
    """Central differences at `positions` of the flattened parameters."""
    flat, unravel = ravel_pytree(pairs)
    no_probes = [0.0] * (len(pairs) + 1)

    def cost_and_hidden_Z(p):
        Z, _ = _reference_forward(unravel(p), X, activation, no_probes, no_probes)
        return cost_of_output(Z[-1], Y, cost), Z[1:-1]

    def one(position_and_step):
        position, h = position_and_step
        C_plus, Z_plus = cost_and_hidden_Z(flat.at[position].add(h))
        C_minus, Z_minus = cost_and_hidden_Z(flat.at[position].add(-h))
        crosses = jnp.array(False)
        if activation in KINKED:
            for zp, zm in zip(Z_plus, Z_minus, strict=True):
                crosses |= jnp.any((zp > 0) != (zm > 0))
        return (C_plus - C_minus) / (2 * h), crosses

    return jax.lax.map(one, (positions, steps), batch_size=FD_BATCH)


def _check_seed(seed: Any) -> None:
    """Raises ValueError unless `seed` can seed NumPy's generator."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _check_derivation_depth(d: Derivation, sizes: tuple[int, ...]) -> None:
    """Raises ValueError unless `d` has L + 1 entries (l = 0..L) in every field.

    A quantity of the wrong shape is a finding, reported in its row; a
    derivation of a network of another depth has no row to compare with.
    """
    L = len(sizes) - 1
    short = [q for q in Derivation._fields if len(getattr(d, q)) != L + 1]
    if short:
        raise ValueError(
            "hand_written is a derivation of another network: "
            + ", ".join(f"{q} has {len(getattr(d, q))} entries" for q in short)
            + f"; expected L + 1 = {L + 1} (l = 0..{L}) for the widths n[0],...,"
            f"n[{L}] = {','.join(map(str, sizes))}"
        )


def _in_order(L: int) -> list[tuple[str, int]]:
    """The quantities in the derivation's order: forward, then backward."""
    order = [(q, l) for l in range(1, L + 1) for q in ("Z", "A")]
    for l in range(L, 0, -1):
        order += [("dA", l), ("delta", l), ("dW", l), ("db", l)]
    return [*order, ("dA", 0)]


@dataclasses.dataclass(frozen=True)
class Report:
    """The derivation against autodiff, quantity by quantity, and against
    finite differences, entry by entry."""

    rows: tuple[Difference, ...]  # in the derivation's order
    finite_differences: tuple[FiniteDifference, ...]
    settings: dict

    @property
    def first_divergence(self) -> Difference | None:
        """The first quantity that differs, walking the derivation in order."""
        return next((r for r in self.rows if not r.ok), None)

    @property
    def fd_failures(self) -> tuple[FiniteDifference, ...]:
        return tuple(e for e in self.finite_differences if not e.ok and not e.kink)

    @property
    def ok(self) -> bool:
        return self.first_divergence is None and not self.fd_failures

    @property
    def verdict(self) -> str:
        first = self.first_divergence
        if first is not None:
            return first.describe()
        if self.fd_failures:
            return f"finite differences disagree: {self.fd_failures[0].describe()}"
        checked = "autodiff"
        counted = [e for e in self.finite_differences if not e.kink]
        if counted:
            checked += " and finite differences"
        elif self.finite_differences:
            checked += " (every finite-difference step crosses a relu kink)"
        return f"every quantity of the derivation agrees with {checked}"

    def to_dict(self) -> dict:
        first = self.first_divergence
        return {
            **self.settings,
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "first_divergence": None if first is None else first.name,
            "finite_differences": [
                dataclasses.asdict(e) for e in self.finite_differences
            ],
            "ok": self.ok,
            "verdict": self.verdict,
        }

    def __str__(self) -> str:
        s = self.settings
        widths = "-".join(map(str, s["sizes"]))
        lines = [
            f"network {widths}, m = {s['m']}, {s['activation']} hidden, "
            f"{s['cost']} cost, {s['form']} form, {s['dtype']}; tolerance "
            f"rtol {s['rtol']:g}, atol {s['atol']:g}",
            f"{'quantity':10}{'shape':>10}{'max abs err':>14}{'max rel err':>14}"
            f"{'worst at':>12}",
        ]
        for r in self.rows:
            shape = "x".join(map(str, r.shape))
            worst = "" if r.ok or r.worst is None else str(r.worst).replace(" ", "")
            mark = "" if r.ok else "  <- differs"
            lines.append(
                f"{r.name:10}{shape:>10}{r.max_abs:>14.3e}{r.max_rel:>14.3e}"
                f"{worst:>12}{mark}"
            )
        if self.finite_differences:
            kinks = sum(e.kink for e in self.finite_differences)
            lines.append(
                f"finite differences ({s['fd_dtype']}, central, h = eps^(1/3) "
                f"max(1, |p|)): {len(self.finite_differences)} entries, "
                f"{len(self.fd_failures)} differ"
                + (f", {kinks} skipped: the step crosses a relu kink" if kinks else "")
            )
            lines += [f"  {e.describe()}" for e in self.fd_failures[:5]]
        lines.append(("ok: " if self.ok else "FAIL: ") + self.verdict)
        return "\n".join(lines)


def check(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    activation: str = "sigmoid",
    cost: str = "cross_entropy",
    form: str = "fused",
    *,
    hand_written: Derivation | None = None,
    fd: str = "sample",
    fd_samples: int = 8,
    fd_dtype: Any = np.float64,
    seed: int = 0,
) -> Report:
    """Checks every quantity of the derivation against autodiff.

    Args:
      params, X, Y, activation, cost, form: as for `manual_bp.grad`
        (note the order: cost comes before form here, as in `manual_cost`).
      hand_written: the `Derivation` to check; by default manual_bp's own,
        `manual_bp.derivation(params, X, Y, activation, form, cost)`. Pass
        your own to find where your derivation goes wrong.
      fd: finite differences of the parameters: "sample" (`fd_samples`
        random entries of each W[l] and b[l]), "all", or "none".
      fd_dtype: the dtype of the finite differences (float64 needs
        jax_enable_x64).
      seed: chooses the sampled entries.

    Returns:
      A `Report`: one row per quantity Z[l], A[l] (l = 1..L), then dA[l],
      delta[l], dW[l], db[l] from l = L down to 1, then dA[0]; the first
      that differs; and the finite differences.

    Raises:
      ValueError: if the shapes do not chain, for an unknown option, a
        `fd_samples` below 1, a negative `seed`, or a `hand_written` that is
        not a Derivation of a network of this depth (a quantity of the
        wrong shape is a finding, reported in its row).
    """
    if fd not in FD_CHOICES:
        raise ValueError(f"unknown fd {fd!r}; expected one of: {', '.join(FD_CHOICES)}")
    if fd == "sample" and (
        isinstance(fd_samples, bool)
        or not isinstance(fd_samples, int)
        or fd_samples < 1
    ):
        raise ValueError(f"fd_samples must be a positive integer, got {fd_samples!r}")
    if hand_written is not None and not isinstance(hand_written, Derivation):
        raise ValueError(
            "hand_written must be a Derivation (as manual_bp.derivation returns, "
            f"with A, Z, dA, delta, dW and db by layer), got "
            f"{type(hand_written).__name__}"
        )
    _check_seed(seed)
    sizes = check_shapes(params, X, Y)
    dtype = layers(params)[0][0].dtype
    X, Y = jnp.asarray(X, dtype), jnp.asarray(Y, dtype)
    if hand_written is None:
        hand_written = derivation(params, X, Y, activation, form, cost)
    else:
        _check_derivation_depth(hand_written, sizes)
    reference = autodiff_derivation(params, X, Y, activation, cost)
    rtol, atol = tolerance(dtype)
    rows = tuple(
        difference(
            f"{q}[{l}]",
            getattr(hand_written, q)[l],
            getattr(reference, q)[l],
            rtol,
            atol,
        )
        for q, l in _in_order(len(sizes) - 1)
    )
    fds = ()
    if fd != "none":
        grads = [(hand_written.dW[l], hand_written.db[l]) for l in range(1, len(sizes))]
        fds = finite_differences(
            params, X, Y, grads, activation, cost, fd, fd_samples, fd_dtype, seed
        )
    settings = {
        "sizes": list(sizes),
        "m": int(X.shape[1]),
        "activation": activation,
        "cost": cost,
        "form": form,
        "dtype": str(np.dtype(dtype)),
        "rtol": rtol,
        "atol": atol,
        "fd": fd,
        "fd_dtype": str(np.dtype(fd_dtype)),
    }
    return Report(rows, fds, settings)
