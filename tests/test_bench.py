"""The benchmark's own arithmetic: its NumPy peer, its FLOP count, its verdicts.

scripts/bench.py compares manual_bp with a NumPy backward written in the
script; if that peer computed something else, or the script counted FLOPs
or judged a target wrongly, its tables would mislead. Nothing here is
timed: the verdicts are checked on made-up rung records.
"""

import importlib.util
from pathlib import Path

import jax
import numpy as np
import pytest

import manual_bp as mb

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"
_spec = importlib.util.spec_from_file_location("bench", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize(
    ("sizes", "m"), [((5, 4, 3, 1), 2), ((7, 3, 1), 5), ((4, 6, 6, 2, 1), 1)]
)
def test_numpy_peer_equals_jax_grad(sizes, m):
    params_np, X, Y = bench.problem(sizes, m, seed=3)
    params_np = [(W.astype(np.float64), b.astype(np.float64)) for W, b in params_np]
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    params = tuple(mb.Layer(W.copy(), b.copy()) for W, b in params_np)
    expected = jax.tree.leaves(jax.grad(mb.cost)(params, X, Y))
    got = bench.numpy_grad(params_np, X, Y)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)


def test_numpy_peer_leaves_its_inputs_alone():
    # It works in place where it can; the caller's arrays must not change.
    params_np, X, Y = bench.problem((5, 4, 3, 1), 2)
    before = [a.copy() for W, b in params_np for a in (W, b)] + [X.copy(), Y.copy()]
    bench.numpy_grad(params_np, X, Y)
    after = [a for W, b in params_np for a in (W, b)] + [X, Y]
    for a, b in zip(after, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_matmul_flops_counts_the_products_by_hand():
    # 5-4-3-1, m = 2, 2 n[l] n[l-1] m per product:
    # layer 1: forward and dW[1] (no dA[0]) 2 x (2 * 4 * 5 * 2) = 160
    # layer 2: three products             3 x (2 * 3 * 4 * 2) = 144
    # layer 3: three products             3 x (2 * 1 * 3 * 2) = 36
    assert bench.matmul_flops((5, 4, 3, 1), 2) == 160 + 144 + 36


def test_products_alone_are_the_products_matmul_flops_counts():
    # The "XLA products alone" row is timed against the FLOPs of
    # matmul_flops; count its outputs' multiply-adds independently.
    sizes, m = (7, 5, 3, 2), 4
    params_np, X, Y = bench.problem(sizes, m)
    params = tuple(mb.Layer(W, b) for W, b in params_np)
    d = mb.derivation(params, X, Y)
    L = len(sizes) - 1
    Ws = tuple(W for W, _ in params)
    As = tuple(d.A[l - 1] for l in range(1, L + 1))
    deltas = tuple(d.delta[l] for l in range(1, L + 1))
    out = bench.products_alone(Ws, As, deltas)
    # Each output (r, c) of a product contracting over k costs 2 r c k:
    # k = n[l-1] for W[l] @ A[l-1], m for delta[l] @ A[l-1].T, n[l] for
    # W[l].T @ delta[l].
    contracted = []
    for l in range(1, L + 1):
        contracted += [sizes[l - 1], m] + ([sizes[l]] if l > 1 else [])
    assert len(out) == len(contracted) == 3 * L - 1
    flops = sum(2 * a.size * k for a, k in zip(out, contracted, strict=True))
    assert flops == bench.matmul_flops(sizes, m)
    rtol, atol = mb.tolerance(np.float32)  # float32 products, another order
    np.testing.assert_allclose(out[0], params_np[0][0] @ X, rtol=rtol, atol=atol)
    np.testing.assert_allclose(out[-1], Ws[-1].T @ deltas[-1], rtol=rtol, atol=atol)


def _rung(times, cores, sizes=(784, 128, 64, 1), m=256, peak_share=0.5, spread=0.01):
    """A rung record as run_rung writes it, with the given times and cores."""
    rows = {}
    for name, t in times.items():
        rows[name] = {
            "time_s": t,
            "cores_busy": cores.get(name, 1.0),
            "spread": spread,
            "ratio": {p: t / times[p] for p in bench.PEERS if p in times},
            "share_of_peak": peak_share,
            "share_of_jax_product": peak_share * 1.25,
        }
    return {
        "sizes": list(sizes),
        "m": m,
        "contenders": rows,
        "temp_bytes": {"manual_bp.grad": 100, "flat_grad": 300, "jax.grad": 200},
    }


PEAKS = {"jax.jit": 80.0, "NumPy": 90.0, "PyTorch": 100.0}


def test_targets_name_the_faster_peer_and_the_cores_it_used():
    rung = _rung(
        {"manual_bp.grad": 1.3, "jax.grad": 1.2, "NumPy": 1.0, "PyTorch": 1.1},
        {"manual_bp.grad": 1.0, "jax.grad": 1.1, "NumPy": 1.9},
    )
    lines = bench.targets(rung, False, PEAKS)
    assert lines[0] == (
        "target: manual_bp.grad / fastest peer 1.300 <= 1: not met "
        "(fastest: NumPy, 1.9 cores busy; manual_bp.grad 1.0; jax.grad 1.1)"
    )
    assert lines[1] == (
        "target: memory manual_bp.grad 100 B <= jax.grad 200 B: met (flat_grad 300 B)"
    )
    assert len(lines) == 2  # neither the tiny nor the peak target on this rung


def test_a_gap_inside_the_spread_of_the_samples_says_so():
    rung = _rung({"manual_bp.grad": 1.04, "jax.grad": 1.0}, {}, spread=0.06)
    assert bench.targets(rung, False, PEAKS)[0] == (
        "target: manual_bp.grad / fastest peer 1.040 <= 1: not met "
        "(fastest: jax.grad, 1.0 cores busy; manual_bp.grad 1.0; "
        "within the samples' spread, 6%)"
    )


def test_spread_is_the_interquartile_range_over_the_median():
    # Quartiles of 1..5 by the inclusive method: 2 and 4; median 3.
    assert bench._spread([5.0, 1.0, 4.0, 2.0, 3.0]) == pytest.approx(2 / 3)
    assert bench._spread([7.0]) == 0.0


def test_a_met_target_carries_no_reason():
    rung = _rung({"manual_bp.grad": 0.9, "jax.grad": 1.0, "NumPy": 1.2}, {})
    assert bench.targets(rung, False, PEAKS)[0] == (
        "target: manual_bp.grad / fastest peer 0.900 <= 1: met"
    )


def test_tiny_target_quotes_the_call_floor():
    rung = _rung(
        {
            "manual_bp.grad": 20.0,
            "flat_grad": 8.0,
            "jax.grad": 20.0,
            bench.FLOOR: 6.5,
        },
        {},
        sizes=(5, 4, 3, 1),
        m=2,
    )
    lines = bench.targets(rung, False, PEAKS)
    assert lines[1] == (
        "target: flat_grad / jax.grad 0.40 <= 0.3: not met "
        "(a call reading the same arrays, no gradient: 0.33)"
    )


def test_peak_target_quotes_xla_s_own_product():
    rung = _rung({"manual_bp.grad": 1.0, "jax.grad": 1.0}, {}, peak_share=0.72)
    lines = bench.targets(rung, True, PEAKS)
    # share_of_jax_product = 0.72 * 1.25 = 0.90; jax.jit's 80 of the 100 peak
    assert lines[1] == (
        "target: manual_bp.grad at 72% of peak (and 90% of jax.jit's product) "
        ">= 90%: not met (jax.jit's 2048^2 product itself: 80% of peak)"
    )
    rung = _rung({"manual_bp.grad": 1.0, "jax.grad": 1.0}, {}, peak_share=0.95)
    assert bench.targets(rung, True, PEAKS)[1].endswith(">= 90%: met")


def test_a_slower_library_peer_is_set_against_xla_s_products_alone():
    rung = _rung(
        {
            "manual_bp.grad": 1.2,
            "jax.grad": 1.25,
            "NumPy": 1.0,
            bench.PRODUCTS: 1.1,
        },
        {"manual_bp.grad": 1.4, "jax.grad": 1.4, "NumPy": 2.0},
    )
    assert bench.targets(rung, False, PEAKS)[0] == (
        "target: manual_bp.grad / fastest peer 1.200 <= 1: not met "
        "(fastest: NumPy, 2.0 cores busy; manual_bp.grad 1.4; jax.grad 1.4; "
        "XLA's products alone take 1.10 of NumPy's time)"
    )


def test_peak_target_quotes_the_gradient_s_products_alone():
    rung = _rung(
        {"manual_bp.grad": 1.0, "jax.grad": 1.0, bench.PRODUCTS: 0.9},
        {},
        peak_share=0.8,
    )
    rung["contenders"][bench.PRODUCTS]["share_of_peak"] = 0.85
    assert bench.targets(rung, True, PEAKS)[1] == (
        "target: manual_bp.grad at 80% of peak (and 100% of jax.jit's product) "
        ">= 90%: not met (jax.jit's 2048^2 product itself: 80% of peak; "
        "the gradient's products alone: 85%)"
    )
