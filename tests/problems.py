"""Seeded problems and the one comparison the test modules share."""

import itertools
import subprocess
import sys

import chex
import jax.numpy as jnp
import numpy as np

import manual_bp as mb


def problem(sizes, m, dtype=jnp.float64, seed=0):
    """Seeded parameters (with nonzero biases), X and 0/1 labels.

    Drawn with NumPy: a jax.random draw would compile anew for every shape.
    """
    rng = np.random.default_rng(seed)
    params = tuple(
        mb.Layer(
            jnp.asarray(rng.normal(size=(n, n_prev)) / np.sqrt(n_prev), dtype),
            jnp.asarray(0.5 * rng.normal(size=(n, 1)), dtype),
        )
        for n_prev, n in itertools.pairwise(sizes)
    )
    X = jnp.asarray(rng.normal(size=(sizes[0], m)), dtype)
    Y = jnp.asarray(rng.integers(0, 2, size=(sizes[-1], m)), dtype)
    return params, X, Y


def assert_close(actual, expected, dtype):
    """Whole trees equal in structure, shape and dtype, values within the
    dtype's tolerance from the one table, `mb.TOLERANCES`."""
    rtol, atol = mb.tolerance(np.dtype(dtype))
    chex.assert_trees_all_close(actual, expected, rtol=rtol, atol=atol, strict=True)


def run_python(code, timeout=120):
    """Runs `code` in a fresh interpreter: JAX's defaults, x64 off.

    For what depends on settings this suite's conftest changes for every
    test. Returns the CompletedProcess, with text stdout and stderr.
    """
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
