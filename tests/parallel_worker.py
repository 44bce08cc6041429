"""Runs data_parallel_grad on several CPU devices, for tests/test_parallel.py.

Not a test module (pytest collects test_*.py only): test_parallel.py runs it
in a fresh process whose environment holds

    XLA_FLAGS=--xla_force_host_platform_device_count=8

because XLA reads that flag once, when JAX first starts its CPU backend, and
the test process has started it already with one device. Usage:

    python tests/parallel_worker.py '[{"id": "8dev-m13", "devices": 8, "m": 13, ...}]'

Each case is compared with the single-device manual_bp.value_and_grad; the
result, printed as JSON on stdout, maps each case id to None (passed) or to
the failure's message.
"""

import itertools
import json
import sys
import traceback

import chex
import jax
import jax.numpy as jnp
import numpy as np

import manual_bp as mb
from manual_bp._parallel import data_parallel_grad, make_data_mesh

# As tests/conftest.py: before any array is made (importing makes none).
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

DTYPES = {"float64": jnp.float64, "float32": jnp.float32}


def problem(sizes, m, dtype, layout, seed=0):
    """Seeded parameters with nonzero biases, X, and 0/1 labels, from NumPy.

    `layout` "layer" gives a tuple of mb.Layer, "dict" a list of
    {"W": W, "b": b} dicts.
    """
    rng = np.random.default_rng(seed)
    params = []
    for n_prev, n in itertools.pairwise(sizes):
        W = jnp.asarray(rng.normal(size=(n, n_prev)) / np.sqrt(n_prev), dtype)
        b = jnp.asarray(0.5 * rng.normal(size=(n, 1)), dtype)
        params.append({"W": W, "b": b} if layout == "dict" else mb.Layer(W, b))
    X = jnp.asarray(rng.normal(size=(sizes[0], m)), dtype)
    Y = jnp.asarray(rng.integers(0, 2, size=(sizes[-1], m)), dtype)
    return (params if layout == "dict" else tuple(params)), X, Y


def saturating_problem(m, dtype):
    """One unit, Z = -X + 100 with X = 100: every real column has Z[1] = 0.

    A zero padding column has Z[1] = 100, where sigmoid rounds to exactly 1,
    so its dA[1] in the document form is 1 / (1 - 1) = inf and its delta[1]
    is inf * 0 = nan: only a mask that selects, not multiplies, keeps it out.
    """
    params = (mb.Layer(jnp.full((1, 1), -1.0, dtype), jnp.full((1, 1), 100.0, dtype)),)
    X = jnp.full((1, m), 100.0, dtype)
    Y = jnp.asarray(np.arange(m) % 2, dtype).reshape(1, m)
    return params, X, Y


def mesh_of(case):
    """The case's mesh: make_data_mesh, or jax.make_mesh (explicit axes)."""
    if "mesh_shape" in case:
        return jax.make_mesh(tuple(case["mesh_shape"]), tuple(case["mesh_axes"]))
    return make_data_mesh(case["devices"], case.get("axis_name", "data"))


def run(case):
    """Checks one case; raises AssertionError with the reason if it fails."""
    dtype = DTYPES[case.get("dtype", "float64")]
    if case.get("problem") == "saturating":
        params, X, Y = saturating_problem(case["m"], dtype)
    else:
        params, X, Y = problem(case["sizes"], case["m"], dtype, case.get("layout"))
    mesh = mesh_of(case)
    strings = (case["activation"], case["form"], case["cost"])

    # Eager runs each operation as written; under jit XLA may rewrite some
    # (a product with a 0/1 mask becomes a select, which drops a nan).
    with jax.disable_jit(case.get("eager", False)):
        C, grads = data_parallel_grad(
            params, X, Y, mesh, case.get("axis_name", "data"), *strings
        )
    expected = mb.value_and_grad(params, X, Y, *strings)

    rtol, atol = mb.tolerance(dtype)
    # strict: the same tree structure (the parameters'), shapes and dtypes.
    chex.assert_trees_all_close((C, grads), expected, rtol=rtol, atol=atol, strict=True)
    chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)
    for leaf in jax.tree.leaves((C, grads)):
        assert bool(jnp.all(jnp.isfinite(leaf))), f"not finite: {leaf}"
        # Computed on every device of the mesh and the same on each.
        assert leaf.sharding.device_set == set(mesh.devices.flat), leaf.sharding
        assert leaf.sharding.is_fully_replicated, leaf.sharding


def main(argv):
    cases = json.loads(argv[1])
    results = {}
    for case in cases:
        try:
            run(case)
            results[case["id"]] = None
        except Exception as err:  # every case reports, the first failure too
            results[case["id"]] = "".join(
                traceback.format_exception_only(type(err), err)
            )
    print(json.dumps({"device_count": jax.device_count(), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
