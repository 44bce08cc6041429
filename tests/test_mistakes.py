"""The checker against classic derivation mistakes, injected one at a time.

The network has widths (5, 3, 4, 1) and m = 3: every width differs, so a
mistake that mixes up two axes shows, and n[1] = m makes layer 2 the one
square layer, where a missing transpose type-checks.
"""

import itertools
import re
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import manual_bp as mb
from manual_bp._checker import check
from manual_bp._mistakes import MISTAKES, mistaken_derivation

SIZES = (5, 3, 4, 1)  # n[0..3]
M = 3  # = n[1]
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutations.py"

# mistake: (the first quantity that differs, in the derivation's order; why)
EXPECTED = {
    "sign_slip_dA_L": ("dA[3]", "dA[L] is the first quantity of the backward pass"),
    "missing_1_over_m": ("dW[3]", "dA, delta carry no 1/m; dW[3] is first to use it"),
    "double_1_over_m": ("dW[3]", "likewise: dW[3] is the first quantity with a 1/m"),
    "missing_transpose_dW": ("dW[2]", "n[1] = m makes layer 2 the only square one"),
    "missing_transpose_dA": ("dA[1]", "applied at l = 2 only (n[1] = m), after db[2]"),
    "elementwise_for_matmul": ("dW[3]", "every layer's dW, and m = 3 is not 1"),
    "sigma_prime_twice": ("delta[3]", "dA[3] is still right; delta[3] is not"),
    "g_prime_at_A": ("delta[2]", "delta[L-1] = delta[2] is the first hidden delta"),
    "db_wrong_axis": ("db[3]", "db[3] has shape (1, m) = (1, 3), expected (1, 1)"),
    "bias_wrong_axis": ("Z[1]", "n[1] = m: only b[1] broadcasts along the columns"),
    "wrong_layer_cache": ("delta[2]", "n[3] = 1 broadcasts; n[2] != n[1] spares l=1"),
    "relu_slope_1_at_0": ("delta[1]", "only Z[1] has exact zeros, dA[1] is not 0"),
}

# The mistakes run with a form other than the default "fused": with the fused
# form, delta[L] = A[L] - Y never reads dA[L], and the sign slip stays there.
FORM = {"sign_slip_dA_L": "document"}

# Every mistake that changes dW[l] or db[l]; relu_slope_1_at_0 does too, but
# only through steps that cross the kink (see its own test below).
CHANGES_GRADIENTS = [name for name in MISTAKES if name != "relu_slope_1_at_0"]


def network(activation="sigmoid", sizes=SIZES, m=M, seed=0):
    """Seeded float64 (params, X, Y) with nonzero biases, labels 0 and 1.

    For relu, row 0 of W[1] and b[1] is zero, so row 0 of Z[1] is exactly 0.
    """
    rng = np.random.default_rng(seed)
    params = [
        mb.Layer(
            jnp.asarray(rng.normal(size=(n, n_prev)) / np.sqrt(n_prev)),
            jnp.asarray(0.5 * rng.normal(size=(n, 1))),
        )
        for n_prev, n in itertools.pairwise(sizes)
    ]
    if activation == "relu":
        W, b = params[0]
        params[0] = mb.Layer(W.at[0].set(0.0), b.at[0].set(0.0))
    X = jnp.asarray(rng.normal(size=(sizes[0], m)))
    # Both classes: the sign slip's +Y/A[L] vanishes where a label is 0.
    labels = rng.permutation(np.arange(sizes[-1] * m) % 2)
    Y = jnp.asarray(labels.reshape(sizes[-1], m), jnp.float64)
    return tuple(params), X, Y


def activation_for(mistake):
    return "relu" if mistake == "relu_slope_1_at_0" else "sigmoid"


def check_mistake(mistake, cost="cross_entropy", form=None, fd="none", **kw):
    activation = kw.pop("activation", activation_for(mistake))
    form = form or FORM.get(mistake, "fused")
    params, X, Y = network(activation, **kw)
    d = mistaken_derivation(params, X, Y, mistake, activation, cost, form)
    return check(params, X, Y, activation, cost, form, hand_written=d, fd=fd)


def differing(report):
    return [r.name for r in report.rows if not r.ok]


def test_mistakes_are_the_twelve_classics():
    assert list(MISTAKES) == list(EXPECTED)
    assert len(MISTAKES) == 12
    assert all(isinstance(d, str) and d.endswith(".") for d in MISTAKES.values())


@pytest.mark.parametrize("cost", mb.COSTS)
@pytest.mark.parametrize("activation", mb.ACTIVATIONS)
def test_clean_derivation_passes(activation, cost):
    params, X, Y = network(activation)

    report = check(params, X, Y, activation, cost, fd="none")

    assert report.ok, str(report)


@pytest.mark.parametrize("cost", mb.COSTS)
@pytest.mark.parametrize("mistake", MISTAKES)
def test_mistake_is_caught_at_the_expected_quantity(mistake, cost):
    # Every mistake applies to the quadratic cost as well: the sign slip
    # becomes Y - A[L], sigma' twice becomes dA[L] * sigma'(Z[L])^2.
    report = check_mistake(mistake, cost)

    assert not report.ok
    assert report.first_divergence.name == EXPECTED[mistake][0], str(report)


def test_sign_slip_in_fused_form_is_named_at_dA_L_alone():
    report = check_mistake("sign_slip_dA_L", form="fused", fd="sample")

    assert not report.ok
    assert differing(report) == ["dA[3]"]  # delta[L] = A[L] - Y skips it
    assert not report.fd_failures


@pytest.mark.parametrize("mistake", CHANGES_GRADIENTS)
def test_finite_differences_flag_mistakes_in_dW_db(mistake):
    report = check_mistake(mistake, fd="sample")

    assert report.fd_failures, str(report)


def test_finite_differences_cannot_judge_relu_slope_at_the_kink():
    # The wrong entries, row 0 of dW[1] and db[1], are exactly those whose
    # step moves Z[1]'s zero row off the kink; those steps are not counted.
    report = check_mistake("relu_slope_1_at_0", fd="sample")

    wrong = [e for e in report.finite_differences if not e.ok]
    assert not report.fd_failures
    assert wrong and all(e.kink for e in wrong)
    assert {e.name for e in wrong} <= {"W[1]", "b[1]"}
    assert report.first_divergence.name == "delta[1]"


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "identity"])
def test_g_prime_at_A_is_invisible_where_g_prime_follows_the_sign(activation):
    # relu'(A) = relu'(Z) since A > 0 exactly where Z > 0; likewise leaky
    # relu (A >= 0 where Z >= 0), and identity' is 1 everywhere.
    params, X, Y = network(activation)
    d = mistaken_derivation(params, X, Y, "g_prime_at_A", activation)

    assert check(params, X, Y, activation, hand_written=d, fd="none").ok


def test_g_prime_at_A_is_caught_with_tanh():
    report = check_mistake("g_prime_at_A", activation="tanh")

    assert report.first_divergence.name == "delta[2]"


def test_missing_transpose_dW_leaves_the_layers_that_are_not_square_right():
    report = check_mistake("missing_transpose_dW")

    assert differing(report) == ["dW[2]"]


@pytest.mark.parametrize(
    "mistake", ["missing_transpose_dW", "missing_transpose_dA", "bias_wrong_axis"]
)
def test_shape_bound_mistake_has_no_effect_without_a_square_layer(mistake):
    # The document's 5-4-3-1 network with m = 2: n[l] != m for every l.
    report = check_mistake(mistake, sizes=(5, 4, 3, 1), m=2)

    assert report.ok, str(report)


def test_db_wrong_axis_gives_db_of_shape_1_by_m():
    params, X, Y = network()

    d = mistaken_derivation(params, X, Y, "db_wrong_axis")

    assert [d.db[l].shape for l in (1, 2, 3)] == [(1, M)] * 3


def test_mistaken_derivation_rejects_an_unknown_mistake():
    params, X, Y = network()
    names = ", ".join(EXPECTED)

    with pytest.raises(
        ValueError,
        match=re.escape(f"unknown mistake 'sign_slip'; expected one of: {names}"),
    ):
        mistaken_derivation(params, X, Y, "sign_slip")


def test_relu_slope_1_at_0_needs_relu():
    params, X, Y = network()

    with pytest.raises(ValueError, match="needs activation 'relu', got 'sigmoid'"):
        mistaken_derivation(params, X, Y, "relu_slope_1_at_0", "sigmoid")


def test_mutations_script_catches_every_mistake():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--seed", "0"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "12/12 caught, 100%" in result.stdout.splitlines()
