"""Data parallel gradients: the columns (examples) spread over a device mesh.

The m columns of X and Y are split over the devices of one mesh axis; every
device holds the whole of W[l] and b[l] and runs the forward and backward
pass on its own columns. The document's gradients are averages over all m
columns,

    dW[l] = (1/m) sum over columns j of delta[l]_j A[l-1]_j^T
    db[l] = (1/m) sum over columns j of delta[l]_j
    C     = (1/m) sum over columns j of the cost of column j

and a sum over columns held by different devices is the sum over devices
of each device's own sum: that is where `jax.lax.psum` appears below, once
per sum, each divided by the global m.

When m is not a multiple of the number of devices, X and Y are padded with
zero columns up to the next multiple, and a (1, m_padded) mask, True (1)
for a real column and False (0) for padding, keeps the padding out:
delta[L] is set to 0 in padded columns, so every delta[l] and every
contribution to dW[l] and db[l] is 0 there, and the cost terms of padded
columns are set to 0. Every sum is divided by the true m.

No autodiff entry point is called here: the gradients are the hand-written
backward pass of `manual_bp._backward`, with its sums over columns made
into sums over devices.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from manual_bp._api import _like_params
from manual_bp._backward import (
    FORMS,
    Derivation,
    activation_backward,
    output_dA,
)
from manual_bp._costs import check_cost, cost_of_output
from manual_bp._forward import forward
from manual_bp._params import check_shapes, layers

_STATIC = ("mesh", "axis_name", "activation", "form", "cost")


def make_data_mesh(n_devices: int | None = None, axis_name: str = "data") -> Mesh:
    """A 1-D mesh over the first `n_devices` of `jax.devices()`.

    Args:
      n_devices: how many devices; None for all of them (on several hosts,
        all hosts' devices).
      axis_name: the name of the mesh's one axis.

    Returns:
      A `jax.sharding.Mesh` of shape (n_devices,).

    Raises:
      ValueError: if `n_devices` is not between 1 and the number of devices.
    """
    devices = jax.devices()
    if n_devices is None:
        n_devices = len(devices)
    if (
        isinstance(n_devices, bool)
        or not isinstance(n_devices, int)
        or not 1 <= n_devices <= len(devices)
    ):
        raise ValueError(
            f"n_devices must be an integer from 1 to {len(devices)} (the devices "
            f"jax.devices() lists), got {n_devices!r}"
        )
    return jax.make_mesh(
        (n_devices,),
        (axis_name,),
        axis_types=(AxisType.Auto,),
        devices=devices[:n_devices],
    )


def _check_mesh(mesh: Any, axis_name: Any) -> int:
    """Checks that `axis_name` is an axis of `mesh`; returns its size.

    Raises:
      ValueError: if `mesh` is not a `jax.sharding.Mesh` or has no axis
        `axis_name`.
    """
    if not isinstance(mesh, Mesh):
        raise ValueError(
            f"mesh must be a jax.sharding.Mesh, for example "
            f"manual_bp.make_data_mesh(), got {type(mesh).__name__}"
        )
    if axis_name not in mesh.axis_names:
        raise ValueError(
            f"axis_name {axis_name!r} is not an axis of the mesh, whose axes "
            f"are {mesh.axis_names}; pass axis_name= one of them, or a mesh "
            f"made with manual_bp.make_data_mesh(axis_name={axis_name!r})"
        )
    return mesh.shape[axis_name]


def _per_device(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    mask: jax.Array,
    *,
    axis_name: str,
    m: int,
    activation: str,
    form: str,
    cost: str,
) -> tuple[jax.Array, Any]:
    """One device's forward and backward pass over its own columns.

    Args:
      params: W[l] (n[l], n[l-1]) and b[l] (n[l], 1), the same on every
        device.
      X: this device's columns of A[0], (n[0], m_device).
      Y: this device's labels, (n[L], m_device).
      mask: (1, m_device), True for a real column, False for padding.
      axis_name: the mesh axis the columns are split over.
      m: the number of real columns on all devices together.
      activation, form, cost: as in `data_parallel_grad`.

    Returns:
      (C, grads): C, and dW[l], db[l] in the parameters' structure, each
      summed over all devices' columns and divided by m, so the same on
      every device.
    """
    pairs = layers(params)
    L = len(pairs)
    dA = [None] * (L + 1)
    delta = [None] * (L + 1)
    dW = [None] * (L + 1)
    db = [None] * (L + 1)

    Z, A = forward(params, X, activation)

    # The cost of each column alone (m = 1), padding set to 0; then
    # C = (1/m) sum over columns j of the cost of column j, the columns of
    # every device summed by psum.
    column_costs = jax.vmap(
        lambda z, y: cost_of_output(z[:, None], y[:, None], cost), in_axes=1
    )(Z[L], Y)
    C = jax.lax.psum(jnp.sum(jnp.where(mask[0], column_costs, 0)), axis_name) / m

    dA[L] = output_dA(A[L], Y, cost)
    if form == "fused" and cost == "cross_entropy":
        delta[L] = A[L] - Y  # dA[L] * sigmoid'(Z[L]) simplified
    else:
        delta[L] = activation_backward(dA[L], Z[L], "sigmoid")  # output g
    # Padding contributes nothing from here on: each delta[l] of a padded
    # column is W[l+1].T @ 0 times g'(Z[l]), that is 0. `where`, not a
    # product, so that an inf or nan in dA[L] of a padded column (the
    # document form once the sigmoid saturates) stays out too.
    delta[L] = jnp.where(mask, delta[L], 0)
    for l in range(L, 0, -1):
        W = pairs[l - 1][0]
        if l < L:
            delta[l] = activation_backward(dA[l], Z[l], activation)
        # dW[l] = (1/m) delta[l] A[l-1]^T: the product sums this device's
        # columns, psum adds the other devices' sums.
        dW[l] = jax.lax.psum(delta[l] @ A[l - 1].T, axis_name) / m
        # db[l] = (1/m) row sums of delta[l], over the columns of every device
        db[l] = jax.lax.psum(jnp.sum(delta[l], axis=1, keepdims=True), axis_name) / m
        dA[l - 1] = W.T @ delta[l]

    d = Derivation(
        A=tuple(A),
        Z=tuple(Z),
        dA=tuple(dA),
        delta=tuple(delta),
        dW=tuple(dW),
        db=tuple(db),
    )
    return C, _like_params(params, d)


@functools.partial(jax.jit, static_argnames=_STATIC)
def data_parallel_grad(
    params: Any,
    X: jax.Array,
    Y: jax.Array,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    activation: str = "sigmoid",
    form: str = "fused",
    cost: str = "cross_entropy",
) -> tuple[jax.Array, Any]:
    """(C, grads) with the columns of X and Y split over the devices of a mesh.

    Equals `manual_bp.value_and_grad(params, X, Y, activation, form, cost)`,
    computed by `jax.shard_map`: each device runs the hand-written forward
    and backward pass on m / k of the columns (k devices on `axis_name`),
    and the sums over columns that make dW[l], db[l] and C are `psum`s over
    the devices, divided by the global m. Parameters are replicated. Axes
    of `mesh` other than `axis_name` hold copies of the same work.

    Args:
      params: the parameters, W[l] (n[l], n[l-1]) and b[l] (n[l], 1).
      X: A[0], (n[0], m), one example per column; cast to the parameters'
        dtype. Any m >= 1: when k does not divide m, zero columns pad it to
        a multiple of k and are masked out of every sum.
      Y: the labels, (n[L], m), entries in [0, 1]; cast likewise.
      mesh: a `jax.sharding.Mesh` with an axis `axis_name`; None for
        `make_data_mesh(axis_name=axis_name)`, all of `jax.devices()`.
      axis_name: the mesh axis the columns are split over.
      activation: g of the hidden layers; the output layer is a sigmoid.
      form: "fused" or "document"; see `manual_bp.backward`.
      cost: "cross_entropy" (the document's) or "quadratic".

    Returns:
      (C, grads): the scalar cost and dW[l], db[l] in the parameters' tree
      structure, shapes and dtypes, replicated over the mesh.

    Raises:
      ValueError: if the shapes do not chain (every mismatch is listed, in
        the document's notation), `axis_name` is not an axis of `mesh`, or
        `activation`, `form` or `cost` is unknown.
    """
    check_shapes(params, X, Y)
    if mesh is None:
        mesh = make_data_mesh(axis_name=axis_name)
    k = _check_mesh(mesh, axis_name)  # the devices the columns are split over
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of: {', '.join(FORMS)}")
    check_cost(cost)
    dtype = layers(params)[0][0].dtype
    X = jnp.asarray(X, dtype)
    Y = jnp.asarray(Y, dtype)

    m = X.shape[1]
    m_padded = -(-m // k) * k  # the next multiple of k
    X = jnp.pad(X, ((0, 0), (0, m_padded - m)))
    Y = jnp.pad(Y, ((0, 0), (0, m_padded - m)))
    mask = jnp.arange(m_padded)[None, :] < m  # (1, m_padded): real columns

    columns = P(None, axis_name)  # split the columns, keep the rows whole
    if mesh.axis_types[mesh.axis_names.index(axis_name)] == AxisType.Explicit:
        # An explicit axis (jax.make_mesh's default) wants the arrays placed
        # as in_specs says beforehand; an automatic one places them itself.
        X, Y, mask = jax.reshard((X, Y, mask), NamedSharding(mesh, columns))
    per_device = jax.shard_map(
        functools.partial(
            _per_device,
            axis_name=axis_name,
            m=m,
            activation=activation,
            form=form,
            cost=cost,
        ),
        mesh=mesh,
        in_specs=(P(), columns, columns, columns),
        out_specs=(P(), P()),  # C and the gradients: the same on every device
    )
    return per_device(params, X, Y, mask)
