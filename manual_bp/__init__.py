"""manual_bp: backpropagation derived by hand in JAX, proven against jax.grad.

The notation is the worked example's: W[l] (n[l], n[l-1]), b[l] (n[l], 1),
examples in columns, A[0] = X (n[0], m), Z[l] = W[l] @ A[l-1] + b[l],
A[l] = g(Z[l]), a sigmoid output and the binary cross-entropy (or the
quadratic cost) averaged over m.
"""

from manual_bp._activations import ACTIVATIONS, Activation, get_activation
from manual_bp._api import derivation, grad, value_and_grad
from manual_bp._backward import (
    FORMS,
    Derivation,
    activation_backward,
    backward,
    linear_backward,
    output_dA,
)
from manual_bp._check import (
    TOLERANCES,
    Comparison,
    Difference,
    Tolerance,
    autodiff_grad,
    compare,
    fd_tolerance,
    tolerance,
)
from manual_bp._checker import (
    FiniteDifference,
    Report,
    autodiff_derivation,
    check,
    finite_differences,
)
from manual_bp._costs import COSTS, binary_cross_entropy, cost, quadratic
from manual_bp._datasets import load_breast_cancer
from manual_bp._draw import draw_network
from manual_bp._flat import flat_grad, flat_sgd_step, flat_size, pack, unpack
from manual_bp._forward import forward
from manual_bp._io import (
    InputError,
    check_data,
    load_data,
    load_params,
    save_grads,
    save_params,
)
from manual_bp._mistakes import MISTAKES, mistaken_derivation
from manual_bp._optim import sgd_step
from manual_bp._parallel import data_parallel_grad, make_data_mesh
from manual_bp._params import SCHEMES, Layer, check_shapes, init, layers, sizes_of
from manual_bp._per_example import clipped_grad, per_example_grads, per_example_norms
from manual_bp._render import (
    MAX_PRINTED,
    RenderSettings,
    render_latex,
    render_markdown,
)
from manual_bp._train import DivergenceError, EpochStats, TrainResult, train
from manual_bp._vjp import manual_cost

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "COSTS",
    "FORMS",
    "MAX_PRINTED",
    "MISTAKES",
    "SCHEMES",
    "TOLERANCES",
    "Activation",
    "Comparison",
    "Derivation",
    "Difference",
    "DivergenceError",
    "EpochStats",
    "FiniteDifference",
    "InputError",
    "Layer",
    "RenderSettings",
    "Report",
    "Tolerance",
    "TrainResult",
    "activation_backward",
    "autodiff_derivation",
    "autodiff_grad",
    "backward",
    "binary_cross_entropy",
    "check",
    "check_data",
    "check_shapes",
    "clipped_grad",
    "compare",
    "cost",
    "data_parallel_grad",
    "derivation",
    "draw_network",
    "fd_tolerance",
    "finite_differences",
    "flat_grad",
    "flat_sgd_step",
    "flat_size",
    "forward",
    "get_activation",
    "grad",
    "init",
    "layers",
    "linear_backward",
    "load_breast_cancer",
    "load_data",
    "load_params",
    "make_data_mesh",
    "manual_cost",
    "mistaken_derivation",
    "output_dA",
    "pack",
    "per_example_grads",
    "per_example_norms",
    "quadratic",
    "render_latex",
    "render_markdown",
    "save_grads",
    "save_params",
    "sgd_step",
    "sizes_of",
    "tolerance",
    "train",
    "unpack",
    "value_and_grad",
]
