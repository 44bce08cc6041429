"""data_parallel_grad: the columns split over devices, equal to one device.

The test process has one CPU device. The several-device cases run in one
subprocess (tests/parallel_worker.py) started with eight CPU devices, which
XLA only makes if told before JAX starts; each case there is compared with
the single-device manual_bp.value_and_grad and reported back as JSON.
"""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import pytest
from problems import assert_close, problem

import manual_bp as mb
from manual_bp._parallel import data_parallel_grad, make_data_mesh

SIZES = (5, 4, 3, 2)  # all widths differ: a missing transpose cannot hide
WORKER = Path(__file__).with_name("parallel_worker.py")
N_DEVICES = 8

# 2 and 8 devices (1 device is the test process's own, tested below);
# m = 16 divides among each, m = 13 is padded to 14 or 16. Both costs each
# time; the form alternates, so that each form meets each device count and
# each m. Each case compiles anew, a few tenths of a second.
SEVERAL_DEVICE_CASES = [
    {
        "id": f"{k}dev-m{m}-{cost}-{form}",
        "devices": k,
        "m": m,
        "sizes": SIZES,
        "activation": "tanh" if cost == "cross_entropy" else "relu",
        "form": form,
        "cost": cost,
    }
    for (i, k), (j, m) in itertools.product(enumerate((2, 8)), enumerate((16, 13)))
    for form in [mb.FORMS[(i + j) % 2]]
    for cost in mb.COSTS
]
SEVERAL_DEVICE_CASES += [
    # One column on eight devices: seven hold padding only.
    {
        "id": "8dev-m1",
        "devices": 8,
        "m": 1,
        "sizes": SIZES,
        "activation": "sigmoid",
        "form": "fused",
        "cost": "cross_entropy",
    },
    # Padding where the document form's dA[L] is inf and delta[L] nan: it
    # must stay out. Also eager, about 4 s: under jit XLA turns a product
    # with a 0/1 mask into a select, so only eager shows a masking product
    # letting the nan through.
    *(
        {
            "id": f"8dev-m3-saturated-padding-document-form-{mode}",
            "devices": 8,
            "m": 3,
            "problem": "saturating",
            "activation": "sigmoid",
            "form": "document",
            "cost": "cross_entropy",
            "eager": mode == "eager",
        }
        for mode in ("jit", "eager")
    ),
    # Parameters as dicts, float32: the gradients come back as dicts, float32.
    {
        "id": "8dev-m13-dict-float32",
        "devices": 8,
        "m": 13,
        "sizes": SIZES,
        "layout": "dict",
        "dtype": "float32",
        "activation": "leaky_relu",
        "form": "fused",
        "cost": "cross_entropy",
    },
    # jax.make_mesh's explicit axes, 4 x 2, columns split over "batch" only.
    {
        "id": "4x2-explicit-mesh-m13",
        "devices": 8,
        "mesh_shape": (4, 2),
        "mesh_axes": ("batch", "model"),
        "axis_name": "batch",
        "m": 13,
        "sizes": SIZES,
        "activation": "tanh",
        "form": "fused",
        "cost": "quadratic",
    },
]

# One device, in this process: every activation once, with the four
# (form, cost) pairs in turn.
ONE_DEVICE_CASES = list(
    zip(
        mb.ACTIVATIONS,
        itertools.cycle(itertools.product(mb.FORMS, mb.COSTS)),
        strict=False,
    )
)


@pytest.fixture(scope="module")
def several_devices():
    """Runs every case of SEVERAL_DEVICE_CASES in one eight-device process.

    Module-scoped: one run for all the tests using it, and pytest keeps a
    failure of it too, rather than running it again for each test.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    env = {
        **os.environ,
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={N_DEVICES}",
        "JAX_PLATFORMS": "cpu",
        "JAX_ENABLE_X64": "1",
    }
    done = subprocess.run(
        [sys.executable, str(WORKER), json.dumps(SEVERAL_DEVICE_CASES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_data_parallel_worker_sees_eight_devices(several_devices):
    assert several_devices["device_count"] == N_DEVICES


@pytest.mark.parametrize(
    "case", SEVERAL_DEVICE_CASES, ids=[c["id"] for c in SEVERAL_DEVICE_CASES]
)
def test_data_parallel_grad_on_several_devices_equals_one_device(several_devices, case):
    failure = several_devices["results"][case["id"]]
    assert failure is None, failure


@pytest.mark.parametrize(
    ("activation", "form_cost"),
    ONE_DEVICE_CASES,
    ids=[f"{a}-{f}-{c}" for a, (f, c) in ONE_DEVICE_CASES],
)
def test_data_parallel_grad_on_one_device_equals_value_and_grad(activation, form_cost):
    form, cost = form_cost
    params, X, Y = problem(SIZES, 7)
    actual = data_parallel_grad(params, X, Y, None, "data", activation, form, cost)
    expected = mb.value_and_grad(params, X, Y, activation, form, cost)
    assert_close(actual, expected, jnp.float64)


def test_data_parallel_grad_on_a_mesh_axis_of_another_name():
    params, X, Y = problem(SIZES, 5, seed=1)
    actual = data_parallel_grad(params, X, Y, make_data_mesh(1, "batch"), "batch")
    assert_close(actual, mb.value_and_grad(params, X, Y), jnp.float64)


def test_data_parallel_grad_keeps_the_params_structure_and_dtype():
    params, X, Y = problem(SIZES, 4, dtype=jnp.float32)
    params = [{"W": W, "b": b} for W, b in params]
    C, grads = data_parallel_grad(params, X.astype(jnp.float64), Y.astype(jnp.int32))
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)
    assert C.dtype == jnp.float32 and C.shape == ()
    assert_close((C, grads), mb.value_and_grad(params, X, Y), jnp.float32)


def test_data_parallel_grad_axis_not_in_mesh_is_a_value_error():
    params, X, Y = problem(SIZES, 2)
    with pytest.raises(
        ValueError,
        match=r"axis_name 'batch' is not an axis of the mesh, whose axes are "
        r"\('data',\).*make_data_mesh\(axis_name='batch'\)",
    ):
        data_parallel_grad(params, X, Y, make_data_mesh(1), "batch")


def test_data_parallel_grad_mesh_of_wrong_type_is_a_value_error():
    params, X, Y = problem(SIZES, 2)
    with pytest.raises(ValueError, match=r"mesh must be a jax.sharding.Mesh.*str"):
        data_parallel_grad(params, X, Y, "data")


@pytest.mark.parametrize("n_devices", [0, 2, 1.0, True], ids=repr)
def test_make_data_mesh_refuses_a_count_not_of_the_devices(n_devices):
    # The test process has one device, so 2 is one too many.
    with pytest.raises(
        ValueError, match=rf"n_devices must be an integer from 1 to 1 .*got {n_devices}"
    ):
        make_data_mesh(n_devices)


def test_make_data_mesh_spans_every_device_by_default():
    mesh = make_data_mesh()
    assert mesh.axis_names == ("data",)
    assert list(mesh.devices.flat) == jax.devices()


def test_data_parallel_grad_checks_shapes_on_entry():
    params, X, Y = problem(SIZES, 3)
    with pytest.raises(
        ValueError, match=r"Y has shape \(3, 2\), expected \(n\[L\], m\).*pass Y\.T"
    ):
        data_parallel_grad(params, X, Y.T)


def test_data_parallel_grad_unknown_form_is_a_value_error():
    params, X, Y = problem(SIZES, 3)
    with pytest.raises(ValueError, match=r"unknown form 'fuse'; expected one of"):
        data_parallel_grad(params, X, Y, form="fuse")


def test_data_parallel_grad_calls_no_autodiff(monkeypatch):
    """The data parallel path must not reach any autodiff entry point."""

    def refuse(*args, **kwargs):
        raise AssertionError("data_parallel_grad called an autodiff entry point")

    for name in ("grad", "vjp", "value_and_grad", "jacrev", "jacfwd", "linearize"):
        monkeypatch.setattr(jax, name, refuse)
    # Shapes used nowhere else in this file, so the function is traced anew.
    params, X, Y = problem((7, 6, 5, 1), m=11)
    actual = data_parallel_grad(params, X, Y, activation="relu", form="document")
    monkeypatch.undo()
    expected = mb.value_and_grad(params, X, Y, "relu", "document")
    assert_close(actual, expected, jnp.float64)
