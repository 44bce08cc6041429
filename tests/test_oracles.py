"""manual_bp against worked examples published by others.

Every expected number below is copied, as published, from the case of the
same name in the shared oracle file (published.json); none is recomputed
with manual_bp. Each block names its case, its source and the tolerance
the case states.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import manual_bp


def f64(x):
    return jnp.asarray(x, jnp.float64)


# --- dlai_linear_backward -------------------------------------------------
# source: deeplearning.ai Neural Networks and Deep Learning, week 4
# 'Building your Deep Neural Network: Step by Step', linear_backward test
# case (older notebook variant); inputs from numpy.random.seed(1) then
# randn(1,2), randn(3,2), randn(1,3), randn(1,1).
# tolerance: published to 8 decimals, atol 5e-9.
LINEAR_DELTA = [[1.6243453636632417, -0.6117564136500754]]
LINEAR_A_PREV = [
    [-0.5281717522634557, -1.0729686221561705],
    [0.8654076293246785, -2.3015386968802827],
    [1.74481176421648, -0.7612069008951028],
]
LINEAR_W = [[0.31903909605709857, -0.2493703754774101, 1.462107937044974]]
LINEAR_EXPECTED = {
    "dA_prev": [
        [0.51822968, -0.19517421],
        [-0.40506361, 0.15255393],
        [2.37496825, -0.89445391],
    ],
    "dW": [[-0.10076895, 1.40685096, 1.64992505]],
    "db": [[0.50629448]],
}


TRANSFORMS = {"eager": lambda f: f, "jit": jax.jit}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_linear_backward_matches_dlai(transform):
    linear_backward = TRANSFORMS[transform](manual_bp.linear_backward)

    dA_prev, dW, db = linear_backward(
        f64(LINEAR_DELTA), f64(LINEAR_A_PREV), f64(LINEAR_W)
    )

    got = {"dA_prev": dA_prev, "dW": dW, "db": db}
    for name, expected in LINEAR_EXPECTED.items():
        np.testing.assert_allclose(got[name], expected, rtol=0, atol=5e-9, err_msg=name)
        assert got[name].shape == np.shape(expected), name


# --- dlai_linear_activation_backward --------------------------------------
# source: same notebook, linear_activation_backward test case;
# numpy.random.seed(2) then randn(1,2) dA, randn(3,2) A_prev, randn(1,3) W,
# randn(1,1) b, randn(1,2) Z (Z is an independent draw, not
# W @ A_prev + b, so it is fed as given).
# tolerance: atol 5e-9.
LINACT_DA = [[-0.4167578474054706, -0.056266827226329474]]
LINACT_A_PREV = [
    [-2.136196095668454, 1.6402708084049886],
    [-1.7934355851948631, -0.841747365656204],
    [0.5028814171580428, -1.2452880866072316],
]
LINACT_W = [[-1.057952218862339, -0.9090076149268493, 0.5514540445464243]]
LINACT_Z = [[0.04153939299840346, -1.1179254451135168]]
LINACT_EXPECTED = {
    "sigmoid": {
        "dA_prev": [
            [0.11017994, 0.01105339],
            [0.09466817, 0.00949723],
            [-0.05743092, -0.00576154],
        ],
        "dW": [[0.10266786, 0.09778551, -0.01968084]],
        "db": [[-0.05729622]],
    },
    "relu": {
        "dA_prev": [
            [0.44090989, 0.0],
            [0.37883606, 0.0],
            [-0.2298228, 0.0],
        ],
        "dW": [[0.44513824, 0.37371418, -0.10478989]],
        "db": [[-0.20837892]],
    },
}


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_activation_then_linear_backward_matches_dlai(activation):
    delta = manual_bp.activation_backward(f64(LINACT_DA), f64(LINACT_Z), activation)
    dA_prev, dW, db = manual_bp.linear_backward(
        delta, f64(LINACT_A_PREV), f64(LINACT_W)
    )

    got = {"dA_prev": dA_prev, "dW": dW, "db": db}
    for name, expected in LINACT_EXPECTED[activation].items():
        np.testing.assert_allclose(got[name], expected, rtol=0, atol=5e-9, err_msg=name)
        assert got[name].shape == np.shape(expected), name


# --- dlai_model_forward ---------------------------------------------------
# source: same notebook, L_model_forward test case (older variant);
# numpy.random.seed(1) then randn(4,2) X, randn(3,4) W1, randn(3,1) b1,
# randn(1,3) W2, randn(1,1) b2. A 4-3-1 network, relu hidden layer,
# sigmoid output.
# tolerance: atol 5e-9.
FORWARD_X = [
    [1.6243453636632417, -0.6117564136500754],
    [-0.5281717522634557, -1.0729686221561705],
    [0.8654076293246785, -2.3015386968802827],
    [1.74481176421648, -0.7612069008951028],
]
FORWARD_W1 = [
    [0.31903909605709857, -0.2493703754774101, 1.462107937044974, -2.060140709497654],
    [
        -0.3224172040135075,
        -0.38405435466841564,
        1.1337694423354374,
        -1.0998912673140309,
    ],
    [
        -0.17242820755043575,
        -0.8778584179213718,
        0.04221374671559283,
        0.5828152137158222,
    ],
]
FORWARD_B1 = [[-1.1006191772129212], [1.1447237098396141], [0.9015907205927955]]
FORWARD_W2 = [[0.5024943389018682, 0.9008559492644118, -0.6837278591743331]]
FORWARD_B2 = [[-0.12289022551864817]]
FORWARD_EXPECTED_A_L = [[0.17007265, 0.2524272]]


def test_forward_matches_dlai():
    params = (
        manual_bp.Layer(W=f64(FORWARD_W1), b=f64(FORWARD_B1)),
        manual_bp.Layer(W=f64(FORWARD_W2), b=f64(FORWARD_B2)),
    )

    _, A = manual_bp.forward(params, f64(FORWARD_X), "relu")

    assert A[2].shape == (1, 2)
    np.testing.assert_allclose(A[2], FORWARD_EXPECTED_A_L, rtol=0, atol=5e-9)


# --- dlai_cost ------------------------------------------------------------
# source: same notebook, compute_cost test cases (both variants of the
# notebook).
# tolerance: printed to 17 significant digits, rtol 1e-12.
COST_A_L = [[0.8, 0.9, 0.4]]
COST_CASES = {
    "variant_1": ([[1, 1, 1]], 0.41493159961539694),
    "variant_2": ([[1, 1, 0]], 0.2797765635793422),
}


@pytest.mark.parametrize("variant", list(COST_CASES))
def test_binary_cross_entropy_matches_dlai(variant):
    Y, expected = COST_CASES[variant]
    A_L = f64(COST_A_L)
    Z_L = jnp.log(A_L / (1 - A_L))  # the logit: sigmoid(Z_L) = A_L

    C = manual_bp.binary_cross_entropy(Z_L, f64(Y))

    assert C.shape == ()
    np.testing.assert_allclose(C, expected, rtol=1e-12, atol=0)


# --- cs231n_sigmoid_neuron ------------------------------------------------
# source: Stanford CS231n course notes, 'Backpropagation, Intuitions',
# sigmoid neuron example. f = sigmoid(W @ x + b), m = 1, with an upstream
# gradient dA = 1 (the derivative of the output, not of a cost).
# tolerance: published 2-decimal values atol 0.005; float64 values
# rtol 1e-12.
NEURON_W = [[2.0, -3.0]]
NEURON_B = [[-3.0]]
NEURON_X = [[-1.0], [-2.0]]
NEURON_DA = [[1.0]]
NEURON_EXPECTED = {
    "float64": {
        "f": [[0.7310585786300049]],
        "dW": [[-0.19661193324148185, -0.3932238664829637]],
        "db": [[0.19661193324148185]],
        "dx": [[0.3932238664829637], [-0.5898357997244456]],
    },
    "published_2_decimals": {
        "f": [[0.73]],
        "dW": [[-0.2, -0.39]],
        "db": [[0.2]],  # published as the scalar 0.2
        "dx": [[0.39], [-0.59]],
    },
}
NEURON_TOLERANCE = {  # (rtol, atol)
    "float64": (1e-12, 0.0),
    "published_2_decimals": (0.0, 0.005),
}


def _sigmoid_neuron():
    """f, dW, db and dx of the neuron, by manual_bp's forward and backward."""
    W, x = f64(NEURON_W), f64(NEURON_X)
    Z, A = manual_bp.forward([(W, f64(NEURON_B))], x)
    delta = manual_bp.activation_backward(f64(NEURON_DA), Z[1], "sigmoid")
    dx, dW, db = manual_bp.linear_backward(delta, x, W)
    return {"f": A[1], "dW": dW, "db": db, "dx": dx}


@pytest.mark.parametrize("precision", list(NEURON_EXPECTED))
def test_sigmoid_neuron_backward_matches_cs231n(precision):
    got = _sigmoid_neuron()

    rtol, atol = NEURON_TOLERANCE[precision]
    for name, expected in NEURON_EXPECTED[precision].items():
        assert got[name].shape == np.shape(expected), name
        np.testing.assert_allclose(
            got[name], expected, rtol=rtol, atol=atol, err_msg=name
        )


# --- mazur_step_by_step -----------------------------------------------------
# source: Matt Mazur, 'A Step by Step Backpropagation Example' (2015), and its
# companion code mattm/simple-neural-network. A 2-2-2 sigmoid network, one
# example, E = sum over outputs of 0.5 (y - a)^2, which is the quadratic cost
# with m = 1. The post's biases are one number per layer, shared by its
# neurons and never updated; here they are columns of equal entries, and the
# step below leaves them alone. Known mistakes (not used as targets): the
# post's error after one step (0.291027924), after 10000 steps, and one
# intermediate, dE_o2/dout_h1.
# tolerance: published numbers to half a unit in the last printed digit;
# float64 recomputed values rtol 1e-9.
MAZUR_X = [[0.05], [0.1]]
MAZUR_Y = [[0.01], [0.99]]
MAZUR_W1 = [[0.15, 0.2], [0.25, 0.3]]  # [[w1, w2], [w3, w4]]
MAZUR_W2 = [[0.4, 0.45], [0.5, 0.55]]  # [[w5, w6], [w7, w8]]
MAZUR_B1 = [[0.35], [0.35]]
MAZUR_B2 = [[0.6], [0.6]]
MAZUR_LEARNING_RATE = 0.5
MAZUR_PUBLISHED_A1 = [[0.593269992], [0.596884378]]  # out_h1, out_h2
MAZUR_PUBLISHED_A2 = [[0.75136507], [0.772928465]]  # out_o1, out_o2
MAZUR_PUBLISHED_E = 0.298371109  # E_total
MAZUR_PUBLISHED_DW5 = 0.082167041  # dE/dw5 = dW[2][0, 0]
MAZUR_PUBLISHED_DW1 = 0.000438568  # dE/dw1 = dW[1][0, 0]
MAZUR_PUBLISHED_W2_AFTER = [[0.35891648, 0.408666186], [0.51130127, 0.561370121]]
MAZUR_PUBLISHED_W1_AFTER = [[0.149780716, 0.19956143], [0.24975114, 0.29950229]]
MAZUR_RECOMPUTED = {  # float64_recomputed in the oracle file
    "dW2": [[0.082167040564, 0.082667627848], [-0.022602540477, -0.022740242216]],
    "dW1": [[0.000438567734, 0.000877135469], [0.000497712735, 0.000995425471]],
    "db2": [[0.138498561629], [-0.038098236517]],
    "db1": [[0.008771354689], [0.009954254705]],
}
MAZUR_RECOMPUTED_E_AFTER = 0.29102777369359933  # biases fixed, float64


def half_unit(published):
    """Half a unit in the last printed digit of each published number."""
    digits = [len(repr(float(x)).split(".")[1]) for x in np.ravel(published)]
    return 0.5 * 10.0 ** -np.reshape(digits, np.shape(published))


def assert_within_printed_precision(actual, published):
    error = np.abs(np.asarray(actual) - np.asarray(published))
    assert np.all(error <= half_unit(published)), (actual, published)


def mazur_params():
    return (
        manual_bp.Layer(f64(MAZUR_W1), f64(MAZUR_B1)),
        manual_bp.Layer(f64(MAZUR_W2), f64(MAZUR_B2)),
    )


@pytest.mark.parametrize("form", manual_bp.FORMS)
def test_mazur_forward_and_cost_match_published(form):
    params, X, Y = mazur_params(), f64(MAZUR_X), f64(MAZUR_Y)

    d = manual_bp.derivation(params, X, Y, "sigmoid", form, "quadratic")
    E = manual_bp.cost(params, X, Y, "sigmoid", "quadratic")

    np.testing.assert_allclose(d.A[1], MAZUR_PUBLISHED_A1, rtol=0, atol=5e-10)
    np.testing.assert_allclose(d.A[2], MAZUR_PUBLISHED_A2, rtol=0, atol=5e-9)
    np.testing.assert_allclose(E, MAZUR_PUBLISHED_E, rtol=0, atol=5e-10)


@pytest.mark.parametrize("form", manual_bp.FORMS)
def test_mazur_gradients_match_published_and_recomputed(form):
    params, X, Y = mazur_params(), f64(MAZUR_X), f64(MAZUR_Y)

    (dW1, db1), (dW2, db2) = manual_bp.grad(params, X, Y, "sigmoid", form, "quadratic")

    got = {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}
    for name, expected in MAZUR_RECOMPUTED.items():
        # rtol 1e-9 as the case states, plus half a unit of the 12 printed
        # decimals, which is coarser than 1e-9 relative for entries near 4e-4.
        np.testing.assert_allclose(
            got[name], expected, rtol=1e-9, atol=5e-13, err_msg=name
        )
    assert abs(float(dW2[0, 0]) - MAZUR_PUBLISHED_DW5) <= 5e-10
    assert abs(float(dW1[0, 0]) - MAZUR_PUBLISHED_DW1) <= 5e-10


def test_mazur_one_step_with_fixed_biases_matches_published_weights():
    params, X, Y = mazur_params(), f64(MAZUR_X), f64(MAZUR_Y)
    grads = manual_bp.grad(params, X, Y, cost="quadratic")
    # The post never updates its shared biases: step the weights only.
    weights_only = tuple(manual_bp.Layer(dW, jnp.zeros_like(db)) for dW, db in grads)

    (W1, b1), (W2, b2) = manual_bp.sgd_step(params, weights_only, MAZUR_LEARNING_RATE)

    assert_within_printed_precision(W2, MAZUR_PUBLISHED_W2_AFTER)
    assert_within_printed_precision(W1, MAZUR_PUBLISHED_W1_AFTER)
    np.testing.assert_array_equal(b1, MAZUR_B1)
    np.testing.assert_array_equal(b2, MAZUR_B2)
    E_after = manual_bp.cost(((W1, b1), (W2, b2)), X, Y, cost="quadratic")
    np.testing.assert_allclose(E_after, MAZUR_RECOMPUTED_E_AFTER, rtol=1e-9)
