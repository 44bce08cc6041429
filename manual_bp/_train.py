"""Gradient descent on the hand-written gradients, epoch by epoch.

Every step is the document's update for l = 1..L,

    W[l] -= lr dW[l],   b[l] -= lr db[l],

with dW[l], db[l] from `manual_bp.grad`, the hand-written backward pass;
no autodiff is involved. An epoch is one pass over the training examples
(the columns of X). With a batch size B < m the columns are shuffled at the
start of each epoch (key: the seed's key folded with the epoch number), cut
into m // B mini-batches of B columns and, when B does not divide m, a last
one of the m mod B columns left over. With `batch_size=None`, or B >= m, an
epoch is exactly one step on all the columns in their given order, with no
shuffling, so the arithmetic can be reproduced by any other implementation.

An epoch is one jit-compiled call: a `jax.lax.scan` of the steps over its
mini-batches, then the cost and accuracy on the training and validation
columns at the epoch's final parameters.

Standardised features, x' = (x - mu) / sigma with mu and sigma of the
training columns, can be folded into layer 1 so that the parameters apply
to the raw features: W[1] / sigma^T and b[1] - (W[1] / sigma^T) mu give the
same Z[1] on x as W[1], b[1] give on x'.
"""

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from manual_bp._api import grad
from manual_bp._costs import check_cost, cost_of_output
from manual_bp._forward import forward
from manual_bp._io import check_data
from manual_bp._optim import sgd_step
from manual_bp._params import Layer, check_shapes, layers


class EpochStats(NamedTuple):
    """The costs and accuracies after one epoch; validation None without one.

    The accuracy is the fraction of the entries of Y (n[L], m) that the
    prediction A[L] > 1/2 matches: the fraction of examples when n[L] = 1.
    """

    epoch: int
    train_cost: float
    train_accuracy: float
    val_cost: float | None
    val_accuracy: float | None


class TrainResult(NamedTuple):
    """The trained parameters and one `EpochStats` per epoch."""

    params: tuple[Layer, ...]
    history: tuple[EpochStats, ...]


class DivergenceError(RuntimeError):
    """The cost or the parameters stopped being finite during training.

    Attributes:
      epoch: the epoch (counted from 1) after which it was noticed.
      history: the `EpochStats` of the epochs before it.
    """

    def __init__(self, message: str, epoch: int, history: tuple[EpochStats, ...]):
        super().__init__(message)
        self.epoch = epoch
        self.history = history


class Standardization(NamedTuple):
    """mu and sigma of each feature, both (n[0], 1); x' = (x - mu) / sigma."""

    mu: np.ndarray
    sigma: np.ndarray


# Data preparation.


def check_labels(Y: Any, source: str = "data") -> None:
    """Raises ValueError unless every label is exactly 0 or 1.

    Accuracy compares the prediction A[L] > 1/2 with the label, which needs
    hard labels; `manual_bp.grad` itself accepts any label in [0, 1].
    """
    Y = np.asarray(Y)
    soft = (Y != 0) & (Y != 1)
    if soft.any():
        index = tuple(int(i) for i in np.unravel_index(np.argmax(soft), Y.shape))
        count = int(soft.sum())
        more = f" ({count - 1} more)" if count > 1 else ""
        raise ValueError(
            f"{source}: Y has {Y[index].item()!r} at {index}, expected a label "
            f"0 or 1: accuracy counts hard labels{more}"
        )


def split(
    X: Any, Y: Any, val_fraction: float, key: jax.Array
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Splits the columns into a training and a validation set.

    Args:
      X: A[0], (n[0], m).
      Y: the labels, (n[L], m).
      val_fraction: the share of the m columns for validation, in [0, 1):
        round(val_fraction m) of them, at least one if val_fraction > 0.
      key: the `jax.random` key of the shuffle that picks them.

    Returns:
      (X_train, Y_train, X_val, Y_val) as NumPy arrays, (n[0], m_train),
      (n[L], m_train), (n[0], m_val), (n[L], m_val). With val_fraction = 0
      the training set is X, Y in their order and the validation set has
      m_val = 0 columns.

    Raises:
      ValueError: if val_fraction is outside [0, 1) or no training column
        is left.
    """
    X, Y = np.asarray(X), np.asarray(Y)
    if not 0 <= val_fraction < 1:
        raise ValueError(
            f"the validation fraction must be in [0, 1), got {val_fraction}"
        )
    m = X.shape[1]
    m_val = max(1, round(val_fraction * m)) if val_fraction > 0 else 0
    if m_val >= m:
        raise ValueError(
            f"the training split is empty: a validation fraction of "
            f"{val_fraction} takes {m_val} of the m = {m} examples, leaving none "
            "to train on"
        )
    if m_val == 0:
        return X, Y, X[:, :0], Y[:, :0]
    order = np.asarray(jax.random.permutation(key, m))
    train, val = order[m_val:], order[:m_val]
    return X[:, train], Y[:, train], X[:, val], Y[:, val]


def standardization(X: Any) -> Standardization:
    """mu and sigma of each feature (row) of X (n[0], m).

    A constant feature (sigma = 0) gets sigma = 1, so it is only centred.
    """
    X = np.asarray(X, np.float64)
    mu = X.mean(axis=1, keepdims=True)
    sigma = X.std(axis=1, keepdims=True)
    return Standardization(mu, np.where(sigma > 0, sigma, 1.0))


def standardize(X: Any, s: Standardization) -> np.ndarray:
    """(X - mu) / sigma, column by column, in X's dtype; X is (n[0], m)."""
    X = np.asarray(X)
    return ((X - s.mu) / s.sigma).astype(X.dtype)


def fold(params: Any, s: Standardization) -> tuple[Layer, ...]:
    """Parameters on standardised features -> the same network on raw ones.

    W[1] becomes W[1] / sigma^T and b[1] becomes b[1] - (W[1] / sigma^T) mu,
    so W[1] x + b[1] equals the original W[1] (x - mu) / sigma + b[1].
    """
    (W, b), *rest = layers(params)
    W_raw = W / jnp.asarray(s.sigma.T, W.dtype)
    b_raw = b - W_raw @ jnp.asarray(s.mu, W.dtype)
    return (Layer(W_raw, b_raw), *(Layer(W_l, b_l) for W_l, b_l in rest))


def unfold(params: Any, s: Standardization) -> tuple[Layer, ...]:
    """The inverse of `fold`: raw-feature parameters -> standardised ones."""
    (W, b), *rest = layers(params)
    W_std = W * jnp.asarray(s.sigma.T, W.dtype)
    b_std = b + W @ jnp.asarray(s.mu, W.dtype)
    return (Layer(W_std, b_std), *(Layer(W_l, b_l) for W_l, b_l in rest))


# Training.


def _evaluate(
    params: Any, X: jax.Array, Y: jax.Array, activation: str, cost: str
) -> tuple[jax.Array, jax.Array]:
    """(C, correct) on the columns of X; C is NaN and correct 0 when m = 0.

    correct counts the entries of Y (n[L], m) that the prediction
    A[L] > 1/2 matches.
    """
    if X.shape[1] == 0:
        return jnp.array(jnp.nan, X.dtype), jnp.array(0)
    Z, _ = forward(params, X, activation)
    C = cost_of_output(Z[-1], Y, cost)
    correct = jnp.sum((Z[-1] > 0) == (Y > 0.5))  # A[L] > 1/2 iff Z[L] > 0
    return C, correct


def _as_batches(A: jax.Array, count: int) -> jax.Array:
    """(n, count B) -> (count, n, B): consecutive column blocks, stacked."""
    n, columns = A.shape
    return A.reshape(n, count, columns // count).transpose(1, 0, 2)


@functools.partial(jax.jit, static_argnames=("activation", "cost", "batch_size"))
def _epoch(
    params: Any,
    key: jax.Array,
    X: jax.Array,
    Y: jax.Array,
    X_val: jax.Array,
    Y_val: jax.Array,
    learning_rate: float,
    activation: str,
    cost: str,
    batch_size: int | None,
) -> tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """One epoch of steps, then (C, correct) of both splits and finiteness."""

    def step(params: Any, batch: tuple[jax.Array, jax.Array]) -> tuple[Any, None]:
        X_b, Y_b = batch
        grads = grad(params, X_b, Y_b, activation, "fused", cost)
        return sgd_step(params, grads, learning_rate), None

    m = X.shape[1]
    if batch_size is None or batch_size >= m:
        params, _ = step(params, (X, Y))
    else:
        order = jax.random.permutation(key, m)
        X_s, Y_s = X[:, order], Y[:, order]
        count = m // batch_size
        full = count * batch_size
        batches = (_as_batches(X_s[:, :full], count), _as_batches(Y_s[:, :full], count))
        params, _ = jax.lax.scan(step, params, batches)
        if full < m:
            params, _ = step(params, (X_s[:, full:], Y_s[:, full:]))

    train_C, train_correct = _evaluate(params, X, Y, activation, cost)
    val_C, val_correct = _evaluate(params, X_val, Y_val, activation, cost)
    finite = jnp.all(
        jnp.array([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)])
    )
    return params, train_C, train_correct, val_C, val_correct, finite


def train(
    params: Any,
    X: Any,
    Y: Any,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int | None = None,
    activation: str = "tanh",
    cost: str = "cross_entropy",
    key: jax.Array | None = None,
    X_val: Any = None,
    Y_val: Any = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Trains by gradient descent on `manual_bp.grad`'s gradients.

    Args:
      params: the starting parameters, W[l] (n[l], n[l-1]), b[l] (n[l], 1),
        float32 or float64; training runs in their dtype.
      X: the training examples A[0], (n[0], m), m >= 1.
      Y: their labels, (n[L], m), each 0 or 1.
      epochs: the number of passes over the columns, >= 1.
      learning_rate: lr in W[l] -= lr dW[l], a positive finite number.
      batch_size: columns per step; None (or >= m) for one full-batch step
        per epoch, unshuffled.
      activation: g of the hidden layers; the output layer is a sigmoid.
      cost: "cross_entropy" or "quadratic".
      key: the `jax.random` key of the shuffles (default key 0).
      X_val: validation examples (n[0], m_val), or None for none.
      Y_val: their labels (n[L], m_val), each 0 or 1.
      on_epoch: called with each epoch's `EpochStats`, e.g. for progress.

    Returns:
      A `TrainResult`: the final parameters (as `Layer`s) and the history.

    Raises:
      ValueError: for a bad argument, labels other than 0 and 1, m = 0, or
        shapes that do not chain (every mismatch in the document's
        notation).
      DivergenceError: when the training cost or a parameter is NaN or infinite
        after an epoch; the message names the epoch.
    """
    _check_settings(epochs, learning_rate, batch_size, cost)
    params = tuple(Layer(jnp.asarray(W), jnp.asarray(b)) for W, b in layers(params))
    dtype = params[0].W.dtype
    X, Y = jnp.asarray(X, dtype), jnp.asarray(Y, dtype)
    if X.ndim == 2 and X.shape[1] == 0:
        raise ValueError("the training set is empty: X has m = 0 columns")
    if (X_val is None) != (Y_val is None):
        raise ValueError(
            "X_val and Y_val go together: pass both, or neither for no validation set"
        )
    # Values first (NaN would otherwise surface as divergence), then shapes.
    check_data(X, Y, "training set")
    check_shapes(params, X, Y)
    check_labels(Y, "training labels")
    has_val = X_val is not None
    if not has_val:  # an empty set keeps _epoch's signature
        X_val = jnp.zeros((X.shape[0], 0), dtype)
        Y_val = jnp.zeros((Y.shape[0], 0), dtype)
    X_val, Y_val = jnp.asarray(X_val, dtype), jnp.asarray(Y_val, dtype)
    if has_val:
        if X_val.ndim == 2 and X_val.shape[1] == 0:
            raise ValueError(
                "the validation set is empty: X_val has m = 0 columns; pass "
                "X_val=None and Y_val=None for no validation set"
            )
        check_data(X_val, Y_val, "validation set")
        try:
            check_shapes(params, X_val, Y_val)
        except ValueError as err:
            lines = str(err).splitlines()
            raise ValueError(
                "\n".join(f"validation set: {line}" for line in lines)
            ) from None
        check_labels(Y_val, "validation labels")
    key = jax.random.key(0) if key is None else key

    history = []
    for epoch in range(1, epochs + 1):
        params, *stats, finite = _epoch(
            params,
            jax.random.fold_in(key, epoch),
            X,
            Y,
            X_val,
            Y_val,
            learning_rate,
            activation,
            cost,
            batch_size,
        )
        train_C, train_correct, val_C, val_correct = (s.item() for s in stats)
        if not (math.isfinite(train_C) and bool(finite)):
            what = (
                f"the training cost is {train_C}"
                if not math.isfinite(train_C)
                else f"a parameter is no longer finite (training cost {train_C:.6g})"
            )
            raise DivergenceError(
                f"training diverged at epoch {epoch} of {epochs}: {what}; try a "
                f"smaller learning rate than {learning_rate:g}",
                epoch,
                tuple(history),
            )
        row = EpochStats(
            epoch,
            train_C,
            train_correct / Y.size,
            val_C if has_val else None,
            val_correct / Y_val.size if has_val else None,
        )
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return TrainResult(params, tuple(history))


def _check_settings(
    epochs: int, learning_rate: float, batch_size: int | None, cost: str
) -> None:
    problems = []
    if (
        isinstance(epochs, bool)
        or not isinstance(epochs, int | np.integer)
        or epochs < 1
    ):
        problems.append(f"epochs must be an integer >= 1, got {epochs!r}")
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, int | float | np.number)
        or not (math.isfinite(learning_rate) and learning_rate > 0)
    ):
        problems.append(
            f"the learning rate must be a positive finite number, got {learning_rate!r}"
        )
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or batch_size < 1
    ):
        problems.append(
            f"the batch size must be an integer >= 1 or None, got {batch_size!r}"
        )
    if problems:
        raise ValueError("\n".join(problems))
    check_cost(cost)
